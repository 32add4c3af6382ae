"""Pools in everyday use (lesson 11): the tasks its pools run, and the check of its exercise.

Every task is a plain module function, so a pool's workers can import it under
any start method. The lesson's cells create, feed and close the pools
themselves; this module only holds what the workers run.
"""
import concurrent.futures
import os
import signal
import time

from .checking import Wrong, exercise_check, learner_function, learner_module


def square(n):
    """A tiny task: almost all of its cost is the trip to a worker and back."""
    return n * n


def busy_square(n, micros=0):
    """Square n after about ``micros`` microseconds of CPU work: a task of a chosen size."""
    end = time.perf_counter() + micros / 1e6
    while time.perf_counter() < end:
        pass
    return n * n


def square_after(item):
    """Wait, then square: an item is (n, seconds), so a lesson chooses which task finishes last."""
    n, seconds = item
    time.sleep(seconds)
    return n * n


def worker_pid(n):
    """Return (n, the PID of the process that ran this task): which worker did what."""
    return n, os.getpid()


def price_of(fruit):
    """Look a fruit up in a price list: an unknown one raises KeyError in the worker."""
    prices = {"apple": 3, "pear": 4, "plum": 2}
    return prices[fruit]


_table = None  # set once per worker by load_table
_loads = 0


def load_table(size):
    """Pool initializer: build a lookup table once per worker (a stand-in for loading a model or a file)."""
    global _table, _loads  # module globals: each worker process has its own
    time.sleep(0.2)  # the expensive part, paid once per worker instead of once per task
    _table = {n: n * n for n in range(size)}
    _loads += 1  # how many times this worker has loaded it


def look_up(n):
    """Use the worker's table: return (value, this worker's PID, how many times this worker loaded the table)."""
    return _table[n], os.getpid(), _loads


def killed_on(n, bad=3):
    """Return n, but item ``bad`` kills its own worker, as the out-of-memory killer would: no exception, no reply."""
    if n == bad:
        os.kill(os.getpid(), signal.SIGKILL)
    return n


def checked_square(item):
    """The exercise's task: an item is (n, seconds); wait, then return (n * n, this worker's PID).

    A negative n raises ValueError instead.
    """
    n, seconds = item
    time.sleep(seconds)
    if n < 0:
        raise ValueError(f"cannot square item {n}: it is negative")
    return n * n, os.getpid()


# The exercise's items: item 0 finishes last, item 3 raises; the probe outlasts the timeout it is given.
EXERCISE_ITEMS = [(0, 0.6), (1, 0.05), (2, 0.05), (-3, 0.05), (4, 0.05), (5, 0.05)]
TIMEOUT_PROBE = ([(7, 0.6)], 0.2)  # (items, timeout): one task that takes 0.6 s, and 0.2 s to wait for it
ONE_WORKER_PROBE = [(1, 0.3), (2, 0.3)]  # with two workers, the second task would start while the first sleeps
# What as_completed raises (the builtin TimeoutError from Python 3.11; its own class on 3.10)
TIMEOUT_ERRORS = (TimeoutError, concurrent.futures.TimeoutError)


@exercise_check
def check_run_all(module_name="exercise_pools"):
    """Run the learner's ``run_all`` for real: order kept, the failure kept in its place, other processes, a timeout."""
    run_all = learner_function(learner_module(module_name), "run_all")
    try:
        results = run_all(checked_square, EXERCISE_ITEMS, workers=2, timeout=10)
    except ValueError as exc:
        raise Wrong(
            f"the ValueError of item -3 escaped run_all ({exc}): catch it around future.result() and store it "
            "at that item's index, so one bad item does not lose the other results."
        ) from None
    if not isinstance(results, list) or len(results) != len(EXERCISE_ITEMS):
        raise Wrong(f"run_all should return a list with one result per item ({len(EXERCISE_ITEMS)}); got {results!r}.")
    if not any(isinstance(r, ValueError) for r in results):
        raise Wrong(f"item -3 raises ValueError in its task; that exception belongs in its slot, got {results!r}.")
    pairs = [r for r in results if not isinstance(r, Exception)]
    if not all(isinstance(r, tuple) and len(r) == 2 for r in pairs):
        raise Wrong(f"each other slot should hold what the task returned, a (square, pid) pair; got {results!r}.")
    got = [r[0] if isinstance(r, tuple) else type(r).__name__ for r in results]
    expected = [n * n if n >= 0 else "ValueError" for n, _ in EXERCISE_ITEMS]
    if sorted(map(str, got)) != sorted(map(str, expected)):
        raise Wrong(f"expected {expected} (squares, and the exception), got {got}.")
    if got != expected:
        raise Wrong(
            f"the results are in the order the tasks finished, {got}, not in the items' order, {expected}: "
            "remember each future's index and put its result there."
        )
    pids = {pid for _, pid in pairs}
    if os.getpid() in pids:
        raise Wrong("the tasks ran in this process: submit them to a ProcessPoolExecutor.")
    one_worker = run_all(checked_square, ONE_WORKER_PROBE, workers=1, timeout=10)
    if len({r[1] for r in one_worker if isinstance(r, tuple)}) != 1:
        raise Wrong("with workers=1 the tasks ran in several processes: pass max_workers=workers to the pool.")
    items, timeout = TIMEOUT_PROBE
    try:
        late = run_all(checked_square, items, workers=1, timeout=timeout)
    except TIMEOUT_ERRORS:
        late = None
    if late is not None and not isinstance(late[0], TIMEOUT_ERRORS):
        raise Wrong(
            f"a task that takes {items[0][1]} s was waited for in full although timeout={timeout}: "
            "pass it on, as_completed(futures, timeout=timeout), so that a stuck task raises TimeoutError."
        )
    return (
        f"{len(results)} results in the items' order, the ValueError of item -3 in its place, computed in "
        f"worker processes; workers=1 used one; a task longer than the timeout raised TimeoutError."
    )
