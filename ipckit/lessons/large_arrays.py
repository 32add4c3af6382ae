"""Lessons 06 and 09, large arrays: what their children run, and the checks of their exercises.

Lesson 06 moves one numpy array to a child by hand, five ways (a pickled
``send``, ``send_bytes`` + ``recv_bytes_into``, a ``RawArray``, a
``SharedMemory`` block, a ``Queue``), then lets a forked child read a global
it inherited. Lesson 09 times a hand-off fairly. Each worker is short stdlib
code (+ numpy) that the lessons show with ``ipckit.show``; every one replies
with :func:`describe` of what it received, so the parent can compare bit for bit.
"""
import ctypes
import math
import multiprocessing
import statistics
import time
import zlib
from multiprocessing.connection import wait
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from ..context import get_context
from .checking import Wrong, call_with_deadline, exercise_check, learner_function, learner_module


def describe(array):
    """(shape, dtype, CRC-32 of the bytes in C order): equal descriptions mean equal arrays, bit for bit."""
    return tuple(array.shape), str(array.dtype), zlib.crc32(np.ascontiguousarray(array))


# --- lesson 06, section 1: one array to a child, five ways ---------------------------------------


def receive_pickled(conn, timeout):
    """Receive one array with recv(), which unpickles it, and reply with what arrived."""
    if not conn.poll(timeout):
        raise TimeoutError(f"no array within {timeout} s")
    conn.send(describe(conn.recv()))


def receive_bytes(conn, timeout):
    """Receive a small header, then the raw bytes straight into a new array; reply with what arrived."""
    if not conn.poll(timeout):
        raise TimeoutError(f"no header within {timeout} s")
    shape, dtype = conn.recv()  # how big, and what kind: all the child needs to allocate
    array = np.empty(shape, dtype)
    if not conn.poll(timeout):
        raise TimeoutError(f"no array data within {timeout} s")
    conn.recv_bytes_into(array.reshape(-1))  # a 1-D view: recv_bytes_into sizes a buffer by its first dimension
    conn.send(describe(array))


def read_rawarray(raw, shape, dtype, conn):
    """Look at the RawArray in place, as an array of ``shape`` and ``dtype`` (no copy), and reply with what is there."""
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    conn.send(describe(array))


def read_shared_memory(name, shape, dtype, conn):
    """Attach to the block by its name, look at the array in place, reply; close it (the creator unlinks it)."""
    block = SharedMemory(name=name)
    try:
        array = np.ndarray(shape, dtype, buffer=block.buf)
        conn.send(describe(array))
        del array  # a view of block.buf must be gone before close()
    finally:
        block.close()


def receive_from_queue(items, conn, count, timeout):
    """Take ``count`` arrays from the queue, each with get(timeout=...), and reply with what arrived."""
    conn.send([describe(items.get(timeout=timeout)) for _ in range(count)])


# --- lesson 06, section 6: a global inherited at fork ---------------------------------------------

INHERITED = None  # set by the parent just before it forks: a forked child starts with it, and nobody else


def read_inherited(conn):
    """Read the array this forked child inherited, in place, and reply with its sum and the seconds the read took."""
    started = time.perf_counter()
    total = float(INHERITED.sum())
    conn.send((total, time.perf_counter() - started))


def count_copied_pages(conn):
    """Count the page faults of reading, then of writing, the inherited array: each write fault copies one page."""
    import resource  # Unix only, like fork

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    before = faults()
    INHERITED.sum()
    after_read = faults()
    INHERITED[...] += 1  # the kernel copies each page at its first write
    conn.send((after_read - before, faults() - after_read))


# --- lesson 09: a fair timing -----------------------------------------------------------------------


def receive_and_stamp(receiver, stamps, count, timeout):
    """Receive ``count`` arrays; after each, send the moment recv() returned, then the array's CRC-32.

    The CRC-32 is computed after the stamp, so checking the bytes is outside
    the timed interval. On Linux ``time.perf_counter`` reads one clock for every
    process on the machine, so the parent can subtract its own start from the stamp.
    """
    try:
        for _ in range(count):
            array = receiver.recv(timeout)
            stamps.send(time.perf_counter())  # the clock stops here
            stamps.send(zlib.crc32(np.ascontiguousarray(array)))  # the check, after the clock stopped
            del array
    finally:
        receiver.close()
        stamps.close()


