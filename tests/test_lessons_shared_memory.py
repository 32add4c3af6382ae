"""Lesson 07's workers, run the way its cells run them, and its exercise check, under every start method."""
import math
import os
import signal
import subprocess
import sys
from multiprocessing import resource_tracker
from multiprocessing.managers import SharedMemoryManager
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np
import pytest

import ipckit
from ipckit import get_context, shm
from ipckit.lessons import shared_memory as lesson
from ipckit.watch import stop

REPO = Path(__file__).resolve().parent.parent
SOLUTION = REPO / "notebooks" / "solutions" / "07_shared_memory.py"
WRONG = REPO / "tests" / "exercises" / "wrong"


def _exists(name):
    return os.path.exists(os.path.join(lesson.SHM_DIR, name))


def _run(ctx, target, *args):
    child = ctx.Process(target=target, args=args)
    child.start()
    stop(child, grace=10)
    return child.exitcode


# --- 1. a child attaches by name -------------------------------------------------------------


def test_a_child_adds_row_numbers_in_place_and_leaves_the_block(start_method):
    ctx = get_context(start_method)
    data = np.arange(12, dtype=np.float64).reshape(3, 4)
    block = SharedMemory(create=True, size=data.nbytes)
    array = np.frombuffer(block.buf, data.dtype, count=data.size).reshape(data.shape)
    try:
        array[:] = data
        assert _run(ctx, lesson.add_row_numbers, block.name, data.shape, data.dtype.str) == 0
        assert np.array_equal(array, data + np.arange(3).reshape(-1, 1))
        assert _exists(block.name)  # the child closed; it did not unlink
    finally:
        del array
        block.close()
        block.unlink()
    assert not _exists(block.name)


# --- 2. numpy views and close() --------------------------------------------------------------


@pytest.mark.timeout(60)
def test_close_under_a_view_crashes_or_refuses(start_method):
    ctx = get_context(start_method)
    said = {}
    for how in lesson.VIEW_KINDS:
        receiver, sender = ctx.Pipe(duplex=False)
        child = ctx.Process(target=lesson.close_under_a_view, args=(how, sender))
        child.start()
        sender.close()
        stop(child, grace=10)
        said[how] = (child.exitcode, receiver.recv() if child.exitcode == 0 else None)
        receiver.close()
    assert said["np.ndarray(buffer=shm.buf)"] == (-signal.SIGSEGV, None)
    assert said["np.frombuffer(shm.buf)"] == (0, "close() raised BufferError: cannot close exported pointers exist")


# --- 3. SharedMemoryManager and ShareableList -------------------------------------------------


def test_the_manager_unlinks_every_block_at_shutdown(start_method):
    ctx = get_context(start_method)
    data = np.arange(6, dtype=np.int64).reshape(2, 3)
    with SharedMemoryManager(ctx=ctx) as smm:
        block = smm.SharedMemory(size=data.nbytes)
        sums = smm.ShareableList([0.0] * 2)
        array = np.frombuffer(block.buf, data.dtype, count=data.size).reshape(data.shape)
        array[:] = data
        assert _run(ctx, lesson.sum_rows_into, block.name, data.shape, data.dtype.str, sums) == 0
        assert list(sums) == [3.0, 12.0]
        names = [block.name, sums.shm.name]
        assert all(_exists(name) for name in names)
        del array
        block.close()
        sums.shm.close()
    assert not any(_exists(name) for name in names)  # nobody called unlink(): the manager did


# --- 4. the resource tracker ------------------------------------------------------------------


def _attach_elsewhere(how):
    block = SharedMemory(create=True, size=4096)
    code = f"from ipckit.lessons.shared_memory import attach_and_exit; attach_and_exit({block.name!r}, {how!r})"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    survived = _exists(block.name)
    block.close()
    if survived:
        block.unlink()
    else:  # the other program's tracker unlinked it: tell ours to forget it
        resource_tracker.unregister(f"/{block.name}", "shared_memory")
    return other.returncode, survived, "leaked shared_memory" in other.stderr


@pytest.mark.timeout(60)
def test_another_programs_tracker_unlinks_what_it_attached_to():
    assert _attach_elsewhere("SharedMemory(name)") == (0, False, True)
    assert _attach_elsewhere("shm.attach(name)") == (0, True, False)


