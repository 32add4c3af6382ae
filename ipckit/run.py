"""Run functions in child processes and get their results back, without ever hanging.

The parent waits on each result pipe *and* each child's sentinel together
(``multiprocessing.connection.wait``), so a child that dies without a word is
noticed at once, and children that take too long are stopped after ``timeout``.
An exception in a child comes back as :class:`WorkerError` with its traceback.
"""
import time
import traceback
from multiprocessing.connection import wait

from .checks import check_timeout
from .context import get_context, require_importable

DEFAULT_TIMEOUT = 60.0


class WorkerError(RuntimeError):
    """A function running in a child process raised; carries the child's traceback text."""

    def __init__(self, process, type_name, message, remote_traceback):
        self.process = process
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback
        super().__init__(f"{process} raised {type_name}: {message}")

    def __str__(self):
        return f"{self.args[0]}\n--- traceback in the child ---\n{self.remote_traceback}"


class WorkerDied(RuntimeError):
    """A child process ended without sending its result (killed, crashed, os._exit)."""

    def __init__(self, process, exitcode):
        self.process = process
        self.exitcode = exitcode
        super().__init__(f"{process} died without a result ({describe_exitcode(exitcode)})")


def describe_exitcode(exitcode):
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        return f"killed by signal {-exitcode}, exit code {exitcode}"
    return f"exit code {exitcode}"


def error_record(exc):
    """What a child sends back instead of a result: plain strings, always picklable."""
    return ("error", type(exc).__name__, str(exc), traceback.format_exc())


def call_and_send(conn, func, args, kwargs):
    """Child side: call ``func`` and send ("ok", result) or an error record, then close."""
    try:
        reply = ("ok", func(*args, **kwargs))
    except BaseException as exc:  # report everything, KeyboardInterrupt included
        reply = error_record(exc)
    try:
        try:
            conn.send(reply)
        except Exception as exc:  # the result cannot be pickled (the message wording varies by version)
            name = getattr(func, "__name__", "the function")
            message = f"the result of {name} cannot be pickled to send it back: {exc}"
            conn.send(("error", type(exc).__name__, message, traceback.format_exc()))
    finally:
        conn.close()


def stop_process(process, grace=1.0):
    """Join ``process``; if it is still alive after ``grace`` seconds, terminate, then kill."""
    if process.pid is None:  # never started
        return
    process.join(grace)
    if process.is_alive():
        process.terminate()
        process.join(grace)
    if process.is_alive():
        process.kill()
        process.join(grace)


def receive(conn, process, timeout, what="a reply"):
    """Wait for one message on ``conn`` from ``process``; never hang.

    Raises :class:`WorkerDied` if the process ends first (or closes its end) and
    ``TimeoutError`` if nothing arrives within ``timeout`` seconds.
    """
    if conn.closed:
        raise ValueError("this connection is closed; open a new Pipe before sending or receiving")
    ready = wait([conn, process.sentinel], timeout)
    if not ready:
        raise TimeoutError(f"no {what} from {process.name} within {timeout} s")
    if conn in ready or conn.poll(0):  # the child may have sent, then exited
        try:
            return conn.recv()
        except (EOFError, ConnectionResetError):  # closed, or reset by a process that died
            pass
    process.join(1.0)
    raise WorkerDied(process.name, process.exitcode)


def _unwrap(name, reply):
    if reply[0] == "error":
        raise WorkerError(name, *reply[1:])
    return reply[1]


def run_many(calls, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Run each ``(func, args)`` or ``(func, args, kwargs)`` in its own child, all at once.

    Returns the results in the order of ``calls``. If one child raises or dies,
    the others are stopped and the error is raised here. Every child is gone
    when this returns, on every path.
    """
    check_timeout(timeout)
    calls = [tuple(call) + ({},) * (3 - len(call)) for call in calls]
    for func, args, kwargs in calls:
        require_importable(func, start_method)
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise TypeError("each call must be (func, args_tuple) or (func, args_tuple, kwargs_dict)")
    ctx = get_context(start_method)
    children = []  # (process, receiving end)
    finished = False
    try:
        for index, (func, args, kwargs) in enumerate(calls):
            receiver, sender = ctx.Pipe(duplex=False)
            process = ctx.Process(
                target=call_and_send, args=(sender, func, args, kwargs), name=f"child-{index}:{func.__name__}"
            )
            children.append((process, receiver))
            try:
                process.start()
            finally:
                sender.close()  # the parent keeps only the reading end, so EOF means the child is gone
        results = [None] * len(children)
        pending = dict(enumerate(children))
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                names = ", ".join(process.name for process, _ in pending.values())
                raise TimeoutError(f"{names} did not finish within {timeout} s; stopped")
            by_handle = {}
            for index, (process, receiver) in pending.items():
                by_handle[receiver] = index
                by_handle[process.sentinel] = index
            for handle in wait(list(by_handle), remaining):
                index = by_handle[handle]
                if index in pending:
                    process, receiver = pending.pop(index)
                    results[index] = _unwrap(process.name, receive(receiver, process, timeout=1.0))
        finished = True
        return results
    finally:
        for process, receiver in children:
            receiver.close()
            if not finished and process.pid is not None and process.is_alive():
                process.terminate()  # one child failed or time ran out: stop the rest now
        for process, _ in children:
            stop_process(process)


def run_in_child(func, *args, start_method=None, timeout=DEFAULT_TIMEOUT, **kwargs):
    """Call ``func(*args, **kwargs)`` in a new child process and return its result.

    Raises :class:`WorkerError` if it raised, :class:`WorkerDied` if the child
    died first, ``TimeoutError`` after ``timeout`` seconds (the child is stopped).
    """
    return run_many([(func, args, kwargs)], start_method=start_method, timeout=timeout)[0]
