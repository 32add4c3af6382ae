"""Lesson 07, shared memory: why the reader's acknowledgement must come after the read.

A writer child streams frames through one shared block; a reader child is told
each frame's number through a pipe, looks at the frame for a millisecond (as a
reader at work would) and counts the frames that were still whole. The only
difference between the two runs is *when* the reader says "the block is free".
"""
import time
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from ..context import get_context

FRAME = (240, 320)  # one camera frame, uint8
FRAME_BYTES = FRAME[0] * FRAME[1]


def write_frames(name, conn, count, timeout):
    """Writer: fill the block with frame n (every byte n % 256), send n, wait until the reader says "free"."""
    block = SharedMemory(name)
    frame = np.frombuffer(block.buf, np.uint8, FRAME_BYTES).reshape(FRAME)
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


def read_frames(name, conn, count, acknowledge, result, timeout):
    """Reader: for each frame, acknowledge ("before" or "after" reading it), hold it 1 ms, check every byte."""
    block = SharedMemory(name)
    frame = np.frombuffer(block.buf, np.uint8, FRAME_BYTES).reshape(FRAME)
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


def stream_frames(acknowledge, count=200, start_method=None, timeout=30):
    """Run the writer and the reader in two children over one new block; return how many frames were whole."""
    if acknowledge not in ("before", "after"):
        raise ValueError(f"acknowledge must be 'before' or 'after' the read, not {acknowledge!r}")
    ctx = get_context(start_method)
    block = SharedMemory(create=True, size=FRAME_BYTES)  # small: no risk of a full /dev/shm here
    writer_end, reader_end = ctx.Pipe()
    result_r, result_w = ctx.Pipe(duplex=False)
    writer = ctx.Process(target=write_frames, args=(block.name, writer_end, count, timeout))
    reader = ctx.Process(target=read_frames, args=(block.name, reader_end, count, acknowledge, result_w, timeout))
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