@pytest.mark.skipif(sys.version_info < (3, 13), reason="track=False is new in Python 3.13")
def test_track_false_leaves_the_block_alone():
    assert _attach_elsewhere("SharedMemory(name, track=False)") == (0, True, False)


def test_an_unknown_way_to_attach_is_refused():
    with pytest.raises(ValueError, match="unknown way"):
        lesson.attach_and_exit("psm_none", "mmap")


# --- 5. SIGBUS --------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_write_with_no_page_behind_it_is_sigbus(start_method):
    ctx = get_context(start_method)
    block = SharedMemory(create=True, size=2**20)
    try:
        assert _run(ctx, lesson.shrink_then_write, block.name) == -signal.SIGBUS
    finally:
        block.close()
        block.unlink()


# --- 8. acknowledge after the read ----------------------------------------------------------------


@pytest.mark.timeout(60)
def test_acknowledging_after_the_read_keeps_every_frame(start_method):
    assert lesson.stream_frames("after", count=50, start_method=start_method, timeout=20) == 50


@pytest.mark.timeout(60)
def test_acknowledging_before_the_read_loses_frames(start_method):
    whole = lesson.stream_frames("before", count=50, start_method=start_method, timeout=20)
    assert whole < 50  # the writer wrote the next frame while the reader still held this one


def test_acknowledge_is_checked():
    with pytest.raises(ValueError, match="'before' or 'after'"):
        lesson.stream_frames("never")


# --- 9. zero copy -------------------------------------------------------------------------------------


def test_a_child_computes_into_a_slot(start_method):
    ctx = get_context(start_method)
    shape = (100, 50)
    with shm.SlotPool(slots=1, slot_bytes=math.prod(shape) * 8) as pool:
        receiver, sender = ctx.Pipe(duplex=False)
        child = ctx.Process(target=lesson.fill_slot, args=(pool, pool.acquire(), shape, 3, sender))
        child.start()
        try:
            assert receiver.poll(20)
            ref = receiver.recv()
        finally:
            stop(child, grace=10)
            receiver.close()
            sender.close()
        assert ref.shape == shape and ref.name == pool.name
        assert np.array_equal(pool.read(ref), np.random.default_rng(3).random(shape))
        pool.release(ref)


# --- the exercise check -----------------------------------------------------------------------------


@pytest.fixture
def learner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(answer):
        first, _, rest = answer.read_text().partition("\n")
        assert first == "%%writefile exercise_shm.py"
        (tmp_path / "exercise_shm_test.py").write_text(rest)
        return "exercise_shm_test"

    return write


@pytest.mark.timeout(120)
def test_the_check_passes_the_solution(learner, start_method, capsys):
    assert lesson.check_double_in_place(learner(SOLUTION), start_method) is True
    assert capsys.readouterr().out.startswith("Right: ")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "label, verdict",
    [
        ("unlinks_the_block", "Wrong: double_in_place unlinked the block"),
        ("always_float64", ("Wrong: for an array of shape (2, 3, 5) and dtype '<i4' (int32), double_in_place "
                            "raised ValueError")),
        ("whole_block", "Wrong: with an array of shape (4, 3) and dtype '<f8' (float64), double_in_place changed"),
        ("close_under_the_view", ("Wrong: for an array of shape (4, 3) and dtype '<f8' (float64), "
                                  "double_in_place raised BufferError")),
        ("never_closes", "Wrong: the values are right, but double_in_place never called close()"),
        ("swallows_buffer_error", "Wrong: the values are right, but close() raised BufferError"),
    ],
)
def test_the_check_says_what_is_wrong(label, verdict, learner, start_method, capsys):
    """Every start method for the mistakes about ownership and views (test_exercises.py runs each under spawn)."""
    if start_method != "spawn" and label not in ("unlinks_the_block", "never_closes", "swallows_buffer_error"):
        pytest.skip("the dtype and view mistakes do not depend on the start method")
    assert lesson.check_double_in_place(learner(WRONG / f"07_shared_memory__{label}.py"), start_method) is False
    assert capsys.readouterr().out.startswith(verdict)


def test_the_check_notices_a_dead_child(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "exercise_shm_dies.py").write_text(
        "import os\n\ndef double_in_place(name, shape, dtype):\n    os._exit(3)\n"
    )
    monkeypatch.setenv(ipckit.ENV_VAR, "spawn")
    assert lesson.check_double_in_place("exercise_shm_dies") is False
    assert capsys.readouterr().out.startswith("Wrong: the child running double_in_place died with exit code 3")
