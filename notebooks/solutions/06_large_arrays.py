%%writefile exercise_rawarray.py
import math

import numpy as np


def place(raw, start, shape, dtype):
    """The array of `shape` and `dtype` that starts at byte `start` of `raw`: a view, no copy."""
    return np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=start).reshape(shape)


def flatten(arrays, ctx):
    """Copy a list of arrays (any shapes, any dtypes) into one new RawArray; return (raw, layout)."""
    layout, start = [], 0
    for array in arrays:
        layout.append((start, array.shape, array.dtype.str))  # where it starts, its shape, its dtype
        start += array.nbytes
    raw = ctx.RawArray("B", max(start, 1))  # bytes: one typecode holds every dtype
    for (offset, shape, dtype), array in zip(layout, arrays):
        place(raw, offset, shape, dtype)[...] = array  # one numpy copy; the view is in C order, whatever `array` is
    return raw, layout


def rebuild(raw, layout):
    """In the child: the list of arrays flatten() put in `raw`, each with its own shape and dtype."""
    return [place(raw, start, shape, dtype) for start, shape, dtype in layout]
