%%writefile exercise_shm.py
from multiprocessing.shared_memory import SharedMemory

import numpy as np


def double_in_place(name, shape, dtype):
    """Attach to the block `name`, double the array of `shape` and `dtype` at its start, in place; close, never unlink."""
    block = SharedMemory(name)
    array = np.frombuffer(block.buf, dtype=dtype)  # the mistake: every byte of the block, not just the array's
    array *= 2
    del array
    block.close()
