"""A long-running child program spoken to over stdin/stdout, and what ``poll()`` really returns.

Run as ``python -m ipckit.child``: it reads one request per line on stdin and
writes one reply per line on stdout, flushing each, so a parent can talk to it
in real time. Requests: ``square N``, ``upper TEXT``, ``echo TEXT``,
``sleep SECONDS``, ``exit CODE``, ``crash``. End of input ends it with code 0.

In the parent: :class:`LineChild` (talk to it, with timeouts), :func:`ask_once`
(one-shot ``communicate()``), :func:`pipe_buffer_deadlock_demo` and
:func:`exit_code_table`.
"""
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
    return f"error: unknown request {command!r}"


def serve(stdin=sys.stdin, stdout=sys.stdout):
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
    stdin (the child then exits by itself) and stops the child if it does not.
    """

    def __init__(self, command=CHILD_COMMAND, timeout=10.0):
        check_timeout(timeout)
        if isinstance(command, str) or not command:
            raise TypeError("command must be a non-empty list such as [sys.executable, '-m', 'ipckit.child']")
        self.timeout = timeout
        self.process = _start(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1)
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
        """Close stdin so the child ends; stop it if it does not. Return its exit code."""
        timeout = self.timeout if timeout is None else timeout
        if not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        self._reader.join(timeout)
        self.process.stdout.close()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ask_once(requests, timeout=10.0):
    """Start the child, give it all ``requests`` at once with ``communicate()``, return the replies."""
    check_timeout(timeout)
    if isinstance(requests, str):
        raise TypeError("requests must be a list of lines, e.g. ['square 3', 'upper hi']")
    result = subprocess.run(
        list(CHILD_COMMAND), input="".join(r + "\n" for r in requests), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"the child failed with exit code {result.returncode}: {result.stderr.strip()[-300:]}")
    return result.stdout.splitlines()


def _write_all(stream, text):
    try:
        stream.write(text)
        stream.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the child was killed to end the demo


def pipe_buffer_deadlock_demo(lines=5_000, width=100, wait_seconds=1.0, timeout=30.0):
    """Writing a lot to a child without reading its replies deadlocks; ``communicate()`` does not.

    The child answers each line; its replies fill the stdout pipe (about 64 KiB)
    while the parent is still writing, so the child blocks, stops reading, the
    stdin pipe fills too, and the parent blocks. Here the writing happens in a
    thread given ``wait_seconds``; then the child is killed to end the demo.
    """
    check_timeout(wait_seconds, "wait_seconds")
    text = "".join(f"echo {'x' * width}\n" for _ in range(lines))
    child = _start(CHILD_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer = threading.Thread(target=_write_all, args=(child.stdin, text), daemon=True)
    try:
        writer.start()
        writer.join(wait_seconds)
        stuck = writer.is_alive()
    finally:
        child.kill()
        writer.join(timeout)
        child.wait(timeout)
        for stream in (child.stdin, child.stdout):
            try:
                stream.close()
            except BrokenPipeError:
                pass
    replies = ask_once(["echo " + "x" * width] * lines, timeout=timeout)
    return {
        "bytes to write": len(text),
        f"plain write still blocked after {wait_seconds} s": stuck,
        "communicate() replies": len(replies),
    }


def _wait_for_exit(process, timeout):
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
        raise


def exit_code_table(timeout=10.0):
    """Start real children and record what ``poll()`` returns in each case."""
    check_timeout(timeout)
    rows = []

    def record(case, request, finish):
        child = _start(CHILD_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if request:
                child.stdin.write(request + "\n")
                child.stdin.flush()
            finish(child)
            _wait_for_exit(child, timeout)
            rows.append({"case": case, "poll()": child.poll(), "returncode": child.returncode})
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout)
            try:
                child.stdin.close()
            except BrokenPipeError:
                pass

    running = _start(CHILD_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        rows.append({"case": "still running", "poll()": running.poll(), "returncode": running.returncode})
    finally:
        running.kill()
        running.wait(timeout)
        running.stdin.close()
    record("end of input, normal exit", None, lambda c: c.stdin.close())
    record("sys.exit(3)", "exit 3", lambda c: None)
    record("uncaught exception", "crash", lambda c: None)
    record(f"terminate() (SIGTERM = {int(signal.SIGTERM)})", "sleep 60", lambda c: c.terminate())
    record(f"kill() (SIGKILL = {int(signal.SIGKILL)})", "sleep 60", lambda c: c.kill())
    return rows


if __name__ == "__main__":
    serve()
