"""Run functions in child processes and get their results back, without ever hanging.

:func:`run_in_child` and :func:`run_many` start children, wait for their
results and stop them. :class:`Child` starts one and lets the caller talk to
it (through pipes or transport ends passed in its arguments) before taking its
result. Every wait is one of :mod:`ipckit.watch`'s: a result pipe together
with its child's sentinel, so a child that dies without a word is noticed at
once. A child's failure reaches the caller as :mod:`ipckit.errors` describes:
its own exception (``except KeyError`` works) with the child's traceback as
its ``__cause__``, or :class:`WorkerError`, :class:`WorkerDied`,
:class:`WorkerTimeout`. The error classes are importable from here too.
"""
import time
from multiprocessing import resource_tracker

from .checks import check_timeout
from .context import get_context, require_importable
from .errors import (
    RemoteTraceback,
    WorkerDied,
    WorkerError,
    WorkerTimeout,
    add_note,
    child_error,
    describe_exitcode,
    error_record,
    signal_name,
)
from .watch import DEFAULT_TIMEOUT, Watch, receive, stop

__all__ = [
    "DEFAULT_TIMEOUT",
    "Child",
    "RemoteTraceback",
    "WorkerDied",
    "WorkerError",
    "WorkerTimeout",
    "add_note",
    "call_and_send",
    "child_error",
    "describe_exitcode",
    "error_record",
    "receive",
    "run_in_child",
    "run_many",
    "signal_name",
]


PEER_GONE = (WorkerDied, BrokenPipeError, ConnectionResetError, EOFError)  # how a child's failure shows at a pipe


def call_and_send(conn, func, args, kwargs):
    """Child side: call ``func`` and send ("ok", result) or an error record, then close."""
    try:
        reply = ("ok", func(*args, **kwargs))
    except BaseException as exc:  # report everything, KeyboardInterrupt included
        reply = error_record(exc)
    try:
        try:
            conn.send(reply)
        except BaseException as exc:  # the result cannot be pickled (the message wording varies by version)
            name = getattr(func, "__name__", "the function")
            conn.send(error_record(exc, f"while pickling the result of {name} to send it back (it cannot be pickled)"))
    finally:
        conn.close()


class Child:
    """``func(*args, **kwargs)`` in a new child process, started at once; its result when asked for.

    For a caller that talks to the child meanwhile, through pipe or transport
    ends passed in ``args``. Give ``child.process`` to every wait on those
    ends (``peer=``), so that its death is noticed at once::

        with Child(worker, (link.receiver,), start_method=method) as child:
            link.receiver.close()  # the child has its own copy: a dead child breaks the pipe
            link.sender.send(array, timeout, peer=child.process)
            result = child.result(timeout)

    Leaving the ``with`` stops the child, at once after an error. If a pipe
    broke (or a wait saw the child die) because the child raised, the child's
    own exception replaces the broken pipe.
    """

    def __init__(self, func, args=(), kwargs=None, start_method=None, name=None):
        require_importable(func, start_method)
        ctx = get_context(start_method)
        if ctx.get_start_method() == "fork":
            # Start the resource tracker before forking, so parent and children share one
            # (a child would otherwise start its own, and shared blocks would be tracked twice).
            resource_tracker.ensure_running()
        self.result_pipe, sender = ctx.Pipe(duplex=False)  # readable once the result (or the pipe's end) is there
        target_args = (sender, func, tuple(args), dict(kwargs or {}))
        self.process = ctx.Process(target=call_and_send, args=target_args, name=name or func.__name__)
        try:
            self.process.start()
        except BaseException:
            self.result_pipe.close()
            raise
        finally:
            sender.close()  # the parent keeps only the reading end, so EOF means the child is gone

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if isinstance(exc, PEER_GONE):
                own = self._own_error()
                if own is not None:
                    raise own
        finally:
            self.close(failed=exc_type is not None)

    def result(self, timeout=DEFAULT_TIMEOUT):
        """The child's return value, waited for at most ``timeout`` seconds; its exception raised here as its own."""
        reply = receive(self.result_pipe, self.process, timeout, "result")
        if reply[0] == "error":
            raise child_error(self.process.name, reply)
        return reply[1]

    def _own_error(self):
        """The exception the child reported before it died or broke a pipe, if it did (given a moment to)."""
        try:
            reply = receive(self.result_pipe, self.process, 1.0, "result")
        except (TimeoutError, WorkerDied, EOFError, OSError, ValueError):
            return None
        return child_error(self.process.name, reply) if reply[0] == "error" else None

    def close(self, failed=False):
        """Stop the child (terminate it at once when ``failed``: nobody waits for its result any more)."""
        self.result_pipe.close()
        stop(self.process, now=failed)


def run_many(calls, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Run each ``(func, args)`` or ``(func, args, kwargs)`` in its own child, all at once.

    Returns the results in the order of ``calls``. If one child raises or dies,
    the others are stopped and the error is raised here (see the module
    docstring for which). ``timeout`` limits the wait for the results, all of
    them: then :class:`WorkerTimeout`, the children stopped. Every child is
    gone when this returns, on every path.
    """
    check_timeout(timeout)
    calls = [tuple(call) + ({},) * (3 - len(call)) for call in calls]
    for func, args, kwargs in calls:
        require_importable(func, start_method)
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise TypeError("each call must be (func, args_tuple) or (func, args_tuple, kwargs_dict)")
    children, failed = [], True
    try:
        for index, (func, args, kwargs) in enumerate(calls):
            children.append(Child(func, args, kwargs, start_method, name=f"child-{index}:{func.__name__}"))
        results = _results(children, timeout)
        failed = False
        return results
    finally:
        stop([child.process for child in children], now=failed)  # side by side; at once if one failed
        for child in children:
            child.close()


def _results(children, timeout):
    """Each child's result, in order, taken as each arrives; WorkerTimeout when ``timeout`` has passed."""
    results, owner = {}, {}
    for index, child in enumerate(children):
        owner[child.result_pipe] = owner[child.process.sentinel] = index
    deadline = time.monotonic() + timeout
    with Watch(owner) as watch:
        while len(results) < len(children):
            remaining = deadline - time.monotonic()
            ready = watch.ready(remaining) if remaining > 0 else []
            if not ready:
                late = [child.process.name for index, child in enumerate(children) if index not in results]
                raise WorkerTimeout(", ".join(late), timeout)
            for handle in ready:
                index = owner[handle]
                if index not in results:  # its pipe and its sentinel can both be ready
                    child = children[index]
                    results[index] = child.result(timeout=1.0)
                    watch.forget(child.result_pipe)
                    watch.forget(child.process.sentinel)
    return [results[index] for index in range(len(children))]


def run_in_child(func, *args, start_method=None, timeout=DEFAULT_TIMEOUT, **kwargs):
    """Call ``func(*args, **kwargs)`` in a new child process and return its result.

    Raises what ``func`` raised, as its own type (or :class:`WorkerError` if it
    cannot travel), :class:`WorkerDied` if the child died first,
    :class:`WorkerTimeout` (a ``TimeoutError``) after ``timeout`` seconds (the
    child is stopped).
    """
    return run_many([(func, args, kwargs)], start_method=start_method, timeout=timeout)[0]
