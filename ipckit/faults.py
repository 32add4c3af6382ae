"""Workers that fail on purpose, for the lessons' failure demos and the tests."""
import os
import time


def fail(message="failed on purpose"):
    """Raise ValueError(message) in whatever process runs it."""
    raise ValueError(message)


def die(exitcode=3):
    """End this process at once, without a word: no exception, no cleanup, no reply."""
    os._exit(exitcode)


def nap(seconds=0.0, value=None):
    """Sleep, then return ``value``: a stand-in for slow work."""
    time.sleep(seconds)
    return value


def unpicklable_result():
    """Return something that cannot be pickled, so it cannot travel back to the parent."""
    return lambda: None
