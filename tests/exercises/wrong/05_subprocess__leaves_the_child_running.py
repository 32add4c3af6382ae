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
    answers = []
    for request in requests:
        child.stdin.write(request + "\n")
        child.stdin.flush()
        try:
            answers.append(replies.get(timeout=timeout))
        except queue.Empty:
            raise TimeoutError(f"no reply to {request!r} within {timeout} s") from None  # the child is left running
    child.stdin.close()
    child.wait(timeout=timeout)
    return answers
