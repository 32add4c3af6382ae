"""Measuring, one API and one record: array transports against memcpy, latency, start-up, fresh pages.

What a hand-off time includes (the same for every transport)
-------------------------------------------------------------
Transports are measured streaming, the way programs use them: a burst of
``frames`` arrays (default :data:`DEFAULT_FRAMES`) goes from this process to a
child one after the other, the sender never waiting for the reader, and the
reader holds every array it received until the burst is over. A burst is timed
from just before the first ``sender.send(array)`` here to just after the last
``receiver.recv()`` returns in the child, on ``time.perf_counter``, a clock
every process on the machine shares; the figure is that time divided by
``frames``: seconds per array. So it includes all the work the transport does
on both sides, as much of it overlapped as the transport allows: pickling, the
kernel's copies, the acknowledgements the shared-buffer transports wait for,
and the receiver allocating the arrays it returns (fresh arrays: their page
faults are inside the interval), except for ``shared_memory``, whose receiver
reads in place: one copy in all, the sender's, and an array the reader does not
own (it is the sender's again after the next ``recv()``). To compare it like
with like, :func:`copied_out` makes its reader copy each array, as the others
hand over one the reader owns. ``frames=1`` measures a lone hand-off instead
(the latency of one array, nothing to overlap).

It does not include starting the child: one child receives every burst of a
measurement, started before the first. The exception is ``fork_global``, whose
data travels by ``fork`` itself: each of its bursts is one array and one new
child, so its time is the time to fork a child that can read the array, in
place (it exists only under the ``fork`` start method). That time grows with
the memory the parent maps, the array included: ``fork`` copies page tables.

Each measurement makes ``warmup`` bursts that are not timed, then ``repeat``
timed ones, and reports the minimum and the median seconds per array, and GB/s
(10**9 bytes per second) from the median. The arrays of a burst differ (each
carries its number in the first byte of every 64 KiB). After every burst, timed
or not, and after the clock has stopped, the child computes the fingerprint
(shape, dtype, CRC-32 of the bytes) of every array it held and this process
compares them with what it sent: ``ok`` is False if any array differed, for
instance because the sender wrote over it while the reader held it (a transport
that is only safe in lock-step). :func:`corrupted` wraps a transport so that
its receiver flips one bit, to show that the check can fail.

The reference row ``memcpy`` is ``numpy.copyto`` of the same array into a
destination allocated and touched once beforehand, in this process: one memory
copy, no process, no allocation, no page faults. For big arrays it is the
limit for any transport that copies the data once (``shared_memory`` comes
close); most copy it twice or more. For small ones its time is mostly the cost
of one numpy call, not of moving bytes: a ceiling, not a physical limit.

A combination that cannot or should not run here is not an error: it becomes a
record with a ``reason`` (a transport under a start method it cannot use,
shared memory larger than the free space in ``/dev/shm``, ``rawarray_seq`` or
``manager`` above the size at which they would take minutes).

One kind of record, plain dicts, from every function here. Each names what
was measured (``transport, start_method, nbytes`` for a hand-off, memcpy or
:func:`pipe_ceiling` (bare bytes through a pipe, the pipe transports' limit);
``channel, what, start_method`` for :func:`latency`; ``start_method`` for
:func:`startup`; ``way, nbytes, pages, page_faults`` for
:func:`fresh_vs_reused`) and holds ``repeat``, ``seconds_min``,
``seconds_median`` and, where bytes moved, ``gb_per_s`` (from the median),
``ok`` (every copy checked out) and ``seconds`` (every timed repeat). A
combination that was not measured holds ``reason`` instead of the timings. The
CSV (:func:`write_csv`), the text tables, the charts in :mod:`ipckit.plots`,
the widgets, the CLI and ``benchmarks/`` all read these records.
"""
import contextlib
import csv
import functools
import os
import statistics
import sys
import time

import numpy as np

