"""The arrays ipckit moves, and the names multiprocessing gives their element types.

ipckit moves numpy arrays of numeric or bool dtypes, either byte order, any
shape: their bytes mean the same in every process. :func:`check_numeric_array`
refuses the rest in the caller, saying why (object arrays hold pointers into
one process; a masked array's mask would be lost). ``Array`` and ``RawArray``
name element types by typecode: :func:`typecode_for` picks the one that holds
a dtype exactly, and :func:`to_rawarray` copies an array into a new
``RawArray`` with one numpy copy. :func:`fingerprint` tells two arrays apart
bit for bit (a received array is checked against it).
"""
import zlib
from collections import namedtuple
from multiprocessing.sharedctypes import typecode_to_type

import numpy as np

from .context import get_context

NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex


def check_numeric_dtype(dtype):
    """Raise TypeError unless ``dtype`` is numeric or bool (the bytes mean the same in every process)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "O":
        raise TypeError(
            "object arrays cannot travel as raw bytes: each element is a pointer to a Python object in "
            "this process, meaningless in another one. Convert to a numeric dtype (array.astype(float)) "
            "or send the objects themselves with pipe_pickle or a Queue."
        )
    if dtype.kind not in NUMERIC_KINDS:
        raise TypeError(
            f"dtype {dtype} (kind {dtype.kind!r}) is not supported: ipckit moves numeric and bool arrays "
            "(int, uint, float, complex, bool)."
        )
    return dtype


def check_numeric_array(array):
    """Return ``array`` if it is a numpy array of a numeric or bool dtype; raise TypeError otherwise.

    Masked arrays are refused: moved as raw bytes, the mask would be lost.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a numpy.ndarray, not {type(array).__name__}; wrap it with numpy.asarray(...)")
    if isinstance(array, np.ma.MaskedArray):
        raise TypeError(
            "masked arrays are not supported: the values would travel without their mask. Send "
            "array.filled(fill_value) if a fill value will do, or the values and the mask as two arrays "
            "(np.ma.getdata(array), np.ma.getmaskarray(array)) and rebuild it with np.ma.array(data, mask=mask)."
        )
    check_numeric_dtype(array.dtype)
    return array


# The typecodes multiprocessing.Array/RawArray accept for numbers, and the numpy dtype each holds.
# 'q'/'Q' come before 'l'/'L': a C long is 4 bytes on Windows, a long long is 8 everywhere.
TYPECODES = {code: np.dtype(typecode_to_type[code]) for code in "bBhHiIqQlLfd"}


def _typecode_holding(dtype):
    return next((code for code, held in TYPECODES.items() if held == dtype), None)


def ctype_for(dtype):
    """The ctypes type holding one element of ``dtype`` exactly, or None (float16, complex, bool)."""
    code = _typecode_holding(dtype)
    return typecode_to_type[code] if code else None


def typecode_for(dtype, typecode=None):
    """Return the multiprocessing typecode that holds ``dtype`` exactly, or check the one given.

    Raises TypeError when no typecode can hold the dtype (float16, complex,
    bool: ``Array``/``RawArray`` know only ``b B h H i I l L q Q f d``) or when
    ``typecode`` would round or refuse the values (``'f'`` for float64,
    ``'i'`` for floats), and ValueError for a typecode that does not exist.
    """
    dtype = check_numeric_dtype(dtype)
    if typecode is None:
        code = _typecode_holding(dtype)
        if code:
            return code
        raise TypeError(
            f"no multiprocessing typecode holds {dtype}: Array and RawArray know only "
            f"{' '.join(TYPECODES)} ({', '.join(sorted({str(d) for d in TYPECODES.values()}))}). "
            "Use pack() or the shared_memory transport, which keep any dtype, or move the raw bytes "
            "(typecode 'B' and array.view(numpy.uint8))."
        )
    if typecode not in TYPECODES:
        raise ValueError(f"unknown typecode {typecode!r}; numeric typecodes are {', '.join(TYPECODES)}")
    if TYPECODES[typecode] != dtype:
        good = _typecode_holding(dtype)
        fix = f"use {good!r} for {dtype}" if good else f"no typecode holds {dtype}; use pack() or shared_memory"
        raise TypeError(
            f"typecode {typecode!r} holds {TYPECODES[typecode]} ({TYPECODES[typecode].itemsize} bytes each), "
            f"not {dtype}: the values would be rounded, wrapped or refused; {fix}"
        )
    return typecode


def to_rawarray(array, typecode=None, by_sequence=False, start_method=None):
    """Copy ``array`` (C order) into a new ``RawArray`` of the matching typecode; return it.

    ``by_sequence=True`` does it the seed's way, ``RawArray(typecode, sequence)``,
    which converts element by element in Python; the default allocates
    ``RawArray(typecode, n)`` and fills it with one numpy copy. Create it before
    starting the children that need it: a RawArray travels only at process creation.
    """
    array = check_numeric_array(array)
    code = typecode_for(array.dtype, typecode)
    ctx = get_context(start_method)
    flat = array.reshape(-1, order="C")
    if by_sequence:
        return ctx.RawArray(code, flat)
    raw = ctx.RawArray(code, flat.size)
    np.frombuffer(raw, dtype=array.dtype)[:] = flat
    return raw


Fingerprint = namedtuple("Fingerprint", "shape dtype crc32")


def fingerprint(array):
    """(shape, dtype, CRC-32 of the bytes in C order): equal fingerprints mean equal arrays, bit for bit."""
    array = check_numeric_array(array)
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return Fingerprint(tuple(array.shape), str(array.dtype), zlib.crc32(data))
