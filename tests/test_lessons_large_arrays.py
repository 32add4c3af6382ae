"""Lessons 06 and 09: the workers their cells start, run the way the cells run them, and the exercise checks."""
import multiprocessing
import time
import zlib
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np
import pytest

from ipckit import arrays, bench, get_context
from ipckit.lessons import large_arrays
from ipckit.lessons.large_arrays import describe
from ipckit.watch import stop

REPO = Path(__file__).resolve().parent.parent
DATA = np.sin(np.arange(4096.0)).reshape(8, 16, 32)


def _reply(conn, timeout=20):
    assert conn.poll(timeout), "no reply from the child"
    return conn.recv()


def test_describe_tells_shape_dtype_and_bytes_apart():
    assert describe(DATA) == describe(DATA.copy())
    assert describe(np.asfortranarray(DATA)) == describe(DATA)  # same values, another memory order
    assert describe(DATA.astype(np.float32)) != describe(DATA)
    assert describe(DATA.reshape(16, 8, 32)) != describe(DATA)
    flipped = DATA.copy()
    flipped.reshape(-1).view(np.uint8)[0] ^= 1
    assert describe(flipped) != describe(DATA)


# --- lesson 06, section 1: one array to a child, five ways ---------------------------------


def test_send_pickled(start_method):
    ctx = get_context(start_method)
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(target=large_arrays.receive_pickled, args=(child_end, 10))
    child.start()
    child_end.close()
    try:
        parent_end.send(DATA)
        assert _reply(parent_end) == describe(DATA)
    finally:
        stop(child, grace=10)
        parent_end.close()
    assert child.exitcode == 0


def test_send_bytes_into_a_new_array(start_method):
    ctx = get_context(start_method)
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(target=large_arrays.receive_bytes, args=(child_end, 10))
    child.start()
    child_end.close()
    try:
        parent_end.send((DATA.shape, DATA.dtype.str))
        parent_end.send_bytes(DATA)
        assert _reply(parent_end) == describe(DATA)
    finally:
        stop(child, grace=10)
        parent_end.close()


def test_a_2d_buffer_is_too_short_for_recv_bytes_into():
    """What receive_bytes's 1-D view avoids."""
    small = np.arange(32.0).reshape(4, 8)
    sender, receiver = multiprocessing.Pipe()
    try:
        sender.send_bytes(small)
        with pytest.raises(multiprocessing.BufferTooShort):
            receiver.recv_bytes_into(np.empty((4, 8)))
        target = np.empty((4, 8))
        sender.send_bytes(small)
        assert receiver.recv_bytes_into(target.reshape(-1)) == small.nbytes
        assert np.array_equal(target, small)
    finally:
        sender.close()
        receiver.close()


def test_a_rawarray_read_in_place(start_method):
    ctx = get_context(start_method)
    raw = ctx.RawArray("d", DATA.size)
    np.frombuffer(raw, dtype=np.float64).reshape(DATA.shape)[...] = DATA
    replies, child_end = ctx.Pipe(duplex=False)
    child = ctx.Process(target=large_arrays.read_rawarray, args=(raw, DATA.shape, DATA.dtype.str, child_end))
    child.start()
    child_end.close()
    try:
        assert _reply(replies) == describe(DATA)
    finally:
        stop(child, grace=10)
        replies.close()


def test_a_shared_memory_block_by_its_name(start_method):
    ctx = get_context(start_method)
    block = SharedMemory(create=True, size=DATA.nbytes)
    try:
        shared = np.ndarray(DATA.shape, DATA.dtype, buffer=block.buf)
        shared[...] = DATA
        replies, child_end = ctx.Pipe(duplex=False)
        child = ctx.Process(target=large_arrays.read_shared_memory,
                            args=(block.name, DATA.shape, DATA.dtype.str, child_end))
        child.start()
        child_end.close()
        try:
            assert _reply(replies) == describe(DATA)
        finally:
            stop(child, grace=10)
            replies.close()
        assert child.exitcode == 0
    finally:
        shared = None
        block.close()
        block.unlink()


