"""A full /dev/shm is a clear NotEnoughSharedMemory, never SIGBUS: checked in a real, private 64 MiB /dev/shm.

Each test runs a Python child in its own mount namespace with a fresh 64 MiB
tmpfs on /dev/shm (Docker's default size): ``unshare --mount`` as root. Other
programs on the machine neither see nor disturb its files. Where that is not
possible the tests are skipped, except under ``CI=true``, where they must run.
"""
import functools
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MOUNT = 'mount -t tmpfs -o size=64m tmpfs /dev/shm && exec "$@"'
PRIVATE_SHM = ["unshare", "--mount", "--propagation", "private", "sh", "-c", MOUNT, "sh"]


@functools.cache
def _why_not_here():
    """None if a private /dev/shm can be mounted here, else why not."""
    if not sys.platform.startswith("linux"):
        return "a private /dev/shm needs Linux mount namespaces"
    if os.geteuid() != 0:
        return "mounting a private /dev/shm needs root (unshare --mount)"
    if shutil.which("unshare") is None:
        return "the unshare command (util-linux) is not installed"
    probe = subprocess.run(PRIVATE_SHM + ["true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"unshare --mount failed here: {probe.stderr.strip()}"
    return None


def run_in_small_dev_shm(script, *args, timeout=120):
    """Run ``script`` in a fresh Python under a private 64 MiB /dev/shm; return the finished process."""
    reason = _why_not_here()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run this test: {reason}")
        pytest.skip(reason)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        PRIVATE_SHM + [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO,
    )


def _outcome(done):
    if done.returncode < 0:
        return f"killed by {signal.Signals(-done.returncode).name}; stderr: {done.stderr[-2000:]}"
    return f"exit code {done.returncode}; stdout: {done.stdout[-2000:]} stderr: {done.stderr[-2000:]}"


CONTROL = """
    # The standard library alone: two 40 MiB blocks "fit" (ftruncate reserves nothing), the second write dies.
    from multiprocessing.shared_memory import SharedMemory
    first = SharedMemory(create=True, size=40 * 2**20)
    second = SharedMemory(create=True, size=40 * 2**20)
    first.unlink(); second.unlink()  # the names go; the mappings stay until the process ends
    first.buf[:] = b"x" * len(first.buf)
    second.buf[:] = b"x" * len(second.buf)
    print("both written")
"""


@pytest.mark.timeout(120)
def test_the_control_dies_of_sigbus():
    """The check can fail: in the same small /dev/shm, the standard library's way ends in SIGBUS."""
    done = run_in_small_dev_shm(CONTROL)
    assert done.returncode == -signal.SIGBUS, _outcome(done)


TWO_POOLS = """
    import os, sys
    import numpy as np
    from ipckit import shm

    first = shm.SlotPool(2, 20 * 2**20)  # 40 MiB of 64, reserved now
    try:
        second = shm.SlotPool(2, 20 * 2**20)
    except shm.NotEnoughSharedMemory as error:
        print("second pool:", error)
    else:
        sys.exit("the second pool was made although it cannot fit")
    # The same when the quick statvfs check is passed (another process could take the space after it):
    shm.space_problem = lambda nbytes, what=None: None
    try:
        shm.SlotPool(2, 20 * 2**20)
    except shm.NotEnoughSharedMemory as error:
        print("reservation:", error)
    for slot in range(2):  # and the pool that was made can be written to the last byte
        first.write(slot, np.ones(20 * 2**20 // 8))
    first.close()
    print("left in /dev/shm:", [n for n in os.listdir("/dev/shm") if not n.startswith("sem.")])
"""


@pytest.mark.timeout(120)
def test_two_slot_pools_in_64_mib_give_a_clear_error():
    done = run_in_small_dev_shm(TWO_POOLS)
    assert done.returncode == 0, _outcome(done)
    lines = done.stdout.splitlines()
    pool, reservation = lines[0], lines[1]
    assert pool.startswith("second pool: a shared memory block of 41,943,040 bytes does not fit in /dev/shm: only")
    assert reservation.startswith(
        "reservation: a shared memory block of 41,943,040 bytes does not fit in /dev/shm: only")
    assert pool.split(" bytes are free")[0][-10:] == reservation.split(" bytes are free")[0][-10:]  # the real figure
    for line in (pool, reservation):
        assert "bytes are free" in line and "--shm-size" in line
    assert lines[2] == "left in /dev/shm: []"


TWO_PIPELINES = """
    import os, sys
    import numpy as np
    from ipckit.lessons import workloads
    from ipckit.pipeline import OrderedPipeline

    method, nbytes, count = sys.argv[1], 8 * 2**20, 12
    args = dict(consumers=2, buffer=4, start_method=method)
    with OrderedPipeline(workloads.same_array, workloads.identity, (count, nbytes), **args) as first, \\
            OrderedPipeline(workloads.same_array, workloads.identity, (count, nbytes), **args) as second:
        for number, (a, b) in enumerate(zip(first, second)):  # both stream at once
            assert a[0] == b[0] == number and a[-1] == b[-1] == nbytes // 8 - 1, number
            del a, b
    ways = [(p.stats["via shared memory"], p.stats["pickled"]) for p in (first, second)]
    print("both pipelines finished; (via shared memory, pickled):", ways)
    print("left in /dev/shm:", [n for n in os.listdir("/dev/shm") if not n.startswith("sem.")])
"""


@pytest.mark.timeout(180)
def test_two_pipelines_with_big_arrays_in_64_mib_never_die_of_sigbus(start_method):
    done = run_in_small_dev_shm(TWO_PIPELINES, start_method, timeout=150)
    assert done.returncode == 0, _outcome(done)
    assert "both pipelines finished" in done.stdout
    assert "left in /dev/shm: []" in done.stdout
