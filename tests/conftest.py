"""Shared fixtures: the start-method matrix, and the leak guard every test runs under."""
import gc
import os
import time

import psutil
import pytest

from ipckit import START_METHODS

SHM_DIR = "/dev/shm"
# Helpers multiprocessing keeps for the whole run; they are not leaks.
SERVICE_PROCESSES = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
SETTLE_SECONDS = 3.0


@pytest.fixture
def plain_exception_pickling(monkeypatch):
    """Exceptions pickled by their own rules only.

    Importing ``distributed`` (lesson 10's tests) installs tblib's reducers for
    every exception class in ``copyreg``, which rebuild even an exception whose
    ``__init__`` refuses its ``args``; a forked child would inherit them.
    """
    import copyreg

    for cls in [cls for cls in copyreg.dispatch_table if isinstance(cls, type) and issubclass(cls, BaseException)]:
        monkeypatch.delitem(copyreg.dispatch_table, cls)


@pytest.fixture(params=START_METHODS)
def start_method(request):
    """Run the test once under each start method."""
    return request.param


def _service_pids():
    me = psutil.Process()
    pids = set()
    for child in me.children(recursive=False):
        try:
            if any(name in " ".join(child.cmdline()) for name in SERVICE_PROCESSES):
                pids.add(child.pid)
        except psutil.Error:
            pass
    return pids


def _live_children():
    """Descendants of this process, except the resource tracker and forkserver themselves."""
    services = _service_pids()
    alive = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.pid not in services and proc.status() != psutil.STATUS_ZOMBIE:
                alive[proc.pid] = " ".join(proc.cmdline())[:120]
        except psutil.Error:
            pass
    return alive


def _shm_names():
    try:
        return set(os.listdir(SHM_DIR))
    except FileNotFoundError:
        return set()


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves a child process alive or a new file in /dev/shm."""
    children_before = set(_live_children())
    shm_before = _shm_names()
    yield
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        gc.collect()  # semaphores and shared blocks are released by finalizers
        orphans = {pid: cmd for pid, cmd in _live_children().items() if pid not in children_before}
        leftovers = _shm_names() - shm_before
        if (not orphans and not leftovers) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in orphans:  # our own descendants: stop them so one leak does not fail the tests after it
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass
    # New /dev/shm files are reported, never deleted: they may belong to another program on this
    # machine (a second test run, a notebook), and the next test's snapshot starts after them anyway.
    problems = []
    if orphans:
        problems.append(f"child processes still alive: {orphans}")
    if leftovers:
        problems.append(f"new files left in {SHM_DIR}: {sorted(leftovers)}")
    if problems:
        pytest.fail("leak: " + "; ".join(problems), pytrace=False)