# --- the checks' children ----------------------------------------------------------------------------


def _rebuild_and_describe(rebuild, raw, layout, conn):
    """Child of the lesson 06 check: call the learner's rebuild on the RawArray; reply with what it returned."""
    try:
        arrays = rebuild(raw, layout)
        items = list(arrays) if isinstance(arrays, (list, tuple)) else None
        if items is None:
            conn.send(("not a list", type(arrays).__name__))
        else:
            conn.send(("returned", [describe(a) if isinstance(a, np.ndarray) else type(a).__name__ for a in items]))
    except Exception as exc:
        conn.send(("raised", type(exc).__name__, str(exc)))
    finally:
        conn.close()


class ColdFirstRecv:
    """A receiving end whose first recv() in each process takes ``COLD_S`` longer: a cold start, made visible.

    A first call often pays once for what the next ones find ready (imports,
    allocations, caches): that is what a warm-up leaves out of a timing. Here it
    is made long enough that a timing which includes it, or which starts a
    new child for every hand-off, cannot miss it.
    """

    def __init__(self, end, cold_s):
        self._end, self._cold_s, self._warm = end, cold_s, False

    def recv(self, timeout, peer=None):
        if not self._warm:
            time.sleep(self._cold_s)
            self._warm = True
        return self._end.recv(timeout, peer)

    def release(self):
        self._end.release()

    def close(self):
        self._end.close()


# --- lesson 06's exercise: a list of 3-D arrays through one RawArray, rebuilt in a child -----------


def check_lists():
    """The two lists of 3-D arrays the check sends: mixed shapes and dtypes, one array in Fortran order."""
    rng = np.random.default_rng(6)
    first = [
        np.arange(27, dtype=np.int64).reshape(3, 3, 3),  # the seed's (3, 3, 3)
        rng.standard_normal((2, 4, 5)).astype(np.float32),
        rng.integers(-300, 300, (4, 2, 3)).astype(np.int16),
        np.asfortranarray(rng.standard_normal((3, 2, 4))),
    ]
    second = [
        rng.integers(0, 256, (2, 3, 5)).astype(np.uint8),
        rng.standard_normal((1, 6, 2)),
        rng.integers(-9, 9, (5, 1, 3)).astype(np.int32),
    ]
    return [first, second]


FLATTEN_S = 10.0  # seconds the learner's flatten may take
REBUILD_S = 20.0  # seconds for the child to start and rebuild


def _rebuilt_in_child(ctx, rebuild, raw, layout):
    """Start a child that calls ``rebuild(raw, layout)``; return its report."""
    replies, child_end = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_rebuild_and_describe, args=(rebuild, raw, layout, child_end), daemon=True)
    try:
        child.start()
        child_end.close()  # the child has its own copy: if it dies, the pipe ends
        if not wait([replies, child.sentinel], REBUILD_S):
            raise Wrong(f"the child calling rebuild() gave no answer within {REBUILD_S:.0f} s.")
        try:
            return replies.recv()
        except EOFError:
            child.join(timeout=5)
            raise Wrong(
                f"the child calling rebuild() died (exit code {child.exitcode}) before it could answer."
            ) from None
    finally:
        child_end.close()
        if child.pid is not None:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
        replies.close()