from . import messages, shm
from .checks import check_count, check_timeout
from .child import LineChild
from .context import START_METHODS, get_context, resolve_start_method
from .dtypes import fingerprint
from .run import Child, run_in_child
from .sizes import UNITS, GiB, KiB, MiB, format_size, parse_size, parse_sizes  # noqa: F401  (part of the API)
from .transports import TRANSPORTS, Transport, get_transport
from .variants import copied_out as copied_out  # part of the measuring API: a like-for-like reader
from .variants import corrupted as corrupted  # and checks that can fail
from .variants import released_early as released_early
from .watch import DEFAULT_TIMEOUT, read_into, receive, stop, write_all

DEFAULT_SIZES = (4 * KiB, MiB, 16 * MiB, 128 * MiB)
DEFAULT_REPEAT = 5
DEFAULT_WARMUP = 1
DEFAULT_FRAMES = 4  # arrays per timed burst: streaming, the reader holding each one until the burst ends
MEMCPY = "memcpy"
CSV_COLUMNS = ("transport", "start_method", "nbytes", "repeat", "seconds_min", "seconds_median", "gb_per_s", "ok")
IN_PROCESS = "in-process"  # the start method column of the memcpy row: no process is started

# --- names -----------------------------------------------------------------------------

def transport_names(transports=None):
    """The transports to measure: ``None`` or ``"all"`` for every one, else names (a list or ``"a,b"``).

    ``"memcpy"`` may be named but is always measured anyway. Transport objects
    (e.g. from :func:`corrupted`) pass through. ValueError lists the valid names.
    """
    if transports is None or transports == "all":
        return list(TRANSPORTS)
    items = transports.split(",") if isinstance(transports, str) else list(transports)
    chosen, memcpy_only = [], False
    for item in items:
        if isinstance(item, str):
            item = item.strip()
            if item == MEMCPY:
                memcpy_only = True
                continue
            if item not in TRANSPORTS:
                raise ValueError(f"unknown transport {item!r}; choose all or any of: {', '.join(TRANSPORTS)}")
        elif not isinstance(item, Transport):
            raise TypeError(f"a transport is a name such as 'pipe_bytes' or a Transport, not {type(item).__name__}")
        if item not in chosen:
            chosen.append(item)
    if not chosen and not memcpy_only:
        raise ValueError(f"no transport named; choose all or any of: {', '.join(TRANSPORTS)}")
    return chosen


