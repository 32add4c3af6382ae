import queue
import subprocess
import sys
import threading

from ipckit.lessons.talk import read_lines

COMMAND = [sys.executable, "-m", "ipckit.lessons.talk"]


def talk(requests, timeout):
    """Send each request line to one child running COMMAND; return its reply lines, in order."""
    child = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    replies = queue.Queue()
    threading.Thread(target=read_lines, args=(child.stdout, replies), daemon=True).start()
    try:
        answers = []
        for request in requests:
            child.stdin.write(request + "\n")
            child.stdin.flush()  # the line goes to the child now, not when a buffer fills
            try:
                answers.append(replies.get(timeout=timeout))
            except queue.Empty:
                raise TimeoutError(f"no reply to {request!r} within {timeout} s") from None
        return answers
    finally:
        child.stdin.close()  # end of input: a child that is not busy exits by itself
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()  # still busy with a request: stop it
            child.wait(timeout=timeout)
