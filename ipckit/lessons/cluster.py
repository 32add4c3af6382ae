"""Lesson 10: the seed's ordered stream on dask.distributed, on a cluster that listens on 127.0.0.1 only.

A dask worker, like a spawned child, imports a module function by its name, so
what the tasks run lives in modules (here ``hold_first``, ``each``; the rest
comes from ``ipckit.workloads``). The other helpers are what the lesson's cells,
its panel and its exercise check share: a cluster closed on every path, the
ordered stream with a bounded number of tasks in flight, a steady-rate clock,
and a look at the addresses the cluster's processes listen on.
"""
import asyncio
import contextlib
import functools
import logging
import socket
import tempfile
import time
from collections import Counter

import psutil
from distributed import Client, Event, LocalCluster, as_completed

from ..checks import check_count, check_timeout
from ..pipeline import OrderedPipeline
from . import workloads
from .checking import Wrong, call_with_deadline, exercise_check

LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT = "30s"  # Client(timeout=...): how long to wait for the scheduler to answer
STREAM_TIMEOUT = 60  # seconds the whole stream may take (as_completed's timeout)
_END = object()


@contextlib.contextmanager
def local_client(n_workers=2, **cluster_options):
    """A LocalCluster of ``n_workers`` one-thread worker processes on 127.0.0.1, and its Client.

    Everything listens on 127.0.0.1 (the dashboard on a free port, so a second
    cluster never collides on 8787); worker logs are silenced (a notebook would
    show them as stray stderr); scratch files go to a temporary folder that is
    removed. Client, scheduler and workers are closed when the block ends, on
    every path.
    """
    check_count(n_workers, "n_workers")
    options = dict(
        n_workers=n_workers, threads_per_worker=1, processes=True, host=LOOPBACK,
        dashboard_address=f"{LOOPBACK}:0", silence_logs=logging.CRITICAL,
    )
    options.update(cluster_options)
    with tempfile.TemporaryDirectory(prefix="ipckit-dask-") as scratch:
        options.setdefault("local_directory", scratch)
        with LocalCluster(**options) as cluster, Client(cluster, timeout=CONNECT_TIMEOUT) as client:
            yield client


def ordered_stream(client, func, items, in_flight=4, timeout=STREAM_TIMEOUT):
    """Yield ``func(item)`` for each item, in the items' order, with at most ``in_flight`` tasks on the cluster.

    An item is taken from ``items`` (any iterable, an endless generator too) and
    submitted only when a task finishes, any task, not just the oldest: work
    goes out as workers free up. A result that finishes before an earlier one
    waits here for its turn. A task's exception is raised here as its own type.
    ``timeout`` limits the whole stream, in seconds. Leaving the loop early
    (``break``, an exception) cancels whatever is still on the cluster.
    """
    check_count(in_flight, "in_flight")  # ipckit.checks: a bad argument fails here, saying what to pass
    check_timeout(timeout)
    items = iter(items)
    number_of = {}  # future on the cluster -> its hand-off number
    early = {}  # hand-off number -> result that came back before an earlier one
    handed = emitted = 0
    finished = as_completed(with_results=True, timeout=timeout)

    def hand_out():
        nonlocal handed
        item = next(items, _END)  # _END = object(): a marker that no item can be
        if item is not _END:
            future = client.submit(func, item, pure=False)  # pure=False: equal items are still separate tasks
            number_of[future] = handed
            finished.add(future)
            handed += 1

    deadline = time.monotonic() + timeout
    try:
        for _ in range(in_flight):
            hand_out()
        for future, result in finished:
            early[number_of.pop(future)] = result
            hand_out()
            while emitted in early:
                yield early.pop(emitted)
                emitted += 1
    except asyncio.TimeoutError as late:  # dask's; the builtin TimeoutError from Python 3.11, its own class in 3.10
        if time.monotonic() < deadline:  # a task's own TimeoutError: pass it on unchanged
            raise
        raise TimeoutError(f"the stream took longer than timeout={timeout} s; "
                           "pass a longer timeout, or fewer or cheaper items") from late
    finally:
        if number_of and client.status == "running":
            client.cancel(list(number_of))


def each(func, chunk):
    """``[func(item) for item in chunk]``: one task for many tiny items, so a task's fixed cost is shared."""
    return [func(item) for item in chunk]


def chunks(items, size):
    """Yield lists of ``size`` consecutive items (the last may be shorter)."""
    check_count(size, "size")
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def steady_rate(results, skip=1):
    """Consume ``results``; return them as a list, and results per second after the ``skip``-th one.

    The clock runs from result number ``skip`` to the last result, so start-up
    (a pipeline's children, a cold worker) and shutdown are left out, and two
    engines are compared on their steady stream.
    """
    check_count(skip, "skip")
    got, start, last = [], None, None
    for result in results:
        last = time.perf_counter()
        got.append(result)
        if len(got) == skip:
            start = last
    if len(got) <= skip:
        raise ValueError(f"a rate needs more than skip={skip} results, got {len(got)}")
    return got, (len(got) - skip) / (last - start)


