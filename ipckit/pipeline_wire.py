"""What crosses the ordered pipeline's pipes: frames, and a reader that takes them whole.

A frame is a fixed header (:data:`HEADER`: body length, kind, flags, count,
slot, seq, two times) and a body of bytes. The kinds and flags are named
below. An item's body is its pickle, made once in the producer and unpickled
once in a consumer: main reads only headers and forwards the bytes, so a
misbehaving item costs a consumer, never main, and main's work per item does
not grow with the item.
"""
import os
import struct
from typing import NamedTuple

MAX_CHUNKSIZE = 65_535  # items in one batch: the header's count field

HEADER = struct.Struct("<IBBHiqdd")
"""body length, kind, flags, count (items in it), slot (-1: none), seq (its first item's number), t1, t2.

The times are the producer's ``produced`` / ``sent`` on items and a consumer's
``started`` / ``finished`` on results (0.0 unless the timeline is on).
"""

# kinds
ITEM = 1  # producer -> main -> consumer: one item; body: its pickle
BATCH = 2  # producer -> main -> consumer: ``count`` items; body: the pickled list of their pickles
RESULT = 3  # consumer -> main -> caller: body: the pickled result, or the list of a batch's results
ERROR = 4  # child -> main: body: the pickled error record (ipckit.run.error_record)
DONE = 5  # producer -> main: the end of the stream; seq: how many items there were
WANT_POOL = 6  # producer -> main: the first big array; seq: its size in bytes
WANT_SLOT = 7  # producer -> main: it waits for a free slot
POOL = 8  # main -> producer, consumer: body: the pickled SlotPool (None: no room in /dev/shm)
SLOT = 9  # main -> producer: a free slot for a big item
STOP = 10  # main -> consumer: leave

# flags
BIG_PICKLED = 1  # an item: a big array that travels pickled (bigger than a slot, or no pool)
WAITED = 2  # an item: the producer waited for a free slot before it could send it
IN_SLOT = 4  # a result: an ArrayRef to the result, which lies in the item's slot
LIST = 8  # a result: the list of a batch's results


class Frame(NamedTuple):
    """One frame as a reader returns it: the header's fields by name, its body, and the frame whole."""

    kind: int
    flags: int
    count: int
    slot: int
    seq: int
    t1: float
    t2: float
    body: memoryview  # a view of the body
    raw: memoryview  # the whole frame, header included, for main to forward as it came


def frame(kind, seq=0, body=b"", flags=0, count=1, slot=-1, t1=0.0, t2=0.0):
    return HEADER.pack(len(body), kind, flags, count, slot, seq, t1, t2) + body


class Reader:
    """Whole frames from one end of a pipe, a read at a time.

    :meth:`read` takes whatever has arrived (often several frames) into a
    buffer that is reused (a fresh 256 KiB bytes object per read would cost an
    ``mmap`` and ``munmap`` each time), and returns the whole frames as
    :class:`Frame` s. A part of a frame waits for the next read; the buffer grows to fit a
    big frame and shrinks again once it is empty.
    """

    def __init__(self, fd, size=1 << 16):
        self.fd = fd
        self.size = size
        self._use(bytearray(size))
        self.start = self.end = 0  # the bytes not yet returned: buffer[start:end]
        self.needed = 0  # the size of the partial frame at start, once its header is in

    def _use(self, buffer):
        self.buffer = buffer
        self.view = memoryview(buffer)  # kept: making one per read costs more than the read
        self.all_of_it = [self.view]

    def read(self):
        """Read once (it blocks on a blocking pipe with nothing in it); EOFError at the end."""
        if self.start == self.end:  # the usual case: everything read so far has been returned
            self.start = self.end = 0
            if self.needed > len(self.buffer) or (len(self.buffer) > 4 * self.size and self.needed <= self.size):
                self.view.release()
                self._use(bytearray(max(self.needed, self.size)))  # fit a big frame, or give its memory back
            got = os.readv(self.fd, self.all_of_it)
        else:
            self._make_room()
            got = os.readv(self.fd, [self.view[self.end:]])
        if not got:
            raise EOFError
        self.end += got
        return self._frames()

    def _make_room(self):
        """Room to read into after ``end``, and for the whole partial frame from ``start``."""
        pending = self.end - self.start
        wanted = max(self.needed, pending + 1)
        if self.end < len(self.buffer) and self.start + wanted <= len(self.buffer):
            return
        keep = bytes(self.view[self.start:self.end])
        if wanted <= len(self.buffer):
            self.buffer[:pending] = keep  # move the partial frame to the front
        else:
            self.view.release()
            self._use(bytearray(max(wanted, 2 * len(self.buffer))))
            self.buffer[:pending] = keep
        self.start, self.end = 0, pending

    def _frames(self):
        """The whole frames in the buffer (one copy of them all); the part of a frame stays."""
        size, start, end = HEADER.size, self.start, self.end
        if end - start < max(size, self.needed):  # not even one whole frame yet: copy nothing
            return []
        chunk = memoryview(self.view[start:end].tobytes())
        frames, at, last = [], 0, end - start
        unpack = HEADER.unpack_from
        while last - at >= size:
            length, kind, flags, count, slot, seq, t1, t2 = unpack(chunk, at)
            following = at + size + length
            if following > last:
                self.needed = size + length
                break
            frames.append(Frame(kind, flags, count, slot, seq, t1, t2, chunk[at + size:following], chunk[at:following]))
            at = following
        else:
            self.needed = 0
        self.start = start + at
        return frames