def _judge_rebuilt(arrays, got):
    """Raise Wrong with what differs between the arrays sent and what the learner's rebuild returned."""
    expected = [describe(a) for a in arrays]
    if len(got) != len(expected):
        raise Wrong(f"flatten() was given {len(expected)} arrays, and rebuild() returned {len(got)}.")
    for index, (sent, came) in enumerate(zip(arrays, got, strict=True)):
        if not isinstance(came, tuple):
            raise Wrong(f"rebuild() returned a {came} as item {index}; it should return numpy arrays.")
        shape, dtype, crc = came
        if dtype != str(sent.dtype):
            all_float = all(isinstance(g, tuple) and g[1] == "float64" for g in got)
            hint = (
                " Every array came back as float64: RawArray('d', ...) stores every value as a C double, so the "
                "dtypes are lost. Copy each array's bytes into a RawArray('B', total_bytes) and put each dtype in "
                "the layout." if all_float else " Keep each array's dtype in the layout, and read it back with it."
            )
            raise Wrong(f"array {index} went in as {sent.dtype} and came back as {dtype}.{hint}")
        if shape != sent.shape:
            hint = ""
            if shape == sent.shape[::-1]:
                hint = " That is its shape backwards: reshape to the shape as it was recorded."
            elif math.prod(shape) == sent.size:
                hint = " Same number of values, another shape: reshape each array to its own shape, as recorded."
            raise Wrong(f"array {index} went in with shape {sent.shape} and came back with shape {shape}.{hint}")
        if crc != describe(sent)[2]:
            fortran = (
                " It lies in memory in Fortran order, so its raw bytes (tobytes(order='A'), a memoryview) come in "
                "that order: copy its values instead, with ravel() or by assigning it to a view of its shape."
                if sent.flags.f_contiguous and not sent.flags.c_contiguous else ""
            )
            raise Wrong(
                f"array {index} came back with the right shape and dtype but different values.{fortran} Write and "
                "read the values in the same order on both sides (numpy's default, C order: the last index changes "
                "fastest), each array from its own offset."
            )


@exercise_check
def check_rawarray(module="exercise_rawarray", start_method=None):
    """Call the learner's ``flatten`` here and ``rebuild`` in a child, on two lists of 3-D arrays.

    What comes back is compared bit for bit with what went in.
    """
    learner = learner_module(module)
    flatten, rebuild = learner_function(learner, "flatten"), learner_function(learner, "rebuild")
    ctx = get_context(start_method)
    lists = check_lists()
    for arrays in lists:
        given = [a.copy(order="K") for a in arrays]  # the learner's code gets its own copies
        done, packed = call_with_deadline(flatten, (given, ctx), FLATTEN_S)
        if not done:
            raise Wrong(f"flatten() was still running after {FLATTEN_S:.0f} s.")
        if not (isinstance(packed, tuple) and len(packed) == 2):
            raise Wrong(f"flatten() should return a pair (raw, layout), not {type(packed).__name__}.")
        raw, layout = packed
        if not isinstance(raw, ctypes.Array):
            raise Wrong(
                f"flatten() returned a {type(raw).__name__} as raw: return the RawArray made with ctx.RawArray(...), "
                "which a child maps without a copy."
            )
        report = _rebuilt_in_child(ctx, rebuild, raw, layout)
        if report[0] == "raised":
            if report[1] == "NotImplementedError":
                raise NotImplementedError(
                    report[2] or "complete rebuild() in the exercise cell, run it, then this cell."
                )
            raise Wrong(f"in the child, rebuild() raised {report[1]}: {report[2]}")
        if report[0] == "not a list":
            raise Wrong(f"rebuild() returned a {report[1]}; it should return a list of numpy arrays.")
        _judge_rebuilt(arrays, report[1])
    shapes = ", ".join(str(a.shape) for a in lists[0])
    dtypes = len({a.dtype for batch in lists for a in batch})
    return (
        f"a child rebuilt {sum(len(a) for a in lists)} arrays of {dtypes} dtypes "
        f"({shapes}, ...) from one flat RawArray each time, bit for bit, with the right shapes and dtypes."
    )


# --- lesson 09's exercise: a fair timing of a hand-off ------------------------------------------------

REPEATS, WARMUP = 5, 1  # what the check asks for
COLD_S = 0.3  # the first recv() in each child of the check takes this much longer
TIMING_S = 10.0  # seconds the learner's timing may take
CHECK_BYTES = 256 * 1024