def sample_array(nbytes):
    """The array every measurement sends: float64 values 0, 1, 2... (uint8 when ``nbytes`` is not a multiple of 8)."""
    nbytes = check_count(nbytes, "nbytes")
    if nbytes % 8 == 0:
        return np.arange(nbytes // 8, dtype=np.float64)
    return (np.arange(nbytes) % 251).astype(np.uint8)


# --- records and timing --------------------------------------------------------------------------


def _runs(repeat, warmup, frames=1):
    """``repeat``, ``warmup`` and ``frames``, checked: at least 1, 0 and 1."""
    return check_count(repeat, "repeat"), check_count(warmup, "warmup", minimum=0), check_count(frames, "frames")


def _summary(seconds, nbytes=None):
    """The timing fields every record has: ``repeat, seconds_min, seconds_median``, and ``gb_per_s`` for ``nbytes``."""
    record = {
        "repeat": len(seconds),
        "seconds_min": min(seconds),
        "seconds_median": statistics.median(seconds),
    }
    if nbytes is not None:
        median = record["seconds_median"]
        record["gb_per_s"] = nbytes / median / 1e9 if median > 0 else float("inf")
    return record


def time_calls(call, repeat, warmup, check=None):
    """Call ``call`` ``warmup`` times, then time ``repeat`` calls; run ``check()`` after each, untimed.

    Returns (seconds of the timed calls, whether every check returned True).
    """
    seconds, ok = [], True
    for index in range(warmup + repeat):
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        if index >= warmup:
            seconds.append(elapsed)
        if check is not None:
            ok &= bool(check())
    return seconds, ok


def memcpy(nbytes, repeat=DEFAULT_REPEAT, warmup=DEFAULT_WARMUP):
    """The reference row: ``numpy.copyto`` of the test array into a destination touched beforehand."""
    nbytes = check_count(nbytes, "nbytes")
    repeat, warmup, _ = _runs(repeat, warmup)
    source = sample_array(nbytes)
    target = np.empty_like(source)
    target[...] = 0  # touch every page now, so no page fault is timed
    expected = fingerprint(source)
    seconds, ok = time_calls(
        lambda: np.copyto(target, source), repeat, warmup, check=lambda: fingerprint(target) == expected
    )
    return {"transport": MEMCPY, "start_method": IN_PROCESS, "nbytes": nbytes, "frames": 1,
            **_summary(seconds, nbytes), "ok": ok, "seconds": seconds}


def _write_sample(conn, nbytes, times):
    """The child of :func:`pipe_ceiling`: write the test array's bytes to ``conn`` ``times`` times.

    Blocking writes, the barest there are. Under spawn and forkserver a write
    fails (``BrokenPipeError``) once the reader has gone; under fork the child
    holds a copy of the read end too, so :func:`pipe_ceiling` stops it on every
    path instead.
    """
    data = sample_array(nbytes)
    for _ in range(times):
        write_all(conn, data)


def pipe_ceiling(nbytes, start_method=None, repeat=DEFAULT_REPEAT, warmup=DEFAULT_WARMUP, timeout=DEFAULT_TIMEOUT):
    """The most any transport over a pipe can reach here: bare bytes from a child through one OS pipe.

    The child writes the test array's bytes again and again; this process reads
    each copy with ``os.readv`` straight into one buffer touched beforehand,
    timed per copy, and checks it after the clock stops. No pickling, no
    header, no allocation: only the kernel's two copies and the wake-ups, so a
    pipe transport's GB/s near this figure is as fast as the machine's pipes.
    """
    nbytes = check_count(nbytes, "nbytes")
    method = resolve_start_method(start_method)
    repeat, warmup, _ = _runs(repeat, warmup)
    check_timeout(timeout)
    source = sample_array(nbytes)
    expected = fingerprint(source)
    target = np.zeros_like(source)  # zeros: every page touched now, none faulted in while timed
    del source
    ctx = get_context(method)
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_write_sample, args=(writer, nbytes, warmup + repeat), daemon=True)
    seconds, ok = [], True
    try:
        child.start()
        writer.close()
        for index in range(warmup + repeat):
            start = time.perf_counter()
            read_into(reader, target, timeout=timeout, process=child, what="the test array's bytes")
            elapsed = time.perf_counter() - start
            if index >= warmup:
                seconds.append(elapsed)
            ok &= fingerprint(target) == expected
    finally:
        writer.close()
        reader.close()
        stop([child])
    return {"transport": "bare pipe", "start_method": method, "nbytes": nbytes, "frames": 1,
            **_summary(seconds, nbytes), "ok": ok, "seconds": seconds}


# --- hand-offs: bursts streamed to a child that holds every array ---------------------------------

STAMP_EVERY = 64 * 1024  # bytes between two stamps of an array's number in its burst


def _timed_receiver(receiver, report, bursts, frames, timeout):
    """Child: receive ``bursts`` bursts of ``frames`` arrays, holding every array of a burst.

    Says "ready" first, so no burst's time includes starting the child. Reports
    when the burst's last array arrived (the clock stops there), then the
    fingerprint of every array of the burst, computed afterwards, then releases
    them and waits for the next burst.
    """
    try:
        report.send("ready")  # the parent starts its clock after this: the child's start-up is not timed
        for _ in range(bursts):
            held = [receiver.recv(timeout) for _ in range(frames)]
            report.send(time.perf_counter())
            report.send([fingerprint(array) for array in held])  # checked outside the timed interval
            del held
            receiver.release()
        return bursts
    finally:
        receiver.close()
        report.close()


