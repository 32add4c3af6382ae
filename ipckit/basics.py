"""Lesson 00's workers: threads against processes, and what a child needs to find your function."""
import gc
import threading
import time

from .context import get_context, require_importable, resolve_start_method
from .checks import check_count, check_timeout
from .run import DEFAULT_TIMEOUT, run_many, stop_process


def count_down(steps):
    """Pure-Python CPU work; returns (start, end) on the shared perf_counter clock."""
    start = time.perf_counter()
    while steps:
        steps -= 1
    return start, time.perf_counter()


def threads_vs_processes(workers=2, steps=20_000_000, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Run the same CPU-bound job in 1 thread, ``workers`` threads and ``workers`` processes.

    Returns, for each way, the wall time and each worker's (start, end) interval
    relative to the start, ready for :func:`ipckit.plots.plot_lanes`. Threads share
    one interpreter lock, so they take turns; processes run side by side.
    """
    workers = check_count(workers, "workers")
    steps = check_count(steps, "steps")
    runs = {}

    def measure(label, run):
        begin = time.perf_counter()
        intervals = run()
        runs[label] = {
            "wall_s": time.perf_counter() - begin,
            "intervals": [(start - begin, end - begin) for start, end in intervals],
        }

    measure("1 thread", lambda: [count_down(steps)])

    def in_threads():
        results = [None] * workers
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, count_down(steps))) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    measure(f"{workers} threads", in_threads)
    measure(f"{workers} processes", lambda: run_many([(count_down, (steps,))] * workers, start_method, timeout))
    return runs


def process_with_function(func, *args, start_method="spawn", timeout=10.0):
    """Start ``Process(target=func, args=args)`` with no checks and report how it ended.

    With a function defined in a notebook cell under spawn, the child cannot
    find it: it prints an AttributeError on its stderr and exits with code 1.
    """
    check_timeout(timeout)
    ctx = get_context(start_method)
    process = ctx.Process(target=func, args=args)
    try:
        process.start()
        process.join(timeout)
        return {"start_method": ctx.get_start_method(), "exitcode": process.exitcode}
    finally:
        stop_process(process)


def pool_with_function(func, start_method="spawn", wait_seconds=3.0):
    """Call ``Pool.map`` with ``func`` and give up after ``wait_seconds``.

    A Pool whose workers cannot unpickle the function does not raise: each worker
    dies and is replaced, and ``map`` waits for ever. ``map_async(...).get(timeout)``
    turns that hang into a TimeoutError; the pool is then terminated.
    """
    check_timeout(wait_seconds, "wait_seconds")
    ctx = get_context(start_method)
    pool = ctx.Pool(1)
    try:
        return {"result": pool.map_async(func, [1, 2, 3]).get(timeout=wait_seconds)}
    except Exception as exc:  # TimeoutError here; other errors reported the same way
        return {"result": f"{type(exc).__name__} after {wait_seconds} s: the pool never answered"}
    finally:
        pool.terminate()
        pool.join()
        del pool
        gc.collect()  # a Pool holds reference cycles; its semaphores go only when it is collected


def check_function(func, start_method=None):
    """What ipckit says, before any process starts, about sending ``func`` to a child."""
    method = resolve_start_method(start_method)
    try:
        require_importable(func, method)
    except TypeError as exc:
        return f"{method}: refused: {exc}"
    return f"{method}: fine, a child can import {func.__module__}.{func.__qualname__}"
