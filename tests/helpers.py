"""Small helpers several test modules share (pytest puts this folder on sys.path)."""
import time

import psutil


def gone(pid):
    """True when process ``pid`` has ended: no such process, or a zombie waiting for its parent's wait()."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition, seconds, every=0.02):
    """Poll ``condition`` until it holds or ``seconds`` pass; return whether it held."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True
