"""A long-running child program spoken to over stdin/stdout, and the parent's side of that talk.

Run as ``python -m ipckit.child``: it reads one request per line on stdin and
writes one reply per line on stdout, flushing each, so a parent can talk to it
in real time. Requests: ``square N``, ``upper TEXT``, ``echo TEXT``,
``sleep SECONDS``, ``exit CODE``, ``crash``, and ``hold-stdout SECONDS``
(start a program of its own that keeps this child's stdout open for SECONDS,
as a shell's background job does). End of input ends it with code 0.

In the parent, :class:`LineChild` talks to it with timeouts (lesson 05 writes
the same talk with ``subprocess.Popen`` in its cells; lesson 09 times it).
"""
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

from .checks import check_timeout

CHILD_COMMAND = (sys.executable, "-m", "ipckit.child")


# --- the child program ----------------------------------------------------------------


def answer(line):
    """The reply to one request line (the child's whole logic)."""
    command, _, argument = line.strip().partition(" ")
    if command == "square":
        return str(int(argument) ** 2)
    if command == "upper":
        return argument.upper()
    if command == "echo":
        return argument
    if command == "sleep":
        time.sleep(float(argument))
        return "awake"
    if command == "exit":
        sys.stdout.flush()
        sys.exit(int(argument))
    if command == "crash":
        raise RuntimeError("crash requested")
    if command == "hold-stdout":
        holder = subprocess.Popen(  # inherits this child's stdout, and keeps it open after this child exits
            [sys.executable, "-c", f"import time; time.sleep({float(argument)})"], stdin=subprocess.DEVNULL
        )
        return f"holder {holder.pid}"
    return f"error: unknown request {command!r}"


def serve(stdin=sys.stdin, stdout=sys.stdout):
    """Answer each request line with one reply line, until the end of input."""
    for line in stdin:
        stdout.write(answer(line) + "\n")
        stdout.flush()  # without this the reply waits in a buffer and the parent waits for ever


# --- the parent's side ----------------------------------------------------------------


def _start(command, **popen_options):
    try:
        return subprocess.Popen(list(command), text=True, **popen_options)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"cannot start {command[0]!r}: no such program; check the name, or give its full path"
            + (f" (found on PATH: {shutil.which(command[0])})" if shutil.which(command[0]) else "")
        ) from None


_HAS_GROUPS = hasattr(os, "killpg")  # POSIX: a child in a session of its own can be stopped with all it started
_KILLED = (
    "killed its whole process group"
    if _HAS_GROUPS
    else "killed the child (this platform has no process groups, so what it started may still run)"
)


def _pump(stream, lines):
    """Reader thread: move each line to a queue, then None at end of file."""
    try:
        for line in stream:
            lines.put(line)
    except ValueError:
        pass  # the stream was closed under us during shutdown
    finally:
        lines.put(None)


class LineChild:
    """A long-running child process the parent talks to line by line, never hanging.

    A reader thread moves the child's stdout lines into a queue, so ``ask`` can
    wait for a reply with a timeout. Use it in a ``with`` block: leaving it closes
    stdin, and the child exits by itself. The child starts in a session (and
    process group) of its own, so that ``close`` can stop it together with
    anything it started that still holds its stdout. (A terminal's Ctrl-C
    therefore does not reach it; it exits when its stdin closes, as the parent
    exits.)
    """

    def __init__(self, command=CHILD_COMMAND, timeout=10.0):
        check_timeout(timeout)
        if isinstance(command, str) or not command:
            raise TypeError("command must be a non-empty list such as [sys.executable, '-m', 'ipckit.child']")
        self.timeout = timeout
        self.process = _start(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1, start_new_session=_HAS_GROUPS
        )
        self._lines = queue.Queue()
        self._late_reply_pending = False
        self._reader = threading.Thread(target=_pump, args=(self.process.stdout, self._lines), daemon=True)
        self._reader.start()

    def ask(self, request, timeout=None):
        """Send one request line; return the reply line (without its newline)."""
        if "\n" in request:
            raise ValueError("a request is one line: remove the newline characters from it")
        if self.process.stdin.closed:
            raise ValueError("this child's stdin is closed; start a new LineChild to ask more")
        if self._late_reply_pending:
            raise RuntimeError(
                "an earlier request timed out, and its late reply would be taken for this one's; "
                "close this LineChild and start a new one"
            )
        try:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise RuntimeError(f"the child has exited (poll() = {self.process.wait(1)}); start a new one") from None
        timeout = self.timeout if timeout is None else timeout
        try:
            reply = self._lines.get(timeout=timeout)
        except queue.Empty:
            self._late_reply_pending = True
            raise TimeoutError(f"no reply to {request!r} within {timeout} s") from None
        if reply is None:
            raise RuntimeError(f"the child exited before replying (poll() = {self.process.wait(1)})")
        return reply.rstrip("\n")

    def close(self, timeout=None):
        """Close stdin so the child ends, and return its exit code; never wait longer than about ``timeout``.

        If, ``timeout`` seconds after its stdin closed, the child still runs, or
        a program it started still holds its stdout open, the child's whole
        process group is killed and ``TimeoutError`` says which it was (once
        everything is stopped and closed).
        """
        timeout = self.timeout if timeout is None else check_timeout(timeout)
        deadline = time.monotonic() + timeout
        if not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        stuck = None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            stuck = f"the child (pid {self.process.pid}) did not exit within {timeout} s of its stdin closing"
        else:
            self._reader.join(max(0.0, deadline - time.monotonic()))  # end of file: nobody holds stdout any more
            if self._reader.is_alive():
                stuck = (
                    f"the child exited with code {self.process.returncode}, but a program it started still held "
                    f"its stdout open {timeout} s after its stdin closed"
                )
        if stuck:
            self._kill_group()
            self.process.wait(timeout)
            self._reader.join(timeout)
        if not self._reader.is_alive():  # closing a stream another thread still reads would block until it ends
            self.process.stdout.close()
        if stuck:
            raise TimeoutError(f"{stuck}; {_KILLED}")
        return self.process.returncode

    def _kill_group(self):
        """SIGKILL the child and everything in its process group (the child alone where there are no groups)."""
        if _HAS_GROUPS:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group's id is the child's pid (start_new_session)
                return
            except ProcessLookupError:  # the group is already empty
                return
        self.process.kill()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        try:
            self.close()
        except TimeoutError:
            if exc_type is None:  # never hide the error that is already on its way out of the with block
                raise


if __name__ == "__main__":
    serve()
