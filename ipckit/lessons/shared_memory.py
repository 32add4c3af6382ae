"""Lesson 07, shared memory: what its children run, and the check of its exercise.

Each worker is short code on ``multiprocessing.shared_memory`` (plus numpy)
that the lesson shows with ``ipckit.show`` right where a cell starts it in a
child process. The cells create the blocks, start and join the children, and
close and unlink the blocks themselves.
"""
import faulthandler
import importlib
import math
import os
import time
import traceback
from multiprocessing import shared_memory
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from ..context import get_context
from .checking import Wrong, exercise_check, learner_function, learner_module

SHM_DIR = "/dev/shm"  # where Linux keeps the blocks, as files


# --- 1. a block, a numpy array on it, a child that attaches by name -------------------------


def add_row_numbers(name, shape, dtype):
    """Attach to the block ``name``, add its number to each row of the 2-D array in it; close, never unlink."""
    block = SharedMemory(name)  # attach: no create=, no size=
    array = np.frombuffer(block.buf, dtype=dtype, count=math.prod(shape)).reshape(shape)
    array += np.arange(shape[0]).reshape(-1, 1)  # row 0 gets +0, row 1 gets +1, ...
    del array  # no view of block.buf may outlive close()
    block.close()  # this process is done with the block; its owner unlinks it


# --- 2. numpy views and close() --------------------------------------------------------------

VIEW_KINDS = ("np.ndarray(buffer=shm.buf)", "np.frombuffer(shm.buf)")


def close_under_a_view(how, conn):
    """Make a block and a numpy view of its buf (``how``), close the block, then read the view; send what happened."""
    faulthandler.disable()  # a crash is what this shows: no Python traceback dump on stderr
    block = SharedMemory(create=True, size=4096)
    block.unlink()  # the name goes now; the memory stays mapped until close(), so a crash leaves nothing behind
    if how == "np.ndarray(buffer=shm.buf)":
        view = np.ndarray((512,), np.float64, buffer=block.buf)  # holds no export of the buffer
    else:
        view = np.frombuffer(block.buf, np.float64)  # holds an export: close() must wait for it
    try:
        block.close()
    except BufferError as error:
        conn.send(f"close() raised BufferError: {error}")
        del view  # drop the view, and close() succeeds
        block.close()
        return
    conn.send(f"close() returned, then the view read {view.sum()}")  # unmapped memory: SIGSEGV before the send


# --- 3. SharedMemoryManager and ShareableList ------------------------------------------------


def sum_rows_into(name, shape, dtype, sums):
    """Attach to the block ``name`` and write the sum of each row of its 2-D array into the ShareableList ``sums``."""
    block = SharedMemory(name)
    array = np.frombuffer(block.buf, dtype=dtype, count=math.prod(shape)).reshape(shape)
    for row in range(shape[0]):
        sums[row] = float(array[row].sum())  # a ShareableList item is written in place, in shared memory
    del array
    block.close()
    sums.shm.close()  # a ShareableList is a block too: close it when done


# --- 4. the resource tracker --------------------------------------------------------------------


def attach_and_exit(name, how):
    """What another program does: attach to the block ``name`` one way (``how``), close it, and exit."""
    if how == "SharedMemory(name)":
        block = SharedMemory(name)  # registers the block with this program's own resource tracker
    elif how == "SharedMemory(name, track=False)":
        block = SharedMemory(name, track=False)  # Python 3.13 and later: not registered
    elif how == "shm.attach(name)":
        from ipckit import shm

        block = shm.attach(name)  # maps the block without registering it, on every version
    else:
        raise ValueError(f"unknown way to attach: {how!r}")
    block.close()


# --- 5. a write with no page behind it --------------------------------------------------------


def shrink_then_write(name):
    """Attach to the block ``name``, shrink its file to nothing under the mapping, write: SIGBUS, as on a full tmpfs."""
    faulthandler.disable()  # the crash is the lesson: no Python traceback dump on stderr
    block = SharedMemory(name)
    values = np.frombuffer(block.buf, np.uint8)
    os.truncate(f"/dev/shm/{name}", 0)  # no page behind the mapping now, as when tmpfs is full
    values[:] = 1  # SIGBUS: the kernel kills this process here; no exception, no traceback
    del values
    block.close()


