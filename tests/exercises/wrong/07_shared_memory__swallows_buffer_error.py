%%writefile exercise_shm.py
import math
from multiprocessing.shared_memory import SharedMemory

import numpy as np


def double_in_place(name, shape, dtype):
    """Attach to the block `name`, double the array of `shape` and `dtype` at its start, in place; close, never unlink."""
    block = SharedMemory(name)
    array = np.frombuffer(block.buf, dtype=dtype, count=math.prod(shape)).reshape(shape)
    array *= 2
    try:
        block.close()
    except BufferError:
        pass  # the mistake: `array` still holds the buffer, so close() refused and the block stays mapped
