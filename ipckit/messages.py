"""A child process that answers requests over a two-way Pipe, without ever hanging the caller.

:class:`PipeServer` is library, like :class:`ipckit.child.LineChild`: it runs a
child and watches it (every reply awaited with a timeout and the child's
sentinel; the child gives up when its parent dies). The round-trip
measurements of :mod:`ipckit.bench` talk to it. Lesson 04 builds its own server
from the standard library in its cells, with the workers of
:mod:`ipckit.lessons.pipes`.
"""
from multiprocessing import parent_process
from multiprocessing.connection import wait

from .checks import check_timeout
from .context import get_context
from .errors import WorkerDied
from .watch import receive, stop

OPERATIONS = {
    "square": lambda x: x * x,
    "upper": lambda text: text.upper(),
    "sum": sum,
}


def _serve_requests(conn):
    """Answer (operation, argument) requests until ("stop", None), the parent closes its end, or dies."""
    answered = 0
    parent = parent_process()  # under fork this child also holds the parent's end: EOF alone may never come
    with conn:
        while True:
            if conn not in wait([conn, parent.sentinel]):
                return answered  # the parent died
            try:
                operation, argument = conn.recv()
            except EOFError:
                return answered
            if operation == "stop":
                return answered
            try:
                conn.send(("ok", OPERATIONS[operation](argument)))
            except Exception as exc:  # a bad request gets an error reply, the server keeps going
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            answered += 1


class PipeServer:
    """A child process answering requests over a two-way Pipe; use it in a ``with`` block.

    The child is a daemon: a server left open never makes the interpreter (or a
    kernel restart) wait at exit, because multiprocessing terminates daemon
    children there instead of joining them.
    """

    def __init__(self, start_method=None, timeout=10.0):
        check_timeout(timeout)
        self.timeout = timeout
        ctx = get_context(start_method)
        self.conn, child_end = ctx.Pipe()  # duplex: both ends send and receive
        self.process = ctx.Process(target=_serve_requests, args=(child_end,), name="pipe-server", daemon=True)
        try:
            self.process.start()
        finally:
            child_end.close()

    def ask(self, operation, argument):
        """Send one request and wait (with the timeout, watching the child) for its reply."""
        if self.conn.closed:
            raise ValueError("this PipeServer is closed; create a new one to send more requests")
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; choose one of {', '.join(OPERATIONS)}")
        try:
            self.conn.send((operation, argument))
        except (BrokenPipeError, ConnectionResetError):  # the server is gone
            self.process.join(1.0)
            raise WorkerDied(self.process.name, self.process.exitcode) from None
        status, value = receive(self.conn, self.process, self.timeout)
        return value if status == "ok" else f"error: {value}"

    def close(self):
        """Ask the server to stop and join it (terminating it if it does not stop); return its exit code."""
        if not self.conn.closed:
            try:
                self.conn.send(("stop", None))
            except OSError:
                pass  # the child is already gone
            self.conn.close()
        stop([self.process])
        return self.process.exitcode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
