%%writefile exercise_rawarray.py
import math

import numpy as np


def flatten(arrays, ctx):
    # the seed's way: every value into one RawArray('d', sequence), the shapes on the side
    raw = ctx.RawArray("d", np.concatenate([array.ravel() for array in arrays]))
    return raw, [array.shape for array in arrays]


def rebuild(raw, layout):
    flat, out, start = np.frombuffer(raw), [], 0
    for shape in layout:
        out.append(flat[start:start + math.prod(shape)].reshape(shape))
        start += math.prod(shape)
    return out
