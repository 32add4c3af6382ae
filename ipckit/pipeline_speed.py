"""How fast the ordered pipeline is, beside what a user would pick instead.

Each ``*_rate`` function runs one side once and returns ``(items per second,
items checked)``: the rate runs from the first result (or a later one, with
``warm_up``) to the last, so starting processes is left out on every side,
and every result is checked (a wrong or missing one raises
``AssertionError``). The workers the children run live here too, so every
side runs the same code. For lesson 08, each returning plain numbers to draw:

- :func:`tiny_item_rates`: items/s for the strict hand-off, ``prefetch=1`` and
  ``chunksize=64`` beside ``Pool(1).imap`` (chunksize 1 and 64);
- :func:`big_array_rates` and :func:`work_sweep`: ``a * 2`` on big arrays done
  by one process alone against the pipeline and ``Pool``, and how much work
  per item a pipeline needs before it wins.

``benchmarks/pipeline_targets.py`` measures the performance targets with them.
"""
import functools
import os
import statistics
import time

import numpy as np

from .checks import check_count
from .context import get_context
from .lessons.workloads import identity, numbers
from .pipeline import SHARED_MEMORY_THRESHOLD, OrderedPipeline
from .sizes import MiB
from .watch import stop

FRAME_SHAPE = (240, 320)


# --- workers (they run in the children) -------------------------------------------------


