import subprocess
import sys

COMMAND = [sys.executable, "-m", "ipckit.lessons.talk"]


def talk(requests, timeout):
    """Send each request line to one child running COMMAND; return its reply lines, in order."""
    child = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:  # wrong: all lines at once, one deadline for all replies (however generous), nothing read line by line
        out, _ = child.communicate("".join(request + "\n" for request in requests), timeout=timeout * len(requests))
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise TimeoutError(f"no replies within {timeout} s each") from None
    return out.splitlines()