def share_of_ideal(client, seconds, duration=0.4):
    """How close dask and OrderedPipeline come to the ideal rate for items of ``seconds`` of work each.

    The ideal: every worker busy all the time, ``workers / seconds`` items per
    second. Both run the same items (``workloads.slow_square``) with as many
    workers (dask) as consumers (the pipeline), for about ``duration`` seconds,
    timed after the first third; every result is checked.
    """
    check_timeout(seconds, "seconds")
    workers = len(client.scheduler_info()["workers"])
    count = max(12, min(200, round(duration * workers / seconds)))
    work = functools.partial(workloads.slow_square, seconds=seconds)
    expected = [n * n for n in range(count)]
    from_dask, dask_rate = steady_rate(ordered_stream(client, work, range(count), in_flight=2 * workers), count // 3)
    with OrderedPipeline(workloads.numbers, work, (count,), consumers=workers, buffer=4, timeline=False) as pipe:
        from_pipeline, pipeline_rate = steady_rate(pipe, count // 3)
    if not from_dask == from_pipeline == expected:
        raise RuntimeError("a result came back wrong or out of order")
    ideal = workers / seconds
    return {"dask": dask_rate / ideal, "OrderedPipeline": pipeline_rate / ideal}


def tasks_on_workers(client, settle=5.0):
    """How many tasks the workers run or hold queued, once cancellations have arrived (waiting at most ``settle`` s)."""
    deadline = time.monotonic() + settle
    while True:
        count = sum(map(len, client.processing().values()))
        if not count or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def listening_addresses(pids):
    """The IP addresses that any of the processes ``pids`` listens on (TCP), sorted."""
    found = set()
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            for conn in psutil.Process(pid).net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add(conn.laddr.ip)
    return sorted(found)


def accepts_connections(address, timeout=1.0):
    """Whether something accepts TCP connections at ``address`` (``"tcp://host:port"`` or ``"host:port"``)."""
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


# The exercise: an ordered stream with at most N tasks in flight, checked on a cluster of its own.

HOLD_SECONDS = 5.0  # how long item 0 waits for the stream to move on before it gives up
CHECK_SECONDS = 60.0  # how long the check lets the learner's stream run before it calls it stuck


def hold_first(item, event_name, hold=HOLD_SECONDS):
    """Return ``item * item``; item 0 first waits (at most ``hold`` s) until the dask Event ``event_name`` is set.

    The check sets the event once the stream has taken a few more items, which
    a stream does only if it hands out work while item 0 still runs.
    """
    if item == 0 and not Event(event_name).wait(timeout=hold):
        return "held up"
    time.sleep(0.002 * (item % 3))  # a little jitter, so later items finish out of order too
    return item * item


class _CountingClient:
    """A Client stand-in that records the most submitted tasks unfinished at any ``submit``."""

    def __init__(self, client):
        self._client = client
        self._futures = []
        self.most_in_flight = 0

    def submit(self, *args, **kwargs):
        self._futures = [f for f in self._futures if not f.done()]
        future = self._client.submit(*args, **kwargs)
        self._futures.append(future)
        self.most_in_flight = max(self.most_in_flight, len(self._futures))
        return future

    def __getattr__(self, name):
        return getattr(self._client, name)


@exercise_check
def check_ordered_stream(ordered_stream, count=12, in_flight=2):
    """Run the learner's ``ordered_stream`` on a cluster of its own; say Right, or what is wrong.

    Item 0 is held on its worker until the stream has taken item ``in_flight + 2``
    from the producer: a stream that waits for the oldest task before handing out
    more work never gets there, and item 0 comes back "held up".
    """
    taken, results = [], []
    taken_before_first = None
    with local_client(n_workers=2) as client:
        name = f"ipckit-go-{time.monotonic_ns()}"
        go = Event(name, client=client)

        def producer():
            for item in range(count):
                if item == in_flight + 2:
                    go.set()
                taken.append(item)
                yield item

        counting = _CountingClient(client)
        work = functools.partial(hold_first, event_name=name)

        def consume_the_stream():  # in a thread of its own: a stream that never ends must not hang the kernel
            nonlocal taken_before_first
            for result in ordered_stream(counting, work, producer(), in_flight=in_flight):
                if taken_before_first is None:
                    taken_before_first = len(taken)
                results.append(result)
                if len(results) > count:
                    break

        ended, _ = call_with_deadline(consume_the_stream, (), CHECK_SECONDS)
        if not ended:
            raise Wrong(f"ordered_stream gave {len(results)} of {count} results and was still running "
                        f"{CHECK_SECONDS:.0f} s later: wait with a timeout (as_completed(..., timeout=...)), and "
                        "end the loop once every item's result is out.")
    expected = [n * n for n in range(count)]
    if "held up" in results:
        raise Wrong(f"item 0 waited {HOLD_SECONDS:.0f} s for the stream to move on: your loop waits for the "
                    "oldest task while the other worker sits idle. Hand out the next item as soon as any task "
                    "finishes (as_completed), and keep early results until their turn.")
    if counting.most_in_flight > in_flight:
        raise Wrong(f"{counting.most_in_flight} tasks were on the cluster at once; at most in_flight={in_flight} "
                    "may be. Submit in_flight items first, then one more each time a task finishes.")
    if taken_before_first == count:
        raise Wrong(f"all {count} items were taken from the producer before the first result: take the next "
                    "item only when a task finishes (an endless producer would never give you a result).")
    if Counter(results) == Counter(expected) and results != expected:
        raise Wrong(f"the results came in the order the tasks finished ({results[:5]}...); yield them in the "
                    "items' order: keep each result under its hand-off number until every earlier one is out.")
    if results != expected:
        raise Wrong(f"expected {expected}, got {results}")
    return (f"{count} results in order, never more than {in_flight} tasks on the cluster, and new work went "
            "out while item 0 was still running.")