# --- 8. streaming through a reused block: acknowledge after the read -----------------------


def write_frames(name, shape, conn, count, timeout):
    """Writer: fill the block with frame n (every byte n % 256), send n, wait until the reader says "free"."""
    block = SharedMemory(name)
    frame = np.frombuffer(block.buf, np.uint8, math.prod(shape)).reshape(shape)
    try:
        for n in range(count):
            frame[:] = n % 256  # overwrites whatever the block held
            conn.send(n)
            if not conn.poll(timeout):  # the acknowledgement: the reader is done with the block
                raise TimeoutError(f"no acknowledgement for frame {n} within {timeout} s")
            conn.recv()
    finally:
        del frame  # drop the view before close(), or close() raises BufferError
        block.close()


def read_frames(name, shape, conn, count, acknowledge, result, timeout):
    """Reader: for each frame, acknowledge ("before" or "after" reading it), hold it 1 ms, check every byte."""
    block = SharedMemory(name)
    frame = np.frombuffer(block.buf, np.uint8, math.prod(shape)).reshape(shape)
    whole = 0
    try:
        for _ in range(count):
            if not conn.poll(timeout):
                raise TimeoutError(f"no frame within {timeout} s")
            n = conn.recv()
            if acknowledge == "before":
                conn.send("free")  # too early: the writer starts the next frame in this block now
            time.sleep(0.001)  # the reader works on the frame
            whole += bool(np.all(frame == n % 256))
            if acknowledge == "after":
                conn.send("free")  # only now may the writer reuse the block
        result.send(whole)
    finally:
        del frame
        block.close()


def stream_frames(acknowledge, count=200, shape=(240, 320), start_method=None, timeout=30):
    """Run the writer and the reader in two children over one new block of ``shape`` (a uint8 camera frame); return
    how many frames were whole."""
    if acknowledge not in ("before", "after"):
        raise ValueError(f"acknowledge must be 'before' or 'after' the read, not {acknowledge!r}")
    ctx = get_context(start_method)
    block = SharedMemory(create=True, size=math.prod(shape))  # small: no risk of a full /dev/shm here
    writer_end, reader_end = ctx.Pipe()
    result_r, result_w = ctx.Pipe(duplex=False)
    writer = ctx.Process(target=write_frames, args=(block.name, shape, writer_end, count, timeout))
    reader = ctx.Process(target=read_frames,
                         args=(block.name, shape, reader_end, count, acknowledge, result_w, timeout))
    try:
        writer.start()
        reader.start()
        result_w.close()  # the reader has its own copy; if it dies, poll() sees the end of the pipe
        if not result_r.poll(timeout):
            raise TimeoutError(f"the reader gave no count within {timeout} s")
        return result_r.recv()
    finally:
        for child in (writer, reader):
            if child.pid is not None:
                child.join(timeout=2)
                if child.is_alive():
                    child.terminate()
                    child.join(timeout=2)
        for end in (writer_end, reader_end, result_r, result_w):
            end.close()
        block.close()
        block.unlink()


# --- 9. the zero-copy pattern --------------------------------------------------------------------


def fill_slot(pool, slot, shape, seed, conn):
    """Compute random numbers straight into ``slot`` of the SlotPool ``pool``; send back only where they are (a ref)."""
    ref = pool.ref(slot, shape, np.float64)
    with pool.view(ref) as out:
        np.random.default_rng(seed).random(out=out)  # numpy writes the result in place: no copy
    pool.close()  # this process's mapping; the pool's owner keeps the block
    conn.send(ref)


# --- the exercise: a child that doubles an array in a block it does not own ----------------

EXERCISE_MODULE = "exercise_shm"
# (shape, dtype) of each array the check puts in a block of its own
CASES = (((4, 3), "<f8"), ((2, 3, 5), "<i4"), ((7,), "<u2"))
TAIL = 64  # bytes after each array, in the same block: a block may be bigger than the array in it
TAIL_BYTE = 0xA5


_MADE = []  # every block the learner's code made or attached in the check's child, kept alive to be looked at