@pytest.mark.parametrize("put_a_copy", [False, True], ids=["put-the-buffer", "put-a-copy"])
def test_a_queue_pickles_after_put_returns(put_a_copy, start_method):
    """The lesson's feeder-thread trap: frame 1 travels as it is when the feeder thread gets to it."""
    ctx = get_context(start_method)
    frame = np.zeros(2**20)  # 8 MiB: the feeder thread waits with frame 0 until a reader comes
    items = ctx.Queue()
    for value in (1.0, 2.0):
        items.put(frame.copy() if put_a_copy else frame)
        frame[...] = value
    replies, child_end = ctx.Pipe(duplex=False)
    child = ctx.Process(target=large_arrays.receive_from_queue, args=(items, child_end, 2, 10))
    child.start()
    child_end.close()
    try:
        arrived = _reply(replies)
    finally:
        stop(child, grace=10)
        replies.close()
        items.cancel_join_thread()
    expected = 1.0 if put_a_copy else 2.0
    assert arrived[1] == describe(np.full(2**20, expected))


# --- lesson 06, section 6: a global inherited at fork ----------------------------------------


def _forked(target, array):
    forking = multiprocessing.get_context("fork")
    large_arrays.INHERITED = array
    try:
        replies, child_end = forking.Pipe(duplex=False)
        child = forking.Process(target=target, args=(child_end,))
        child.start()
        child_end.close()
        try:
            return _reply(replies)
        finally:
            stop(child, grace=10)
            replies.close()
    finally:
        large_arrays.INHERITED = None


def test_a_forked_child_reads_the_global_it_inherited():
    total, read_s = _forked(large_arrays.read_inherited, np.ones(2**18))
    assert total == 2**18 and read_s >= 0


def test_writing_an_inherited_array_faults_on_every_page():
    import mmap

    array = np.ones(8 * 2**20 // 8)
    read_faults, write_faults = _forked(large_arrays.count_copied_pages, array)
    pages = array.nbytes // mmap.PAGESIZE
    assert read_faults < 0.25 * pages
    assert write_faults >= pages


def test_a_spawned_child_has_no_inherited_array():
    ctx = get_context("spawn")
    large_arrays.INHERITED = np.ones(10)
    try:
        replies, child_end = ctx.Pipe(duplex=False)
        child = ctx.Process(target=large_arrays.read_inherited, args=(child_end,))
        child.start()
        child_end.close()
        try:
            stop(child, grace=10)
            assert child.exitcode == 1  # AttributeError on None: the global is not there
            assert replies.poll(1)
            with pytest.raises(EOFError):
                replies.recv()
        finally:
            replies.close()
    finally:
        large_arrays.INHERITED = None


# --- lesson 09: the child of a fair timing ------------------------------------------------------


def test_receive_and_stamp_stamps_then_checks(start_method):
    ctx = get_context(start_method)
    array = np.arange(32 * 1024, dtype=np.float64)
    with arrays.TRANSPORTS["pipe_bytes"].open(array.nbytes, start_method) as link:
        stamps, child_end = ctx.Pipe(duplex=False)
        child = ctx.Process(target=large_arrays.receive_and_stamp, args=(link.receiver, child_end, 3, 10))
        child.start()
        child_end.close()
        link.receiver.close()
        try:
            for _ in range(3):
                start = time.perf_counter()
                link.sender.send(array, 10)
                arrived = _reply(stamps)
                assert 0 < arrived - start < 10  # one clock for every process
                assert _reply(stamps) == zlib.crc32(array)
        finally:
            stop(child, grace=10)
            stamps.close()
    assert child.exitcode == 0


def test_a_cold_first_recv_is_slow_once_per_process():
    array = np.arange(1024.0)
    with arrays.TRANSPORTS["pipe_pickle"].open(array.nbytes, "fork") as link:
        cold = large_arrays.ColdFirstRecv(link.receiver, 0.2)
        times = []
        for _ in range(2):
            link.sender.send(array)
            start = time.perf_counter()
            assert np.array_equal(cold.recv(10), array)
            times.append(time.perf_counter() - start)
    assert times[0] >= 0.2 > times[1]


# --- the exercise checks -----------------------------------------------------------------------------


def _answer(path):
    """The module an exercise file writes (its text without the %%writefile line)."""
    return path.read_text().split("\n", 1)[1]


@pytest.fixture
def learner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name, path):
        (tmp_path / f"{name}.py").write_text(_answer(path))
        return name

    return write


