"""What a child's failure looks like in the parent: errors that keep their type.

What reaches the caller when a child fails (the same for :mod:`ipckit.run`,
the transports and :class:`ipckit.pipeline.OrderedPipeline`):

- the child raised an exception: **that exception, of its own type**, so
  ``except KeyError`` works. Its ``__cause__`` is a :class:`RemoteTraceback`
  whose text is the child's traceback, and (Python 3.11+) a note names the
  process, as ``concurrent.futures`` does. The child sends
  :func:`error_record`; the parent raises :func:`child_error`;
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
import traceback


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
    """A child did not deliver within ``timeout``: a result, an item's result, or one message it owed.

    ``process`` names it, ``timeout`` is the limit in seconds, ``item`` the
    hand-off number of the item it was working on (pipelines only, else None),
    ``waiting_for`` what the parent waited for (None: the whole result). Whoever
    started the child stops it (``ipckit.run`` and the pipeline do, before this
    reaches the caller).
    """

    def __init__(self, process, timeout, item=None, waiting_for=None):
        self.process = process
        self.timeout = timeout
        self.item = item
        self.waiting_for = waiting_for
        if waiting_for is not None:
            message = f"no {waiting_for} from {process} within {timeout} s"
        else:
            on = f" on item {item} (its hand-off number)" if item is not None else ""
            message = f"{process} did not finish within timeout={timeout} s{on}; stopped"
        super().__init__(message)


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