def _timed_by_learner(time_hand_offs, transport, ctx, cold):
    """Open a link of ``transport``, let the learner's function time hand-offs through it; return what it returned."""
    array = np.arange(CHECK_BYTES // 8, dtype=np.float64)
    before = set(multiprocessing.active_children())
    with transport.open(array.nbytes, ctx.get_start_method()) as link:
        if cold:
            link.receiver = ColdFirstRecv(link.receiver, COLD_S)
        try:
            done, result = call_with_deadline(time_hand_offs, (link, array, ctx, REPEATS, WARMUP), TIMING_S)
        finally:
            left = set(multiprocessing.active_children()) - before
            for child in left:
                child.terminate()
                child.join(timeout=5)
    if not done:
        raise Wrong(
            f"time_hand_offs was still running after {TIMING_S:.0f} s: start one child for all the hand-offs, "
            f"with count = warmup + repeats ({WARMUP + REPEATS}), and wait for each stamp with poll(timeout)."
        )
    if left:
        raise Wrong(
            f"{len(left)} child process(es) still ran after time_hand_offs returned: "
            "join the child (with a timeout)."
        )
    return result


def _judge_timing(result):
    """Raise Wrong unless ``result`` is {"seconds": REPEATS timings, "median_s": their median, "intact": ...}."""
    if not isinstance(result, dict) or not {"seconds", "median_s", "intact"} <= set(result):
        raise Wrong('time_hand_offs should return a dict with the keys "seconds", "median_s" and "intact".')
    seconds = result["seconds"]
    if not isinstance(seconds, (list, tuple)) or not all(isinstance(s, (int, float)) for s in seconds):
        raise Wrong(f'"seconds" should be a list of numbers, one per timed hand-off, not {seconds!r}.')
    if len(seconds) != REPEATS:
        few = " One timing says little on a busy machine: time each of the repeats." if len(seconds) == 1 else ""
        raise Wrong(f"asked for repeats={REPEATS} (after warmup={WARMUP}), time_hand_offs timed {len(seconds)}.{few}")
    if not all(0 < s < TIMING_S for s in seconds):
        raise Wrong(
            f"some timings are not a positive number of seconds below {TIMING_S:.0f}: {seconds}. Subtract the start "
            "from the stamp, and read both of the child's messages (the stamp, then the CRC-32) after every hand-off, "
            "so that they never fall out of step."
        )
    cold = [s for s in seconds if s >= 0.9 * COLD_S]
    if len(cold) == len(seconds):
        raise Wrong(
            f"every timed hand-off took at least {COLD_S} s ({min(seconds):.2f} s or more): each one included a "
            "child's first recv(), which in this check is slow on purpose, like a start-up. Start one child before "
            "any clock runs, and let it receive every hand-off."
        )
    if cold:
        raise Wrong(
            f"one timed hand-off took {max(seconds):.2f} s, the others about "
            f"{statistics.median([s for s in seconds if s not in cold]) * 1e3:.1f} ms: "
            f"the first, cold one was timed (in this check a child's first recv() takes {COLD_S} s longer). Make "
            "`warmup` hand-offs first, checked but not timed."
        )
    if not math.isclose(result["median_s"], statistics.median(seconds), rel_tol=1e-9, abs_tol=1e-12):
        raise Wrong(
            f'"median_s" is {result["median_s"]!r}, but the median of your timings is {statistics.median(seconds)!r}: '
            "use statistics.median (one slow hand-off moves a mean, not a median)."
        )


@exercise_check
def check_timing(module="exercise_timing", start_method=None):
    """Run the learner's ``time_hand_offs`` through a link with a cold first recv, then through a corrupting one."""
    from .. import arrays, bench

    time_hand_offs = learner_function(learner_module(module), "time_hand_offs")
    ctx = get_context(start_method)
    result = _timed_by_learner(time_hand_offs, arrays.TRANSPORTS["pipe_bytes"], ctx, cold=True)
    _judge_timing(result)
    if result["intact"] is not True:
        raise Wrong(f'every array arrived intact, but time_hand_offs said "intact": {result["intact"]!r}.')
    broken = _timed_by_learner(time_hand_offs, bench.corrupted("pipe_bytes"), ctx, cold=False)
    _judge_timing(broken)
    if broken["intact"] is not False:
        raise Wrong(
            'a receiver that flips one bit of every array was reported "intact": compare the CRC-32 the child sends '
            "after each stamp with zlib.crc32 of the array you sent."
        )
    return (
        f"{REPEATS} hand-offs timed after {WARMUP} untimed, one child for all of them, median "
        f"{result['median_s'] * 1e3:.2f} ms for {CHECK_BYTES // 1024} KiB; every array checked, and a corrupted "
        "one caught."
    )