def _stamped(array, frames):
    """What to send: ``array`` itself for one frame; else a C-ordered copy and a way to stamp frame k into it.

    The stamp (the frame's number in the first byte of every 64 KiB) makes every
    array of a burst differ from the others, so an array overwritten by a later
    one while the reader holds it cannot pass the check. Stamping is inside the
    timed interval (the sender makes its next array), so it is kept sparse: for
    64 MiB, 1,024 bytes to write against a 64 MiB copy.
    """
    if frames == 1:
        return array, lambda k: None
    source = np.array(array, order="C", copy=True)
    stamps = source.reshape(-1).view(np.uint8)[::STAMP_EVERY]

    def stamp(k):
        stamps[...] = k % 256

    return source, stamp


def _time_bursts(array, transport, method, repeat, warmup, timeout, frames):
    """Seconds per array of each timed burst of ``frames`` arrays, and whether every array held checked out.

    One child receives every burst (``fork_global``: one child per burst, as
    its data travels by the fork). ``time.perf_counter`` is the same monotonic
    clock in every process on Linux, so the child's arrival time ends an
    interval that began here.
    """
    source, stamp = _stamped(array, frames)
    expected = []
    for k in range(frames):
        stamp(k)
        expected.append(fingerprint(source))
    seconds, ok = [], True
    total = warmup + repeat
    for bursts in [1] * total if transport.send_before_start else [total]:
        with transport.open(source.nbytes, method, hold=frames) as link:
            arrivals, report = get_context(method).Pipe(duplex=False)
            try:
                if transport.send_before_start:
                    start = time.perf_counter()
                    link.sender.send(source, timeout)
                args = (link.receiver, report, bursts, frames, timeout)
                with Child(_timed_receiver, args, start_method=method, name=f"receive:{transport.name}") as child:
                    link.receiver.close()
                    report.close()
                    receive(arrivals, child.process, timeout, "the receiver's start")
                    for _ in range(bursts):
                        if not transport.send_before_start:
                            start = time.perf_counter()
                            for k in range(frames):
                                stamp(k)
                                link.sender.send(source, timeout, peer=child.process)
                        arrived = receive(arrivals, child.process, timeout, "arrival time")
                        seconds.append((arrived - start) / frames)
                        ok &= receive(arrivals, child.process, timeout, "fingerprints") == expected
                    child.result(timeout)
            finally:
                arrivals.close()
                report.close()
    return seconds[warmup:], ok


def hand_off(nbytes, transport, start_method=None, repeat=DEFAULT_REPEAT, warmup=DEFAULT_WARMUP,
             timeout=DEFAULT_TIMEOUT, frames=DEFAULT_FRAMES):
    """Measure one transport at one size: ``warmup`` untimed, then ``repeat`` timed bursts of ``frames`` arrays.

    Returns a record (see the module docstring), with a ``reason`` instead of
    timings when the combination cannot or should not run here. Bad arguments
    raise here, before any process starts. ``timeout`` limits each wait (for
    room to send, for an arrival), never the whole measurement.
    """
    transport = get_transport(transport)
    nbytes = check_count(nbytes, "nbytes")
    method = resolve_start_method(start_method)
    repeat, warmup, frames = _runs(repeat, warmup, frames)
    check_timeout(timeout)
    frames = 1 if transport.send_before_start else frames
    record = {"transport": transport.name, "start_method": method, "nbytes": nbytes, "repeat": repeat}
    reason = transport.unavailable_reason(nbytes, method, hold=frames)
    if reason:
        return {**record, "reason": reason}
    seconds, ok = _time_bursts(sample_array(nbytes), transport, method, repeat, warmup, timeout, frames)
    return {**record, "frames": frames, **_summary(seconds, nbytes), "ok": ok, "seconds": seconds}


class _NoBar:
    def set_postfix_str(self, text):
        pass

    def update(self, n=1):
        pass


