"""What every exercise check shares: run the learner's code for real, then say Right, Wrong or Not yet.

A check is a function decorated with :func:`exercise_check`. It raises
:class:`Wrong` with what is wrong, or returns the sentence to print after
"Right:". A skeleton that still raises ``NotImplementedError`` is "Not yet";
any other exception in the learner's code is reported as wrong, with its type
and message. Only a right answer prints a line that starts with ``Right``.
"""
import functools
import glob
import importlib
import os
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection


class Wrong(Exception):
    """Raised by a check: the learner's code ran but did the wrong thing."""


def exercise_check(check):
    """Turn ``check`` into a cell-friendly function that prints one verdict and returns True only if right."""

    @functools.wraps(check)
    def run(*args, **kwargs):
        try:
            praise = check(*args, **kwargs)
        except Exception as exc:
            print(verdict(exc))
            # The traceback holds the check's frames, and a learner's exception handed over
            # by call_in_thread sits in a reference cycle with them: free their locals now
            # (queues, locks, Values: named semaphores under spawn), not at the next collection.
            traceback.clear_frames(exc.__traceback__)
            return False
        print(f"Right: {praise}")
        return True

    return run


def verdict(exc):
    """The line a check prints when ``exc`` ended it: Not yet, or Wrong with what is wrong."""
    if isinstance(exc, NotImplementedError):
        return f"Not yet: {exc or 'complete the exercise cell, run it, then run this cell again.'}"
    if isinstance(exc, Wrong):
        return f"Wrong: {exc}"
    where = traceback.extract_tb(exc.__traceback__)[-1]  # the learner's code raised: say what, and where
    return (f"Wrong: your code raised {type(exc).__name__}: {exc} "
            f"(in {os.path.basename(where.filename)}, line {where.lineno})")


def learner_module(name):
    """Import the module an exercise cell wrote with ``%%writefile NAME.py``, fresh each time.

    Re-running the exercise cell rewrites the file; the check must see the new
    version, and so must the children it starts (they import it by name).
    """
    if not os.path.exists(f"{name}.py"):
        raise NotImplementedError(f"run the exercise cell first: it writes {name}.py next to this notebook.")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for stale in glob.glob(os.path.join("__pycache__", f"{name}.*.pyc")):
        os.remove(stale)  # a rewrite within the same second, of the same size, would look unchanged
    importlib.invalidate_caches()
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def learner_function(module, name):
    """The function ``name`` from the learner's module, with a clear message if it is missing."""
    func = getattr(module, name, None)
    if not callable(func):
        raise Wrong(f"{module.__name__}.py should define a function {name}(...); it does not.")
    return func


class CountedConnection(Connection):
    """The check's end of a pipe the learner's code uses: counts how often that code looks at it.

    (Set ``conn.__class__ = CountedConnection`` on an end that never travels
    to a child.) The learner's code runs in :func:`call_in_thread`'s thread.

    ``wait()`` and ``poll()`` both ask a connection for its ``fileno()`` once per call, so the count
    is the number of times the learner's thread waited on, or polled, this pipe.
    """

    looks = 0

    def fileno(self):
        if threading.current_thread().name == "learner-code":
            self.looks += 1
        return super().fileno()


def call_in_thread(func, args, timeout):
    """Call the learner's ``func(*args)`` in a daemon thread and wait at most ``timeout`` seconds.

    Returns ``(outcome, wall_s, cpu_s)``: outcome is ``("returned", value)`` or
    ``("raised", exception)``, cpu_s the thread's own CPU time (a waiting loop that
    spins shows here). Returns None if the call is still running: the thread is
    left behind (a daemon cannot delay exit), and the caller unblocks it, for
    example by stopping the child process it waits for.
    """
    done = []

    def call():
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        try:
            outcome = ("returned", func(*args))
        except BaseException as exc:  # handed to the caller
            outcome = ("raised", exc)
        done.append((outcome, time.perf_counter() - wall_start, time.thread_time() - cpu_start))

    worker = threading.Thread(target=call, daemon=True, name="learner-code")
    worker.start()
    worker.join(timeout)
    return done.pop() if done else None  # pop: the list, kept by call(), must not keep an exception alive


def run_children(children, timeout, running, stuck_hint, failed_hint=""):
    """Start ``children`` (running the learner's ``running``), wait for all within ``timeout`` s; stop any left.

    Raises :class:`Wrong` if one is still running at the deadline (with
    ``stuck_hint``, the likely cause) or ended with an exit code other than 0
    (it raised; ``failed_hint`` says where to look). Every child is stopped and joined on every path.
    """
    try:
        for child in children:
            child.start()
        deadline = time.monotonic() + timeout
        for child in children:
            child.join(max(0.0, deadline - time.monotonic()))
        if any(child.is_alive() for child in children):
            raise Wrong(f"the {len(children)} children did not finish within {timeout:.0f} s: {stuck_hint}")
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join(5)
    failed = [child.exitcode for child in children if child.exitcode != 0]
    if failed:
        raise Wrong(f"children running {running} ended with exit codes {failed}: it raised in a child{failed_hint}")


def learner_raised(outcome, call, timeout_hint=None):
    """Turn what the learner's ``call`` raised (``outcome`` from :func:`call_in_thread`) into a verdict.

    Nothing happens if it returned. The skeleton's NotImplementedError goes on
    as itself ("Not yet"); a TimeoutError is Wrong with ``timeout_hint(exc)``
    when given; any other exception is Wrong, naming it.
    """
    how, exc = outcome
    if how != "raised":
        return
    if isinstance(exc, NotImplementedError):
        raise exc
    if timeout_hint is not None and isinstance(exc, TimeoutError):
        raise Wrong(timeout_hint(exc))
    raise Wrong(f"{call} raised {type(exc).__name__}: {exc}")


def call_with_deadline(func, args, seconds):
    """Call ``func(*args)`` in a daemon thread; return (True, result), or (False, None) if it is still running.

    A check calls the learner's code this way when a mistake could make it wait
    for ever (a join() with no timeout, a lock never released): the check then
    says so instead of hanging the kernel. What ``func`` raises is raised here.
    """
    called = call_in_thread(func, args, seconds)
    if called is None:
        return False, None
    (how, value), _, _ = called
    if how == "raised":
        raise value
    return True, value