class _Watched(SharedMemory):
    """SharedMemory as the learner's code gets it in the check's child: notes what is done with each block."""

    def __init__(self, name=None, create=False, size=0, **kwargs):
        self.created, self.calls = bool(create), []  # before the attach, which may fail: __del__ still calls close()
        super().__init__(name, create, size, **kwargs)
        _MADE.append(self)

    def close(self):
        try:
            super().close()
        except BufferError:  # an array on buf is still alive: the block stays mapped
            self.calls.append("close refused")
            raise
        self.calls.append("close")  # only a close() that worked counts

    def unlink(self):
        self.calls.append("unlink")
        super().unlink()

    def __del__(self):
        try:
            super().close()
        except (BufferError, OSError):
            pass  # the learner's code kept a view: the check says so; the mapping goes when the child exits


def run_learner_double(module_name, blocks, report):
    """Child side of the check: call the learner's double_in_place(name, shape, dtype) on each block; report on it."""
    shared_memory.SharedMemory = _Watched  # for `shared_memory.SharedMemory(...)` in the learner's code
    module = importlib.import_module(module_name)
    if getattr(module, "SharedMemory", None) is SharedMemory:  # for `from ... import SharedMemory` (fork inherits it)
        module.SharedMemory = _Watched
    double_in_place = module.double_in_place
    found = []
    for name, shape, dtype in blocks:
        first = len(_MADE)
        try:
            double_in_place(name, shape, dtype)
            outcome = ("returned",)
        except Exception as error:
            frames = traceback.extract_tb(error.__traceback__)
            # the learner's line
            where = next((f for f in reversed(frames) if f.filename == module.__file__), frames[-1])
            outcome = ("raised", type(error).__name__, str(error), os.path.basename(where.filename), where.lineno)
        mine = _MADE[first:]
        found.append({
            "outcome": outcome,
            "attached": sum(1 for block in mine if not block.created),
            "created": sum(1 for block in mine if block.created),
            "closed": all("close" in block.calls for block in mine),
            "refused": any("close refused" in block.calls for block in mine),
            "unlinked": any("unlink" in block.calls for block in mine if not block.created),
        })
        for block in mine:  # tidy up after the learner, so a mistake leaks nothing
            if block.created and "unlink" not in block.calls:
                block.unlink()
            if "close" not in block.calls:
                try:
                    block.close()
                except BufferError:
                    pass  # a view is still alive; the mapping goes when this process exits
    report.send(found)


def _exists(name):
    return os.path.exists(os.path.join(SHM_DIR, name))


def _describe(values):
    flat = values.reshape(-1)
    return str(flat[:6].tolist())[:-1] + (", ...]" if flat.size > 6 else "]")


def _named(dtype):
    return f"{dtype!r} ({np.dtype(dtype).name})"


def _raised(case, outcome):
    _, kind, message, filename, line = outcome
    shape, dtype = case
    if kind == "NotImplementedError":
        raise NotImplementedError(message or "complete double_in_place() in the exercise cell, run it, then this cell.")
    hint = ""
    if kind == "BufferError":
        hint = " close() refuses while a numpy array made on block.buf is alive: `del` the array first, then close()."
    elif kind == "ValueError" and "smaller than requested" in message:
        hint = (" The array asked for more bytes than the block holds: make it with the dtype you are given "
                "(dtype=dtype) and count=math.prod(shape).")
    elif kind == "ValueError" and ("reshape" in message or "multiple of element size" in message):
        hint = (" The block can be bigger than the array (SharedMemory may round its size up): take only the "
                "array's items, np.frombuffer(block.buf, dtype=dtype, count=math.prod(shape)), then .reshape(shape).")
    elif kind in ("FileNotFoundError", "FileExistsError"):
        hint = " Attach to the block the parent made: SharedMemory(name), without create=True."
    raise Wrong(f"for an array of shape {shape} and dtype {_named(dtype)}, double_in_place raised {kind}: {message} "
                f"(in {filename}, line {line}).{hint}")


