"""Many arrays of mixed shapes and dtypes in one flat buffer, and back: ``pack`` / ``unpack``.

A ``RawArray`` (or any shared buffer) travels to a child only when the child
is created, and holds bytes, not arrays. :func:`pack` copies a list of arrays
into one such buffer, each with one numpy copy at an offset rounded up to 64
bytes, and returns the :class:`Layout` (offset, shape and dtype of each) that
:func:`unpack` needs to rebuild them, as copies or as views in place. Never a
guessed shape, never element by element.
"""
from collections import namedtuple

import numpy as np

from . import shm
from .context import get_context
from .dtypes import check_numeric_array

PackedEntry = namedtuple("PackedEntry", "offset shape dtype")
Layout = namedtuple("Layout", "entries nbytes")
Layout.__doc__ = "Where each packed array lives: a tuple of PackedEntry(offset, shape, dtype), and the total bytes."


def layout_of(arrays):
    """The :class:`Layout` that :func:`pack` would use: offsets rounded up to 64 bytes, in list order."""
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, (list, tuple)):
        raise TypeError(
            f"pack takes a list (or tuple) of numpy arrays, not {type(arrays).__name__}; for one array use [array]"
        )
    entries, offset = [], 0
    for index, array in enumerate(arrays):
        try:
            check_numeric_array(array)
        except TypeError as exc:
            raise TypeError(f"item {index}: {exc}") from None
        entries.append(PackedEntry(offset, tuple(array.shape), array.dtype.str))
        offset += -(-array.nbytes // shm.ALIGN) * shm.ALIGN
    return Layout(tuple(entries), offset)


def pack(arrays, into=None, start_method=None):
    """Copy a list of arrays (mixed shapes and dtypes) into one flat shared buffer; return ``(buffer, layout)``.

    ``into`` is any writable buffer of at least ``layout.nbytes`` (a RawArray, a
    bytearray, an mmap...); by default a new ``RawArray('B', nbytes)``. Each
    array is placed with one numpy copy, never element by element.
    """
    layout = layout_of(arrays)
    if into is None:
        into = get_context(start_method).RawArray("B", max(layout.nbytes, 1))
    else:
        view = memoryview(into)
        if view.readonly or view.nbytes < layout.nbytes:
            raise ValueError(f"into must be a writable buffer of at least {layout.nbytes:,} bytes, not {view.nbytes:,}")
        view.release()
    for entry, array in zip(layout.entries, arrays, strict=True):
        shm.array_in(into, entry.shape, entry.dtype, entry.offset)[...] = array
    return into, layout


def unpack(buffer, layout, copy=True):
    """The arrays :func:`pack` put in ``buffer``: copies by default, views sharing its memory with ``copy=False``."""
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be the Layout returned by pack() or layout_of(), not {type(layout).__name__}")
    arrays = [shm.array_in(buffer, e.shape, e.dtype, e.offset) for e in layout.entries]
    return [a.copy() for a in arrays] if copy else arrays
