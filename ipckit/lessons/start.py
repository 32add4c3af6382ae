"""Lesson 00's workers: CPU work, a global the parent never sees, and the process lifecycle.

Each function a child runs is a few lines of standard library; the lesson shows
it with ``ipckit.show`` where a cell starts it.
"""
import queue
import signal
import sys
import threading
import time

from ..checks import check_count, check_timeout
from ..context import get_context
from .checking import Wrong, call_with_deadline, exercise_check

# --- Threads against processes -------------------------------------------------------


def count_down(steps):
    """Pure-Python CPU work; returns (start, end) on perf_counter, a clock all processes share."""
    start = time.perf_counter()
    while steps:
        steps -= 1
    return start, time.perf_counter()


def count_down_and_report(steps, results):
    """Child side of the race: count down, then send (start, end) back to the parent."""
    results.put(count_down(steps))


def run_in_threads(workers, steps):
    """Run ``count_down(steps)`` in ``workers`` threads at once; return their (start, end) pairs."""
    results = queue.SimpleQueue()
    threads = [threading.Thread(target=lambda: results.put(count_down(steps))) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results.get() for _ in threads]


def run_in_processes(ctx, workers, steps, timeout=60.0):
    """Run ``count_down(steps)`` in ``workers`` child processes at once; return their (start, end) pairs."""
    results = ctx.Queue()
    children = [ctx.Process(target=count_down_and_report, args=(steps, results)) for _ in range(workers)]
    try:
        for child in children:
            child.start()
        intervals = [results.get(timeout=timeout) for _ in children]
        for child in children:
            child.join(timeout)
        return intervals
    finally:
        for child in children:  # only on an error path: stop what still runs
            if child.is_alive():
                child.terminate()
                child.join(1)


def race(workers=2, steps=12_000_000, start_method=None, timeout=60.0):
    """Time one job in 1 thread, then ``workers`` jobs in threads and in processes.

    Returns, for each way, the wall time and each worker's (start, end) relative
    to the start, as ``ipckit.plots.plot_lanes`` draws them.
    """
    workers, steps = check_count(workers, "workers"), check_count(steps, "steps")
    check_timeout(timeout)
    ctx = get_context(start_method)
    ways = {
        "1 thread": lambda: [count_down(steps)],
        f"{workers} threads": lambda: run_in_threads(workers, steps),
        f"{workers} processes": lambda: run_in_processes(ctx, workers, steps, timeout),
    }
    runs = {}
    for label, run in ways.items():
        begin = time.perf_counter()
        intervals = run()
        runs[label] = {"wall_s": time.perf_counter() - begin,
                       "intervals": [(start - begin, end - begin) for start, end in intervals]}
    return runs


# --- Workers live in a module --------------------------------------------------------


def square(x):
    """The same function as the notebook's, in a module a spawn child can import."""
    return x * x


# --- Globals are not shared ----------------------------------------------------------

NOTES = []  # a module-level list: every process has its own


def append_note(note, replies):
    """Append to this process's NOTES, then send the parent a copy of what this process sees."""
    NOTES.append(note)
    replies.put(list(NOTES))


# --- The process lifecycle -----------------------------------------------------------


def nap(seconds):
    """Sleep, then return: a worker that ends normally (exit code 0), unless stopped first."""
    time.sleep(seconds)


def exit_with(code):
    """End the process with ``sys.exit(code)``: its exit code is ``code``."""
    sys.exit(code)


def fail():
    """Raise: the child prints the traceback on its stderr and ends with exit code 1."""
    raise ValueError("failed on purpose")


def ignore_sigterm(ready, seconds):
    """Ignore SIGTERM, say so through ``ready``, then sleep: only SIGKILL ends this worker early."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(seconds)


def work_until_stopped(stop, replies):
    """Say it is working, work in small steps until the parent sets ``stop``, then clean up and say so."""
    replies.put("working")
    try:
        while not stop.wait(0.01):  # one small step of work, then look at the flag
            pass
    finally:
        replies.put("cleaned up")  # a graceful stop runs this; SIGTERM and SIGKILL never do


# --- Exercise: stop a worker within a deadline ---------------------------------------


@exercise_check
def check_stop_worker(stop_worker, timeout=1.0):
    """Run the learner's ``stop_worker(worker, stop, timeout)`` on a polite, a deaf and a stubborn worker."""
    if not callable(stop_worker):
        raise Wrong("pass your function itself: check_stop_worker(stop_worker)")
    ctx = get_context()
    stop, ready, replies = ctx.Event(), ctx.Event(), ctx.Queue()
    cases = [  # (name, process, the exit code a right answer returns, what that worker does)
        ("polite", ctx.Process(target=work_until_stopped, args=(stop, replies)), 0, "stops when the Event is set"),
        ("deaf", ctx.Process(target=nap, args=(30,)), -signal.SIGTERM, "ignores the Event; SIGTERM ends it"),
        ("stubborn", ctx.Process(target=ignore_sigterm, args=(ready, 30)), -signal.SIGKILL,
         "ignores the Event and SIGTERM; only SIGKILL ends it"),
    ]
    try:
        for _, worker, _, _ in cases:
            worker.start()
        if not ready.wait(10) or replies.get(timeout=10) != "working":
            raise RuntimeError("the workers did not start within 10 s; run the check again")
        for name, worker, expected, behaviour in cases:
            signals = {0: 0, -signal.SIGTERM: 1, -signal.SIGKILL: 2}[expected]  # what a right answer must send
            allowed = timeout + signals + 2  # the grace for the Event, 1 s after each signal, and a margin
            began = time.monotonic()
            finished, code = call_with_deadline(stop_worker, (worker, stop, timeout), allowed)
            if not finished:
                raise Wrong(f"stop_worker did not return within {allowed:.0f} s for the {name} worker, which "
                            f"{behaviour}: every join() needs a timeout, and a worker still alive after it must be "
                            "terminated, then killed")
            if worker.is_alive():
                raise Wrong(f"the {name} worker ({behaviour}) is still running after stop_worker returned: "
                            "after terminate(), join(1); if it is still alive, kill() it and join() again")
            if code != worker.exitcode:
                raise Wrong(f"for the {name} worker stop_worker returned {code!r}, but its exit code is "
                            f"{worker.exitcode}: return worker.exitcode after the last join")
            if code != expected:
                how = {0: "it stopped by itself", -signal.SIGTERM: "it was terminated",
                       -signal.SIGKILL: "it was killed"}.get(code, f"its exit code is {code}")
                raise Wrong(f"the {name} worker ({behaviour}) ended with exit code {code} ({how}); the right "
                            f"order gives {expected}: set the Event and join(timeout) first, terminate() only if it "
                            "is still alive, kill() only if SIGTERM did not end it")
            if name == "polite":
                try:
                    replies.get(timeout=5)
                except queue.Empty:
                    raise Wrong("the polite worker did not get to clean up: set the Event, then wait") from None
                if time.monotonic() - began > timeout:
                    raise Wrong(f"stop_worker took {time.monotonic() - began:.1f} s to stop a worker that stops at "
                                "once: join(timeout) returns as soon as the worker ends; do not sleep")
        return ("0 for the polite worker (it cleaned up), -15 (SIGTERM) for the deaf one, "
                "-9 (SIGKILL) for the stubborn one, each within its deadline.")
    finally:
        for _, worker, _, _ in cases:
            if worker.pid is not None and worker.is_alive():
                worker.kill()
            worker.join(5)
        replies.close()
        replies.join_thread()