@exercise_check
def check_double_in_place(module=EXERCISE_MODULE, start_method=None, timeout=20.0):
    """Run the learner's ``double_in_place`` in a child on blocks the check owns; check values, tails, close, unlink."""
    learner_function(learner_module(module), "double_in_place")
    ctx = get_context(start_method)
    blocks, arrays, originals = [], [], []
    try:
        for number, (shape, dtype) in enumerate(CASES):
            original = (np.arange(math.prod(shape)) % 50 + 3 * number + 1).astype(dtype).reshape(shape)
            block = SharedMemory(create=True, size=original.nbytes + TAIL)  # the check owns every block
            blocks.append(block)
            array = np.frombuffer(block.buf, dtype=dtype, count=original.size).reshape(shape)
            array[:] = original
            block.buf[original.nbytes:] = bytes([TAIL_BYTE]) * TAIL
            arrays.append(array)
            originals.append(original)
        report, child_end = ctx.Pipe(duplex=False)
        named = [(block.name, shape, dtype) for block, (shape, dtype) in zip(blocks, CASES, strict=True)]
        child = ctx.Process(target=run_learner_double, args=(module, named, child_end))
        child.start()
        child_end.close()  # the child has its own: if it dies, poll() sees the end of the pipe
        try:
            if not report.poll(timeout):
                raise Wrong(f"double_in_place had not returned {timeout:.0f} s after the child started: "
                            "does it wait for something?")
            found = report.recv()
        except EOFError:
            child.join(timeout=5)
            raise Wrong(f"the child running double_in_place died with exit code {child.exitcode} before it "
                        "reported: a numpy array read after close() crashes the process") from None
        finally:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
            report.close()

        for case, result in zip(CASES, found, strict=True):
            if result["outcome"][0] == "raised":
                _raised(case, result["outcome"])
        if any(result["created"] for result in found):
            raise Wrong("double_in_place created a new block (SharedMemory(create=True, ...)): attach to the one "
                        "the parent made, by its name, with SharedMemory(name). (The check unlinked the new block.)")
        if not all(result["attached"] for result in found):
            raise Wrong("double_in_place did not attach with multiprocessing.shared_memory.SharedMemory(name): "
                        "that is the technique to practise here.")
        gone = [block.name for block in blocks if not _exists(block.name)]
        if gone or any(result["unlinked"] for result in found):
            raise Wrong("double_in_place unlinked the block: after the child, its name is gone from /dev/shm for "
                        "every process. The parent created it and owns it; a process that only attached calls "
                        "close(), never unlink().")
        for (shape, dtype), block, array, original in zip(CASES, blocks, arrays, originals, strict=True):
            tail = bytes(block.buf[original.nbytes:original.nbytes + TAIL])
            changed = sum(byte != TAIL_BYTE for byte in tail)
            if changed:
                raise Wrong(f"with an array of shape {shape} and dtype {_named(dtype)}, double_in_place changed "
                            f"{changed} of the {TAIL} bytes after the array: the block can be bigger than the array. "
                            "Take only its items: np.frombuffer(block.buf, dtype=dtype, count=math.prod(shape)).")
            if np.array_equal(array, original):
                raise Wrong(f"the array of shape {shape} and dtype {_named(dtype)} in the block did not change. "
                            "Double it in place (array *= 2): array = array * 2 makes a new array in the child's "
                            "own memory.")
            if not np.array_equal(array, original * 2):
                raise Wrong(f"for an array of shape {shape} and dtype {_named(dtype)}, starting {_describe(original)}, "
                            f"the block now holds {_describe(array)}, not {_describe(original * 2)}: read the block "
                            "with the dtype and shape you are given "
                            "(np.frombuffer(..., dtype=dtype, ...).reshape(shape)).")
        if not all(result["closed"] for result in found):
            if any(result["refused"] for result in found):
                raise Wrong("the values are right, but close() raised BufferError (a numpy array on block.buf was "
                            "still alive) and double_in_place went on: the child keeps the block mapped until it "
                            "exits. `del` every array and view made on block.buf, then close().")
            raise Wrong("the values are right, but double_in_place never called close(): the child keeps the block "
                        "mapped until it exits. Drop the array (del), then close().")
        shapes = ", ".join(f"{shape} {np.dtype(dtype).name}" for shape, dtype in CASES)
        return (f"the child doubled {len(CASES)} arrays in place ({shapes}), left the bytes after each alone, "
                "closed its mapping, and every block is still there for its owner to unlink.")
    finally:
        array = None  # no numpy view of a block may outlive its close()
        arrays.clear()
        for block in blocks:
            block.close()
            try:
                block.unlink()
            except FileNotFoundError:
                pass  # the learner's child unlinked it (and the check said so)
