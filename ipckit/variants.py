"""Variants of a transport for measuring: its reader copies what it gets, or it breaks the contract on purpose.

:func:`copied_out` compares an in-place transport like with like (its reader
copies each array, as the others hand over one it owns). :func:`corrupted`
and :func:`released_early` are broken on purpose, so that a check is seen to
fail: ``ipckit.bench`` must report ``ok=False`` for them, and
``ipckit.arrays.stream_check`` torn frames for the second. Each is a
:class:`~ipckit.transports.Transport` whose receiving end wraps the original's.
"""
import numpy as np

from .transports import Transport, get_transport
from .watch import DEFAULT_TIMEOUT


class _WrappedEnd:
    """A receiving end around another one."""

    def __init__(self, end):
        self._end = end

    def release(self):
        self._end.release()

    def close(self):
        self._end.close()


class _FlipOneBit(_WrappedEnd):
    """A receiving end that flips the lowest bit of the first byte of every array it returns."""

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        array = np.ascontiguousarray(self._end.recv(timeout, peer))
        if not array.flags.writeable:
            array = array.copy()
        if array.nbytes:
            array.reshape(-1).view(np.uint8)[0] ^= 1
        return array


class _ReleaseInsideRecv(_WrappedEnd):
    """A receiving end that gives each array's memory back inside recv(), before the caller has read it."""

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        array = self._end.recv(timeout, peer)
        self._end.release()  # too early: the sender may now write over the array the caller is about to read
        return array

    def release(self):
        pass


class _Wrapped(Transport):
    """``inner`` with its receiving end wrapped; ``hold_one`` ignores the receiver's ``hold`` (one array)."""

    def __init__(self, inner, suffix, what, end, hold_one=False):
        self.inner, self._end, self._hold_one = inner, end, hold_one
        self.name = f"{inner.name} ({suffix})"
        self.summary = f"{inner.summary}; {what}"
        self.start_methods = inner.start_methods
        self.send_before_start = inner.send_before_start
        self.in_place = inner.in_place
        self.practical_limit = inner.practical_limit

    def shm_bytes(self, nbytes, hold=1):
        return self.inner.shm_bytes(nbytes, 1 if self._hold_one else hold)

    def _open(self, capacity, ctx, hold=1):
        link = self.inner._open(capacity, ctx, 1 if self._hold_one else hold)
        link.receiver = self._end(link.receiver)
        return link


def corrupted(transport):
    """``transport`` with a receiver that damages every array (one bit): measured, it must report ``ok=False``."""
    return _Wrapped(get_transport(transport), "corrupted", "the receiver then flips one bit", _FlipOneBit)


class _CopyOut(_WrappedEnd):
    """A receiving end that returns a copy of every array: one the reader owns, as the copying transports give."""

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        return self._end.recv(timeout, peer).copy()


def copied_out(transport="shared_memory"):
    """``transport`` with a reader that copies each array it receives: an in-place transport compared like with like."""
    wrapped = _Wrapped(get_transport(transport), "copied out", "the reader copies each array", _CopyOut)
    wrapped.in_place = False  # what recv() returns is the reader's own
    return wrapped


def released_early(transport="shared_memory"):
    """``transport`` made safe only in lock-step: its receiver releases each array inside ``recv()``.

    For an in-place transport the sender may then write the next arrays over
    one the reader still holds: streamed, the check must report ``ok=False``;
    sent one at a time and waited for, it would pass.
    """
    return _Wrapped(get_transport(transport), "released early",
                    "the receiver releases each array inside recv(), before it is read", _ReleaseInsideRecv,
                    hold_one=True)