def fresh_arrays(count, nbytes):
    """Yield ``count`` new float64 arrays of ``nbytes`` bytes, array ``i`` filled with ``i + 1``."""
    for number in range(count):
        array = np.empty(nbytes // 8)
        array.fill(number + 1)
        yield array


def double(array):
    """``array * 2``: a new array (one more copy when it goes back through a slot)."""
    return array * 2


def double_in_place(array):
    """Double ``array`` in place and return it: in a pipeline the result is then already in its slot."""
    np.multiply(array, 2, out=array)
    return array


def square_roots(array, passes=1):
    """Take the square root of ``array`` in place ``passes`` times: ``passes`` sets how much work an item is.

    (IEEE arithmetic rounds a square root correctly, so the result is the same
    in every process and can be checked value for value.)
    """
    for _ in range(passes):
        np.sqrt(array, out=array)
    return array


def frames(count, shape=FRAME_SHAPE):
    """Yield ``count`` new uint8 frames: frame ``i`` holds ``i`` in its first 4 bytes, ``i % 251`` in all others."""
    for number in range(count):
        frame = np.full(shape, number % 251, dtype=np.uint8)
        frame.reshape(-1)[:4] = np.frombuffer(number.to_bytes(4, "big"), dtype=np.uint8)
        yield frame


def queue_producer(out, count, shape=FRAME_SHAPE):
    """A plain Queue chain's first process: put every frame, then None."""
    for frame in frames(count, shape):
        out.put(frame)
    out.put(None)


def queue_relay(inbox, out, consume=identity):
    """A plain Queue chain's middle process: get, consume, put, until None."""
    while True:
        item = inbox.get()
        if item is None:
            out.put(None)
            return
        out.put(consume(item))


def echo(inbox, out):
    """The bare ping-pong's child: send back every message, until ``STOP`` or end-of-file."""
    read, write = inbox.fileno(), out.fileno()
    while True:
        message = os.read(read, 64)
        if not message or message == STOP:
            return
        os.write(write, message)


STOP = b"stop"


# --- checks -----------------------------------------------------------------------------


def check_number(index, value):
    assert value == index, f"result {index} is {value!r}"


def check_frame(index, frame):
    flat = frame.reshape(-1)
    assert int.from_bytes(flat[:4].tobytes(), "big") == index, f"frame {index} came in the wrong place"
    assert (flat[4:] == index % 251).all(), f"frame {index} is damaged"


def array_check(factor=2.0, roots=0):
    """A check for array ``i``: every value ``(i + 1) * factor`` (square-rooted ``roots`` times),
    read once in every 4 KiB page."""

    def check(index, array):
        step = max(1, 4096 // array.itemsize)
        expected = np.float64((index + 1) * factor)
        for _ in range(roots):
            expected = np.sqrt(expected)
        assert array[-1] == expected and (array[::step] == expected).all(), f"array {index} is wrong"

    return check


# --- one side, once --------------------------------------------------------------------


def steady_rate(results, check, count, warm_up=1):
    """Items/s from result number ``warm_up`` to the last; every result checked, and there must be ``count``.

    ``warm_up=1`` leaves out only the wait for the first result (starting the
    processes). With big arrays, the first trip through each shared-memory
    slot maps its pages in every process once: a larger ``warm_up`` leaves
    that out too, to measure a long stream's steady rate.
    """
    first, seen = None, 0
    for value in results:
        check(seen, value)
        seen += 1
        if seen == warm_up:
            first = time.perf_counter()
    elapsed = time.perf_counter() - first if first is not None else 0.0
    assert seen == count, f"{seen} results instead of {count}"
    return ((seen - warm_up) / elapsed if elapsed > 0 else float("nan")), seen


def pipeline_rate(produce, consume, args, count, check, start_method=None, warm_up=1, **options):
    with OrderedPipeline(produce, consume, args, start_method=start_method, **options) as pipe:
        return steady_rate(pipe, check, count, warm_up)


def pool_rate(func, iterable, count, check, workers=1, chunksize=1, start_method=None, warm_up=1):
    with get_context(start_method).Pool(workers) as pool:
        rate = steady_rate(pool.imap(func, iterable, chunksize=chunksize), check, count, warm_up)
    pool.join()
    return rate


def executor_rate(func, iterable, count, check, workers=1, start_method=None):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=get_context(start_method)) as executor:
        return steady_rate(executor.map(func, iterable), check, count)


def mpire_rate(func, iterable, count, check, workers=1, chunk_size=1, start_method=None, warm_up=1):
    from mpire import WorkerPool

    from .context import resolve_start_method

    with WorkerPool(n_jobs=workers, start_method=resolve_start_method(start_method)) as pool:
        return steady_rate(pool.imap(func, iterable, chunk_size=chunk_size), check, count, warm_up)


def joblib_rate(func, iterable, count, check, workers=2):
    """joblib's generator, as users call it (loky workers, automatic batches); its workers are shut down after."""
    from joblib import Parallel, delayed
    from joblib.externals.loky import get_reusable_executor

    try:
        results = Parallel(n_jobs=workers, return_as="generator")(delayed(func)(item) for item in iterable)
        return steady_rate(results, check, count)
    finally:
        get_reusable_executor().shutdown(wait=True)


def queue_chain_rate(count, consume=identity, shape=FRAME_SHAPE, start_method=None, timeout=60, warm_up=1):
    """A plain Queue chain producer -> consumer -> main, for frames."""
    ctx = get_context(start_method)
    first, last = ctx.Queue(), ctx.Queue()
    children = [ctx.Process(target=queue_producer, args=(first, count, shape)),
                ctx.Process(target=queue_relay, args=(first, last, consume))]
    for child in children:
        child.start()
    try:
        return steady_rate(_until_none(last, timeout), check_frame, count, warm_up)
    finally:
        stop(children, grace=5)
        for q in (first, last):
            q.close()
            q.join_thread()


def _until_none(inbox, timeout):
    while True:
        item = inbox.get(timeout=timeout)
        if item is None:
            return
        yield item


def ping_pong_rate(count, start_method=None):
    """Round trips/s of two bare processes bouncing a small message over pipes: the strict hand-off's limit."""
    ctx = get_context(start_method)
    to_child, child_in = ctx.Pipe(duplex=False)[::-1]
    child_out, from_child = ctx.Pipe(duplex=False)[::-1]
    child = ctx.Process(target=echo, args=(child_in, child_out))
    child.start()
    child_in.close()
    child_out.close()
    write, read = to_child.fileno(), from_child.fileno()
    try:
        first = None
        for index in range(count):
            message = index.to_bytes(8, "big")
            os.write(write, message)
            answer = os.read(read, 64)
            assert answer == message, f"round trip {index} came back as {answer!r}"
            if first is None:
                first = time.perf_counter()
        return (count - 1) / (time.perf_counter() - first), count
    finally:
        try:
            os.write(write, STOP)
        except OSError:
            pass
        to_child.close()
        from_child.close()
        stop(child, grace=5)


# --- for the lesson ---------------------------------------------------------------------


def _rounds(sides, rounds):
    """Run every side once per round, in turn, so a busy moment hits all of them; median items/s of each."""
    rates = {name: [] for name in sides}
    for _ in range(check_count(rounds, "rounds")):
        for name, side in sides.items():
            rates[name].append(side()[0])
    return {name: statistics.median(values) for name, values in rates.items()}


def tiny_item_rates(count=5000, rounds=1, start_method=None):
    """Items/s for tiny items (``x -> x``, one consumer or worker) through the pipeline and Pool.imap.

    Keys: ``"strict"``, ``"prefetch=1"``, ``"chunksize=64"`` (the pipeline with
    its defaults, then each option), ``"Pool(1).imap"`` and
    ``"Pool(1).imap chunksize=64"``. The sides with chunks get 20 x ``count``
    items (they are that much faster). With ``rounds`` > 1 each side runs that
    many times, in turn, and the median counts.
    """
    count = check_count(count, "count", minimum=2)
    many = 20 * count

    def pipeline(items, **options):
        return lambda: pipeline_rate(numbers, identity, (items,), items, check_number, start_method, **options)

    def pool(items, chunksize):
        return lambda: pool_rate(identity, range(items), items, check_number, 1, chunksize, start_method)

    return _rounds({
        "strict": pipeline(count),
        "prefetch=1": pipeline(count, prefetch=1),
        "chunksize=64": pipeline(many, chunksize=64),
        "Pool(1).imap": pool(count, 1),
        "Pool(1).imap chunksize=64": pool(many, 64),
    }, rounds)


def big_array_rates(nbytes=16 * MiB, count=30, rounds=1, start_method=None):
    """Arrays/s for ``a * 2`` on a new array per item: one process doing it all, against processes.

    Keys: ``"one process"`` (make, double, check, in a plain loop),
    ``"pipeline, in place"`` (``double_in_place``: the result stays in its
    slot), ``"pipeline, a * 2"`` (a new array, copied into the slot) and
    ``"Pool(1).imap"`` (a third of the items: it is slow). Every side's clock
    starts at its ``count // 4``-th result, after the slots' first use.
    """
    nbytes = check_count(nbytes, "nbytes", minimum=SHARED_MEMORY_THRESHOLD)
    count = check_count(count, "count", minimum=8)
    check, warm = array_check(2.0), count // 4
    few = max(4, count // 3)
    return _rounds({
        "one process": lambda: steady_rate(map(double, fresh_arrays(count, nbytes)), check, count, warm),
        "pipeline, in place": lambda: pipeline_rate(fresh_arrays, double_in_place, (count, nbytes), count, check,
                                                    start_method, warm),
        "pipeline, a * 2": lambda: pipeline_rate(fresh_arrays, double, (count, nbytes), count, check, start_method,
                                                 warm),
        "Pool(1).imap": lambda: pool_rate(double, fresh_arrays(few, nbytes), few, check, 1, 1, start_method,
                                          few // 4),
    }, rounds)


def work_sweep(passes=(0, 1, 2, 4, 8, 16), nbytes=4 * MiB, count=40, consumers=2, start_method=None):
    """Arrays/s against work per item: one process alone, and the pipeline with ``consumers`` consumers.

    An item is a new array of ``nbytes``, square-rooted in place ``p`` times,
    for each ``p`` in ``passes`` (0: no work, only the trip). Returns
    ``[{"passes": p, "one process": rate, "pipeline": rate}, ...]``: where the
    pipeline's rate passes the single process's, the work per item has become
    worth the hand-offs. Clocks start at the ``count // 4``-th result.
    """
    count = check_count(count, "count", minimum=8)
    rows = []
    for work in passes:
        work = check_count(work, "passes", minimum=0)
        consume = functools.partial(square_roots, passes=work)
        check = array_check(1.0, roots=work)
        alone = steady_rate(map(consume, fresh_arrays(count, nbytes)), check, count, count // 4)[0]
        piped = pipeline_rate(fresh_arrays, consume, (count, nbytes), count, check, start_method, count // 4,
                              consumers=consumers)[0]
        rows.append({"passes": work, "one process": alone, "pipeline": piped})
    return rows