@contextlib.contextmanager
def _progress(progress, total, what):
    """A tqdm bar (``tqdm.auto``: a widget in Jupyter, text on stderr elsewhere) if ``progress``, else nothing."""
    if not progress:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=what, unit="step", file=sys.stderr, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


def measure(sizes=DEFAULT_SIZES, transports=None, start_method=None, repeat=DEFAULT_REPEAT,
            warmup=DEFAULT_WARMUP, timeout=DEFAULT_TIMEOUT, progress=False, frames=DEFAULT_FRAMES):
    """:func:`memcpy` and :func:`hand_off` for every size and transport; return the records in that order.

    ``sizes``: bytes or strings such as ``"16MiB"`` (a list, or ``"4KiB,1MiB"``);
    ``transports``: ``None``/``"all"`` or names; ``progress=True`` shows a tqdm bar.
    """
    sizes = parse_sizes(sizes)
    names = transport_names(transports)
    method = resolve_start_method(start_method)
    repeat, warmup, frames = _runs(repeat, warmup, frames)
    check_timeout(timeout)
    steps = [(size, name) for size in sizes for name in [MEMCPY] + names]
    records = []
    with _progress(progress, len(steps), "hand-offs") as bar:
        for size, name in steps:
            label = name if isinstance(name, str) else name.name
            bar.set_postfix_str(f"{label} {format_size(size)}")
            if name == MEMCPY:
                records.append(memcpy(size, repeat, warmup))
            else:
                records.append(hand_off(size, name, method, repeat, warmup, timeout, frames))
            bar.update()
    return records


def all_ok(records):
    """True when every measured record's received copies checked out (skipped records do not count)."""
    return all(record["ok"] for record in records if "ok" in record)


def speeds(records):
    """``{transport: GB/s}`` of the measured records (one size, one start method), memcpy included."""
    return {r["transport"]: r["gb_per_s"] for r in records if "gb_per_s" in r}


# --- fresh shared memory against a reused slot ------------------------------------------------------

FRESH, REUSED = "fresh block", "reused slot"


def _minor_faults():
    import resource  # POSIX only: imported where page faults are counted, so the module loads everywhere

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _counting_faults(call, faults):
    """``call``, wrapped so that each call appends the minor page faults it took to ``faults``."""

    def counted():
        before = _minor_faults()
        call()
        faults.append(_minor_faults() - before)

    return counted


