import queue
import subprocess
import sys
import threading

from ipckit.lessons.talk import read_lines

COMMAND = [sys.executable, "-m", "ipckit.lessons.talk"]


def talk(requests, timeout):
    """Send each request line to one child running COMMAND; return its reply lines, in order."""
    child = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        answers = []
        for request in requests:
            child.stdin.write(request + "\n")
            child.stdin.flush()
            answers.append(child.stdout.readline().rstrip("\n"))  # no timeout: waits as long as the child takes
        return answers
    finally:
        child.stdin.close()
        child.wait(timeout=10)
        child.stdout.close()
