"""A long-running child program spoken to line by line over stdin/stdout, never hanging the parent.

:class:`LineChild` starts a program with ``subprocess.Popen`` and reads its
replies with a timeout (a reader thread feeds a queue), and its ``close`` stops
the program together with whatever it started that still holds its stdout. By
default it runs the kit's line program, ``python -m ipckit.lessons.talk``
(lesson 05's child; lesson 05 writes the same talk with ``Popen`` in its cells,
and ``bench`` times a round trip through it).
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

CHILD_COMMAND = (sys.executable, "-m", "ipckit.lessons.talk")  # the line program lesson 05 talks to


def _start(command, **popen_options):
    try:
        return subprocess.Popen(list(command), text=True, **popen_options)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"cannot start {command[0]!r}: no such program; check the name, or give its full path"
            + (f" (found on PATH: {shutil.which(command[0])})" if shutil.which(command[0]) else "")
        ) from None


# POSIX: a child in a session of its own can be stopped together with all it started. Elsewhere
# (Windows) the child runs in the parent's group and close() can kill only the child itself.
_HAS_GROUPS = hasattr(os, "killpg")


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
    exits.) Where there are no process groups (Windows), ``close`` can stop
    only the child, and its ``TimeoutError`` says so.
    """

    def __init__(self, command=CHILD_COMMAND, timeout=10.0):
        check_timeout(timeout)
        if isinstance(command, str) or not command:
            raise TypeError("command must be a non-empty list such as [sys.executable, '-m', 'ipckit.lessons.talk']")
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
            killed = (
                "killed its whole process group"
                if _HAS_GROUPS
                else f"killed the child only: {sys.platform} has no process groups, so what it started may still run"
            )
            raise TimeoutError(f"{stuck}; {killed}")
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