def fresh_vs_reused(nbytes=8 * MiB, repeat=DEFAULT_REPEAT, warmup=DEFAULT_WARMUP):
    """Copy a float64 array into shared memory: into a new block each time, then into one reused slot.

    Returns two records, ``way`` "fresh block" then "reused slot": the timing
    fields of every record (``gb_per_s`` from the median), ``ok`` (the block
    held the array, checked after the clock), ``pages`` and ``page_faults``
    (the median per copy). Runs in this process: the cost is about new pages,
    not about processes. A fresh block's time includes making it
    (``shm.create``, which reserves its pages); closing it is not timed.
    """
    nbytes = check_count(nbytes, "nbytes", minimum=8)
    repeat, warmup, _ = _runs(repeat, warmup)
    source = np.arange(nbytes // 8, dtype=np.float64)
    expected, pages = fingerprint(source), -(-source.nbytes // shm.PAGE)

    def measured(way, call, check):
        faults = []
        seconds, ok = time_calls(_counting_faults(call, faults), repeat, warmup, check)
        return {"way": way, "nbytes": source.nbytes, "pages": pages, **_summary(seconds, source.nbytes), "ok": ok,
                "seconds": seconds, "page_faults": int(statistics.median(faults[warmup:]))}

    blocks = []  # the fresh block of the last copy, closed by its check, outside the clock

    def copy_into_a_fresh_block():
        blocks.append(shm.create(source.nbytes))
        blocks[-1].write(source)

    try:
        records = [measured(FRESH, copy_into_a_fresh_block, lambda: _holds(blocks.pop(), expected))]
    finally:
        for block in blocks:
            block.close()
    with shm.SlotPool(1, source.nbytes) as pool:  # made after the fresh blocks are gone: a small /dev/shm holds one
        ref = pool.ref(0, source.shape, source.dtype)
        records.append(measured(REUSED, lambda: pool.write(0, source), lambda: fingerprint(pool.read(ref)) == expected))
    return records


def _holds(block, expected):
    """Whether ``block`` holds the array ``expected`` fingerprints, at its start; then close it."""
    with block:
        return fingerprint(block.read(block.ref(expected.shape, expected.dtype))) == expected


# --- latency: small messages there and back ---------------------------------------------------------

CHANNELS = {
    "queue": "an int to a child through one Queue, and back through another",
    "pipe": "a request to messages.PipeServer through a duplex Pipe, and its reply (ask() also watches the child)",
    "manager": "reading one key of a Manager dict proxy (a round trip to the server process)",
    "subprocess": "a line to child.LineChild's stdin, and its reply line from stdout",
}
STOP = None


def _echo_queue(requests, replies, timeout):
    """Child: put back every item that arrives, until STOP."""
    while True:
        item = requests.get(timeout=timeout)
        if item is STOP:
            return
        replies.put(item)


@contextlib.contextmanager
def _queue_round_trip(method, timeout):
    ctx = get_context(method)
    requests, replies = ctx.Queue(), ctx.Queue()
    try:
        with Child(_echo_queue, (requests, replies, timeout), start_method=method, name="queue-echo") as echo:
            yield lambda: (requests.put(1), replies.get(timeout=timeout))
            requests.put(STOP)
            echo.result(timeout)
    finally:
        for queue in (requests, replies):
            queue.close()
            queue.join_thread()


@contextlib.contextmanager
def _pipe_round_trip(method, timeout):
    with messages.PipeServer(method, timeout) as server:
        yield lambda: server.ask("square", 3)


@contextlib.contextmanager
def _manager_round_trip(method, timeout):
    with get_context(method).Manager() as manager:
        proxy = manager.dict(key=1)
        yield lambda: proxy["key"]


@contextlib.contextmanager
def _subprocess_round_trip(method, timeout):
    with LineChild(timeout=timeout) as child:  # subprocess.Popen: no start method
        yield lambda: child.ask("square 3")


_ROUND_TRIPS = {
    "queue": _queue_round_trip,
    "pipe": _pipe_round_trip,
    "manager": _manager_round_trip,
    "subprocess": _subprocess_round_trip,
}


def latency(channels=None, start_method=None, repeat=200, warmup=20, timeout=DEFAULT_TIMEOUT, progress=False):
    """Time ``repeat`` round trips of a small message through each channel (after ``warmup`` untimed ones).

    Each round trip is timed on its own, from this process; the peer (child,
    server or subprocess) is started before the first. Records: ``channel,
    what, start_method, repeat, seconds_min, seconds_median`` (``start_method``
    is None for the subprocess, which ``subprocess.Popen`` starts).
    """
    names = list(CHANNELS) if channels is None else list(channels)
    for name in names:
        if name not in CHANNELS:
            raise ValueError(f"unknown channel {name!r}; choose any of: {', '.join(CHANNELS)}")
    method = resolve_start_method(start_method)
    repeat, warmup, _ = _runs(repeat, warmup)
    check_timeout(timeout)
    records = []
    with _progress(progress, len(names), "round trips") as bar:
        for name in names:
            bar.set_postfix_str(name)
            with _ROUND_TRIPS[name](method, timeout) as round_trip:
                seconds, _ = time_calls(round_trip, repeat, warmup)
            records.append({"channel": name, "what": CHANNELS[name],
                            "start_method": None if name == "subprocess" else method, **_summary(seconds)})
            bar.update()
    return records


def startup(start_methods=None, repeat=5, warmup=1, timeout=DEFAULT_TIMEOUT):
    """Seconds to start a child, run a function that returns at once, and have its result back, per start method."""
    methods = [resolve_start_method(m) for m in (start_methods or START_METHODS)]
    repeat, warmup, _ = _runs(repeat, warmup)
    records = []
    for method in methods:
        start_one = functools.partial(run_in_child, os.getpid, start_method=method, timeout=timeout)  # returns at once
        seconds, _ = time_calls(start_one, repeat, warmup)
        records.append({"start_method": method, **_summary(seconds)})
    return records


# --- output -------------------------------------------------------------------------------------


def _format_seconds(seconds):
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def table(records):
    """The hand-off records as a text table: one block per size, fastest first, skipped ones last with their reason."""
    width = max([19] + [len(r["transport"]) for r in records])
    lines = [f"{'size':>9}  {'transport':<{width}} {'start':<10} {'min':>9} {'median':>9} {'GB/s':>8} "
             f"{'x memcpy':>8}  ok"]
    for size in dict.fromkeys(r["nbytes"] for r in records):
        block = [r for r in records if r["nbytes"] == size]
        limit = next((r["gb_per_s"] for r in block if r["transport"] == MEMCPY), None)
        measured = sorted((r for r in block if "reason" not in r), key=lambda r: -r["gb_per_s"])
        for r in measured:
            ratio = f"{r['gb_per_s'] / limit:.2f}" if limit else "-"
            lines.append(
                f"{format_size(size):>9}  {r['transport']:<{width}} {r['start_method']:<10} "
                f"{_format_seconds(r['seconds_min']):>9} {_format_seconds(r['seconds_median']):>9} "
                f"{r['gb_per_s']:8.3g} {ratio:>8}  {'yes' if r['ok'] else 'NO'}"
            )
        for r in block:
            if "reason" in r:
                lines.append(f"{format_size(size):>9}  {r['transport']:<{width}} {r['start_method']:<10} "
                             f"skipped: {r['reason']}")
    frames = sorted({r["frames"] for r in records if "frames" in r and r["transport"] not in (MEMCPY, "fork_global")})
    if frames:
        burst = " or ".join(str(n) for n in frames)
        lines.append(f"Times per array, from bursts of {burst} sent without waiting, the reader holding each one.")
    lines.append("GB/s from the median; ok: every array received had the CRC-32 of the one sent.")
    if any(r["transport"] == "fork_global" and "reason" not in r for r in records):
        lines.append("fork_global: the time to fork a child that can read the array in place "
                     "(it grows with the parent's memory).")
    in_place = [r["transport"] for r in records if r["transport"] in TRANSPORTS and "reason" not in r
                and TRANSPORTS[r["transport"]].in_place]
    for name in dict.fromkeys(in_place):
        lines.append(f"{name}: read in place, no copy by the reader; the others hand over an array the reader owns.")
    return "\n".join(lines)


def latency_table(records):
    """The latency records as a text table."""
    lines = [f"{'channel':<11} {'median':>9} {'min':>9}  round trip"]
    for r in records:
        lines.append(f"{r['channel']:<11} {_format_seconds(r['seconds_median']):>9} "
                     f"{_format_seconds(r['seconds_min']):>9}  {r['what']}")
    return "\n".join(lines)


def write_csv(records, path):
    """Write the measured hand-off records (memcpy included, skipped ones left out) as CSV with :data:`CSV_COLUMNS`."""
    rows = [r for r in records if "reason" not in r]
    with contextlib.ExitStack() as stack:
        out = path if hasattr(path, "write") else stack.enter_context(open(path, "w", newline="", encoding="utf-8"))
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow([
                r["transport"], r["start_method"], r["nbytes"], r["repeat"],
                f"{r['seconds_min']:.6g}", f"{r['seconds_median']:.6g}", f"{r['gb_per_s']:.6g}",
                "true" if r["ok"] else "false",
            ])
    return len(rows)
