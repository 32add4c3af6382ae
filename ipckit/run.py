"""Run functions in child processes and get their results back, without ever hanging.

The parent waits on each result pipe *and* each child's sentinel together
(``multiprocessing.connection.wait``), so a child that dies without a word is
noticed at once, and children that take too long are stopped after ``timeout``.

What reaches the caller when a child fails (the same for ``run_many``,
``run_in_child`` and ``ipckit.pipeline.OrderedPipeline``):

- the child raised an exception: **that exception, of its own type**, so
  ``except KeyError`` works. Its ``__cause__`` is a :class:`RemoteTraceback`
  whose text is the child's traceback, and (Python 3.11+) a note names the
  process, as ``concurrent.futures`` does;
- the exception cannot travel (it will not pickle or unpickle), or it is not an
  ``Exception`` (``SystemExit``, ``KeyboardInterrupt``: the child's must not end
  the caller): :class:`WorkerError`, which carries its type name, message and
  traceback as strings;
- the child died without a word (a signal, ``os._exit``): :class:`WorkerDied`,
  naming the signal or exit code;
- it took too long: :class:`WorkerTimeout`, a ``TimeoutError``.
"""
import pickle
import signal
import time
import traceback
from multiprocessing.connection import wait

from .checks import check_timeout
from .context import get_context, require_importable

DEFAULT_TIMEOUT = 60.0


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a child, attached as that exception's ``__cause__``.

    Python prints a cause above the exception, so the child's frames show in
    the parent's traceback, above the caller's own.
    """

    def __init__(self, text):
        super().__init__(text)
        self.text = text

    def __str__(self):
        return self.text


class WorkerError(RuntimeError):
    """A child raised something that cannot be raised here as itself; carries its strings.

    That is an exception that cannot be pickled in the child or unpickled here
    (a class whose ``__init__`` needs other arguments than its ``args``, say),
    or a ``SystemExit`` / ``KeyboardInterrupt``, which would otherwise end the
    caller. ``type_name``, ``message`` and ``remote_traceback`` are strings.
    """

    def __init__(self, process, type_name, message, remote_traceback, *more_fields):
        # *more_fields: an error record has further fields (see error_record); WorkerError(name, *record[1:]) works.
        self.process = process
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback
        super().__init__(f"{process} raised {type_name}: {message}")

    def __str__(self):
        return f"{self.args[0]}\n--- traceback in the child ---\n{self.remote_traceback}"


class WorkerDied(RuntimeError):
    """A child process ended without sending its result (killed, crashed, os._exit).

    ``exitcode`` is the process's exit code (minus the signal number when a
    signal killed it); ``signal`` is the signal's name (``"SIGKILL"``) or None.
    """

    def __init__(self, process, exitcode):
        self.process = process
        self.exitcode = exitcode
        self.signal = signal_name(exitcode)
        super().__init__(f"{process} died without a result ({describe_exitcode(exitcode)})")


class WorkerTimeout(TimeoutError):
    """A child took longer than its ``timeout``; it, and every other child of the call, was stopped.

    ``process`` names it, ``timeout`` is the limit in seconds, ``item`` the
    hand-off number of the item it was working on (pipelines only, else None).
    """

    def __init__(self, process, timeout, item=None):
        self.process = process
        self.timeout = timeout
        self.item = item
        on = f" on item {item} (its hand-off number)" if item is not None else ""
        super().__init__(f"{process} did not finish within timeout={timeout} s{on}; stopped")


_SIGNAL_HINTS = {
    "SIGKILL": "often kill -9 or the out-of-memory killer",
    "SIGBUS": "often a write to shared memory when /dev/shm is full",
    "SIGSEGV": "often a crash in C code",
    "SIGTERM": "asked to stop, e.g. by terminate()",
}


def signal_name(exitcode):
    """``"SIGKILL"`` for exit code -9; None for a normal exit (or a number that names no signal)."""
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return None


def describe_exitcode(exitcode):
    """Words for an exit code: "exit code 3", "killed by SIGKILL, exit code -9; often kill -9 or ..."."""
    if exitcode is None:
        return "still running"
    if exitcode >= 0:
        return f"exit code {exitcode}"
    name = signal_name(exitcode) or f"signal {-exitcode}"
    hint = _SIGNAL_HINTS.get(name)
    return f"killed by {name}, exit code {exitcode}" + (f"; {hint}" if hint else "")


def add_note(exc, note):
    """``exc.add_note(note)`` where Python has it (3.11+)."""
    if hasattr(exc, "add_note"):  # Python 3.11+; before, the RemoteTraceback's first line says the same
        exc.add_note(note)


def error_record(exc, where=""):
    """What a child sends instead of a result: ``("error", type name, message, traceback, pickled, where)``.

    Every field is a string except ``pickled``: the exception itself, pickled
    here if it can be (else None), so that the parent can raise it as its own
    type. ``where`` says what the child was doing ("on item 4").
    """
    try:
        message = str(exc)
    except Exception:
        message = f"<{type(exc).__name__} whose str() failed>"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    pickled = None
    if isinstance(exc, Exception):
        try:
            pickled = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # its class refuses to pickle, or misbehaves: send the strings only
            pickled = None
    return ("error", type(exc).__name__, message, text, pickled, where)


def child_error(process, record):
    """The exception to raise in the parent for a child's :func:`error_record`.

    The child's own exception if it unpickles here, with the child's traceback
    as its ``__cause__`` and a note naming ``process``; else :class:`WorkerError`.
    """
    _, type_name, message, text, pickled, where = (tuple(record) + (None, ""))[:6]
    said = f"raised in {process}" + (f" {where}" if where else "")
    error = None
    if pickled is not None:
        try:
            error = pickle.loads(pickled)
        except (Exception, SystemExit):  # e.g. an __init__ that needs other arguments than its args
            error = None
    if not isinstance(error, Exception):
        error = WorkerError(process, type_name, message, text)
        said += " (sent as WorkerError: " + (
            "a SystemExit or KeyboardInterrupt in a child must not end this program)"
            if pickled is None and type_name in ("SystemExit", "KeyboardInterrupt")
            else "the exception could not be pickled in the child, or unpickled here)"
        )
    error.__cause__ = RemoteTraceback(f"{said}:\n{text}")
    add_note(error, said)
    return error


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
        raise child_error(name, reply)
    return reply[1]


def run_many(calls, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Run each ``(func, args)`` or ``(func, args, kwargs)`` in its own child, all at once.

    Returns the results in the order of ``calls``. If one child raises or dies,
    the others are stopped and the error is raised here (see the module
    docstring for which); after ``timeout`` seconds, :class:`WorkerTimeout`.
    Every child is gone when this returns, on every path.
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
                raise WorkerTimeout(names, timeout)
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

    Raises what ``func`` raised, as its own type (or :class:`WorkerError` if it
    cannot travel), :class:`WorkerDied` if the child died first,
    :class:`WorkerTimeout` (a ``TimeoutError``) after ``timeout`` seconds (the
    child is stopped).
    """
    return run_many([(func, args, kwargs)], start_method=start_method, timeout=timeout)[0]