WRONG = REPO / "tests" / "exercises" / "wrong"


@pytest.mark.timeout(120)
def test_the_rawarray_check_passes_the_solution(learner, start_method, capsys):
    module = learner("exercise_rawarray_test", REPO / "notebooks" / "solutions" / "06_large_arrays.py")
    assert large_arrays.check_rawarray(module, start_method) is True
    assert capsys.readouterr().out.startswith("Right: ")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("label, verdict", [
    ("dtype_lost", "Wrong: array 0 went in as int64 and came back as float64"),
    ("fortran_order", "Wrong: array 0 came back with the right shape and dtype but different values"),
    ("memory_order", "Wrong: array 3 came back with the right shape and dtype but different values. "
                     "It lies in memory in Fortran order"),
    ("shape_backwards", "Wrong: array 1 went in with shape (2, 4, 5) and came back with shape (5, 4, 2)"),
])
def test_the_rawarray_check_says_what_is_wrong(label, verdict, learner, capsys):
    module = learner("exercise_rawarray_test", WRONG / f"06_large_arrays__{label}.py")
    assert large_arrays.check_rawarray(module, "spawn") is False
    assert capsys.readouterr().out.startswith(verdict)


def test_the_rawarray_check_wants_a_rawarray(learner, tmp_path, capsys):
    (tmp_path / "exercise_rawarray_bytes.py").write_text(
        "def flatten(arrays, ctx):\n    return b''.join(a.tobytes() for a in arrays), None\n\n"
        "def rebuild(raw, layout):\n    return []\n"
    )
    assert large_arrays.check_rawarray("exercise_rawarray_bytes", "fork") is False
    assert capsys.readouterr().out.startswith("Wrong: flatten() returned a bytes as raw")


@pytest.mark.timeout(120)
def test_the_timing_check_passes_the_solution(learner, start_method, capsys):
    module = learner("exercise_timing_test", REPO / "notebooks" / "solutions" / "09_timing_comparison.py")
    assert large_arrays.check_timing(module, start_method) is True
    assert capsys.readouterr().out.startswith("Right: ")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("label, verdict", [
    ("no_check", 'Wrong: a receiver that flips one bit of every array was reported "intact"'),
    ("start_up_timed", "Wrong: every timed hand-off took at least"),
    ("no_warmup", "Wrong: one timed hand-off took"),
])
def test_the_timing_check_says_what_is_wrong(label, verdict, learner, capsys):
    module = learner("exercise_timing_test", WRONG / f"09_timing_comparison__{label}.py")
    assert large_arrays.check_timing(module, "spawn") is False
    assert capsys.readouterr().out.startswith(verdict)


def test_the_timing_check_catches_a_hang_and_stops_the_child(learner, tmp_path, monkeypatch, capsys):
    """Too few arrays for the child: the next send waits for a reader that has gone, until the check closes the link."""
    text = _answer(REPO / "notebooks" / "solutions" / "09_timing_comparison.py")
    text = text.replace("warmup + repeats, timeout))", "1, timeout))").replace("    link.receiver.close()", "    pass")
    (tmp_path / "exercise_timing_hangs.py").write_text(text)
    monkeypatch.setattr(large_arrays, "TIMING_S", 3.0)
    started = time.monotonic()
    assert large_arrays.check_timing("exercise_timing_hangs", "fork") is False
    assert time.monotonic() - started < 3.0 + 10
    assert capsys.readouterr().out.startswith("Wrong: time_hand_offs was still running")


def test_the_copied_out_transport_hands_over_copies():
    copied = bench.copied_out("shared_memory")
    assert copied.name == "shared_memory (copied out)" and not copied.in_place
    record = bench.hand_off(64 * 1024, copied, "fork", repeat=2, warmup=0, timeout=30)
    assert record["ok"] and record["transport"] == copied.name
