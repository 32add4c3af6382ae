"""Shared memory with an owner: create, attach, read, write, close, unlink, and reusable slots.

The rules this module enforces, so a lesson or a pipeline cannot get them wrong:

* **One owner.** :func:`create` makes a block and returns a :class:`Block` that
  *owns* it: closing the owner also unlinks the name from ``/dev/shm``. The
  owner is the process that created it (checked by PID, so a forked child that
  inherits the object only closes its own mapping). The owner registers the
  block with multiprocessing's resource tracker, which unlinks it, with a
  "leaked shared_memory objects" warning, if the owner dies without cleaning up.
* **Readers attach, never unlink.** :func:`attach` maps a block by name and does
  *not* register it with the resource tracker. Python 3.11 and 3.12 register
  every ``SharedMemory(name)``, attach included, so a reader whose process has
  its own tracker gets the block unlinked under everyone's feet when it exits,
  with a "leaked" warning (cpython #82300); 3.13 added
  ``SharedMemory(name, track=False)``. Here a reader maps the block itself
  (``shm_open`` + ``mmap``, the same calls ``SharedMemory`` makes, minus the
  registration), which behaves like ``track=False`` on every version.
* **Views cannot trip close().** ``SharedMemory.close()`` raises ``BufferError``
  while a numpy view of ``.buf`` is alive. A :class:`Block` hands out copies
  (:meth:`Block.read`) or views inside a ``with`` (:meth:`Block.view`), and its
  :meth:`Block.close` never raises: if a view outlived the ``with``, the
  mapping stays valid until that view is garbage collected, and the owner has
  still unlinked the name.
* **No SIGBUS.** ``SharedMemory(create=True)`` only sets the file's size
  (``ftruncate``): tmpfs finds the pages on first write, and if ``/dev/shm`` is
  full then, the writer dies of SIGBUS instead of raising (cpython #114390;
  Docker gives ``/dev/shm`` 64 MB). Such a block does not even count as used,
  so a free-space check alone lets two of them through. :func:`create`
  reserves every page at once with ``os.posix_fallocate``: a block that does
  not fit raises :class:`NotEnoughSharedMemory` (naming the size asked for,
  the free space and the fix) when it is made, and a block that was made can
  always be written.

:class:`SlotPool` is the allocate-once, write-many form: one block cut into
``slots`` slots of ``slot_bytes`` each. New pages cost a page fault each on
first touch; reused slots move at memcpy speed (``ipckit.bench.fresh_vs_reused``
measures both). The owner (main process) keeps the free list; any other
process gets the pool as an argument (it pickles as its name and attaches on
first use), writes an array into the slot index it was given, and passes back
only an :class:`ArrayRef` (name, offset, shape, dtype, slot): the zero-copy
pattern.
"""
import contextlib
import errno
import math
import mmap
import os
import weakref
from collections import namedtuple
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from .checks import check_count
from .dtypes import check_numeric_array, check_numeric_dtype

try:  # the C module behind SharedMemory on POSIX; absent on Windows
    import _posixshmem
except ImportError:  # pragma: no cover - ipckit targets Linux and macOS
    _posixshmem = None

SHM_DIR = "/dev/shm"
PAGE = mmap.PAGESIZE
ALIGN = 64  # offsets of arrays inside a block: a cache line, enough for every numpy dtype


class NotEnoughSharedMemory(MemoryError):
    """A block would not fit in the free space of /dev/shm (writing to it would raise SIGBUS)."""


ArrayRef = namedtuple("ArrayRef", "name offset shape dtype slot", defaults=(None,))
ArrayRef.__doc__ = """Where an array lives in shared memory: block name, byte offset, shape, dtype string, slot.

Small and picklable: this, not the array, is what crosses a pipe.
"""


# --- free space -------------------------------------------------------------------------


def free_bytes(path=SHM_DIR):
    """Bytes free for an unprivileged writer in ``path`` (``os.statvfs``); None if there is no such directory."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def _does_not_fit(nbytes, free, what="a shared memory block"):
    return (
        f"{what} of {nbytes:,} bytes does not fit in {SHM_DIR}: only {free:,} bytes are free. "
        "Writing to it would kill the process with SIGBUS rather than raise (cpython #114390). "
        f"Use smaller arrays or fewer blocks, free space in {SHM_DIR}, or give a container more "
        "(docker run --shm-size=1g)."
    )


def space_problem(nbytes, what="a shared memory block"):
    """Return why ``what`` (a block) of ``nbytes`` would not fit in /dev/shm now, or None if it fits."""
    free = free_bytes()
    if free is None or nbytes <= free:
        return None
    return _does_not_fit(nbytes, free, what)


# --- blocks -----------------------------------------------------------------------------


def array_in(buffer, shape, dtype, offset=0):
    """A numpy array of ``shape``/``dtype`` over ``buffer`` at byte ``offset``, holding a buffer export.

    Always ``np.frombuffer``, never ``np.ndarray(shape, dtype, buffer=...)``: the
    latter keeps no export on an mmap (or on ``SharedMemory.buf``), so the
    mapping can be closed under the array, and touching the array afterwards
    crashes the process with SIGSEGV (numpy #23305, #22190). With an export,
    closing the mapping raises BufferError instead, or, in :class:`Block`,
    waits for the array to go.
    """
    dtype = np.dtype(dtype)
    count = math.prod(shape) if isinstance(shape, (tuple, list)) else int(shape)  # math.prod: 100x np.prod's speed
    return np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)



_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux: map every page now, not one page fault at a time


def _map_by_name(name, reserve=False, populate=False):
    """Map the block ``name`` read-write without telling the resource tracker (like track=False).

    ``reserve=True`` (the creator) first allocates every page of the file with
    ``posix_fallocate``, so a full /dev/shm is an error now rather than SIGBUS
    later; ``populate=True`` also maps them all at once (no page faults on the
    first writes, at the cost of counting the whole block in this process's RSS).
    """
    if _posixshmem is None:  # pragma: no cover
        raise OSError("ipckit.shm needs POSIX shared memory (Linux or macOS)")
    fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise ValueError(f"shared memory block {name!r} has size 0 (truncated, or not made by ipckit.shm)")
        if reserve and hasattr(os, "posix_fallocate"):  # not on macOS, whose shm_open memory is not tmpfs
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise NotEnoughSharedMemory(_does_not_fit(size, free_bytes() or 0)) from None
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a filesystem that cannot reserve
                    raise
        flags = mmap.MAP_SHARED | (_POPULATE if populate else 0)
        return mmap.mmap(fd, size, flags=flags), size
    finally:
        os.close(fd)  # the mapping keeps the memory; the descriptor is no longer needed


def _unlink_if_owner(owner_pid, shared):
    """Finalizer: unlink only in the process that created the block (never in a forked child)."""
    if os.getpid() == owner_pid:
        try:
            shared.unlink()  # removes the name and unregisters it from the resource tracker
        except FileNotFoundError:
            pass


class Block:
    """A mapped shared memory block. Make one with :func:`create` (owner) or :func:`attach` (reader)."""

    def __init__(self, _name, _size, _mapping, _shared=None):
        self.name = _name
        self.size = _size  # usable bytes (the file may be rounded up to whole pages)
        self._mapping = _mapping
        self._shared = _shared  # the SharedMemory object that created the block, owner only
        self._owner_pid = os.getpid() if _shared is not None else None
        self._unlinker = (
            weakref.finalize(self, _unlink_if_owner, self._owner_pid, _shared) if _shared is not None else None
        )

    # ownership
    @property
    def owner(self):
        """True in the process that created the block: its close() also unlinks the name."""
        return self._owner_pid is not None and self._owner_pid == os.getpid()

    @property
    def closed(self):
        return self._mapping is None

    def __repr__(self):
        state = "closed" if self.closed else ("owner" if self.owner else "attached")
        return f"<Block {self.size:,} bytes, {state}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
        # Another process gets a reader, never a second owner.
        return (attach, (self.name,))

    def close(self):
        """Unmap the block in this process; the owner also unlinks it. Safe to call twice; never raises BufferError."""
        fd, self._read_fd = getattr(self, "_read_fd", None), None
        if fd is not None:
            os.close(fd)
        mapping, self._mapping = self._mapping, None
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:
                pass  # a numpy view outlived its `with`: the mapping is freed when that view is
        if self.owner:
            self.unlink()

    def unlink(self):
        """Remove the name from /dev/shm (owner only). Mapped views stay valid until closed."""
        if not self.owner:
            raise PermissionError(
                f"this process attached to {self.name!r} but did not create it: only the owner unlinks a block "
                "(a reader that unlinks pulls it away from everyone else)"
            )
        if self._unlinker is not None:
            self._unlinker()  # runs _unlink_if_owner once, then never again

    # arrays in the block
    def _check_open(self):
        if self._mapping is None:
            raise ValueError(f"block {self.name!r} is closed in this process")

    def ref(self, shape, dtype, offset=0, slot=None):
        """Describe an array of ``shape`` and ``dtype`` at byte ``offset``; check that it fits."""
        dtype = np.dtype(dtype)
        check_numeric_dtype(dtype)
        shape = tuple(int(n) for n in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        nbytes = math.prod(shape) * dtype.itemsize
        if offset < 0 or offset + nbytes > self.size:
            raise ValueError(
                f"an array of {nbytes:,} bytes at offset {offset:,} does not fit in block {self.name!r} "
                f"of {self.size:,} bytes"
            )
        return ArrayRef(self.name, int(offset), shape, dtype.str, slot)

    def _ndarray(self, ref):
        self._check_open()
        if ref.name != self.name:
            raise ValueError(f"this ArrayRef points into block {ref.name!r}, not {self.name!r}")
        return array_in(self._mapping, ref.shape, ref.dtype, ref.offset)

    def write(self, array, offset=0, slot=None):
        """Copy ``array`` (any layout) into the block at ``offset``; return its :class:`ArrayRef`."""
        array = check_numeric_array(array)
        ref = self.ref(array.shape, array.dtype, offset, slot)
        target = self._ndarray(ref)
        np.copyto(target, array, casting="no")
        del target
        return ref

    def read(self, ref):
        """Return a copy of the array ``ref`` describes: it stays valid after the block is closed."""
        view = self._ndarray(ref)
        try:
            return view.copy()
        finally:
            del view

    def copy_out(self, ref):
        """Like :meth:`read`, but with ``pread`` on the block's file instead of through the mapping.

        The copy is the same; the difference is that this process never touches
        the block's pages, so its resident memory does not grow by the block's
        size (the main process of a pipeline reads every slot, once).
        """
        self._check_open()
        if ref.name != self.name:
            raise ValueError(f"this ArrayRef points into block {ref.name!r}, not {self.name!r}")
        if not hasattr(os, "preadv") or _posixshmem is None:  # pragma: no cover - not Linux
            return self.read(ref)
        if getattr(self, "_read_fd", None) is None:
            self._read_fd = _posixshmem.shm_open("/" + self.name, os.O_RDONLY, mode=0o600)
        out = np.empty(ref.shape, dtype=np.dtype(ref.dtype))
        target, offset = memoryview(out.reshape(-1).view(np.uint8)), ref.offset  # any dtype, as bytes
        while len(target):
            done = os.preadv(self._read_fd, [target], offset)
            if done <= 0:
                raise OSError(f"short read from shared memory block {self.name!r}")
            target, offset = target[done:], offset + done
        return out

    @contextlib.contextmanager
    def view(self, ref):
        """Yield a writable numpy view of ``ref`` in place (no copy); use it only inside the ``with``."""
        view = self._ndarray(ref)
        try:
            yield view
        finally:
            del view


def create(nbytes):
    """Create a new block of ``nbytes``, its pages reserved; this process owns it.

    Raises :class:`NotEnoughSharedMemory` when /dev/shm has no room for it
    (checked first with ``statvfs``, then for real by ``posix_fallocate``).
    Empty arrays need no bytes, but a block cannot be empty: 0 is rounded up to 1.
    """
    nbytes = check_count(nbytes, "nbytes", minimum=0)
    problem = space_problem(nbytes)
    if problem:
        raise NotEnoughSharedMemory(problem)
    shared = SharedMemory(create=True, size=max(nbytes, 1))  # registers with the resource tracker
    try:
        mapping, _ = _map_by_name(shared.name, reserve=True)
    except BaseException:
        shared.close()
        shared.unlink()
        raise
    shared.close()  # its own mapping is not needed: Block keeps its own, so views never block close()
    return Block(shared.name, max(nbytes, 1), mapping, _shared=shared)


def attach(name, populate=False):
    """Attach to the block ``name`` made by another process, without registering it with the resource tracker.

    ``populate=True`` maps every page now (Linux), for a writer that will fill
    the block again and again: no page fault on its first writes.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be the block's name (a non-empty str, Block.name), not {name!r}")
    mapping, size = _map_by_name(name, populate=populate)
    return Block(name, size, mapping)


def read_ref(ref):
    """Attach to ``ref.name``, copy the array out, detach. A worker for children (and a one-liner for parents)."""
    with attach(ref.name) as block:
        return block.read(ref)


def write_into_ref(ref, array):
    """Attach to ``ref.name`` and copy ``array`` (same shape and dtype as ``ref``) into place."""
    array = check_numeric_array(array)
    if array.shape != tuple(ref.shape) or array.dtype != np.dtype(ref.dtype):
        raise ValueError(f"array {array.shape} {array.dtype} does not match the ref {ref.shape} {ref.dtype}")
    with attach(ref.name) as block, block.view(ref) as target:
        np.copyto(target, array, casting="no")


# --- a pool of reusable slots ------------------------------------------------------------


class _Loan:
    """Owns a lent slot's array; numpy views made from it keep it alive (it is their ``base``)."""

    def __init__(self, array):
        self._array = array  # holds the mapping's buffer export, so the memory stays valid
        self.__array_interface__ = array.__array_interface__


class SlotPool:
    """``slots`` reusable slots of ``slot_bytes`` each, in one shared block.

    Owner (the process that made it): ``acquire()`` a free slot index,
    ``write(slot, array)`` -> :class:`ArrayRef`, hand the ref to a reader,
    ``release(slot)`` when the reader is done; ``close()`` unlinks everything.
    Other processes receive the pool as an argument (it pickles as its name and
    size, and attaches on first use), then ``write``/``read``/``view`` the slot
    indexes they are given; they never track free slots and never unlink.
    """

    def __init__(self, slots, slot_bytes):
        self.slots = check_count(slots, "slots")
        self.slot_bytes = check_count(slot_bytes, "slot_bytes")
        self.stride = -(-self.slot_bytes // PAGE) * PAGE  # each slot starts on its own page
        self._block = create(self.slots * self.stride)
        self.name = self._block.name
        self._free = list(range(self.slots))

    @classmethod
    def _attached(cls, name, slots, slot_bytes, stride):
        pool = cls.__new__(cls)
        pool.name, pool.slots, pool.slot_bytes, pool.stride = name, slots, slot_bytes, stride
        pool._block = None  # attach lazily, in the process that uses it
        pool._free = None
        return pool

    def __reduce__(self):
        return (SlotPool._attached, (self.name, self.slots, self.slot_bytes, self.stride))

    def __repr__(self):
        role = "owner" if self.owner else "attached"
        return f"<SlotPool {self.slots} slots x {self.slot_bytes:,} bytes, {role}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def owner(self):
        return self._block is not None and self._block.owner

    def _open_block(self):
        if self._block is None:
            self._block = attach(self.name)
        elif self._block.closed:
            raise ValueError("this SlotPool is closed")
        return self._block

    # the owner's free list
    def _require_owner(self, what):
        if not self.owner:
            raise PermissionError(
                f"only the process that made the pool can {what}; others use the slots they are given"
            )

    @property
    def free_slots(self):
        """How many slots are free (owner only)."""
        self._require_owner("count free slots")
        return len(self._free)

    def acquire(self):
        """Take a free slot index (owner only); raise LookupError if all are in use."""
        self._require_owner("acquire slots")
        self._open_block()
        if not self._free:
            raise LookupError(f"all {self.slots} slots are in use: release one (after its reader is done) first")
        return self._free.pop(0)

    def release(self, slot):
        """Give a slot back (owner only); ``slot`` is an index or an :class:`ArrayRef`."""
        self._require_owner("release slots")
        slot = self._index(slot.slot if isinstance(slot, ArrayRef) else slot)
        if slot in self._free:
            raise ValueError(f"slot {slot} is already free")
        self._free.append(slot)

    # any process
    def _index(self, slot):
        if isinstance(slot, bool) or not isinstance(slot, (int, np.integer)) or not 0 <= slot < self.slots:
            raise ValueError(f"slot must be an index from 0 to {self.slots - 1}, not {slot!r}")
        return int(slot)

    def ref(self, slot, shape, dtype):
        """The :class:`ArrayRef` for an array of ``shape``/``dtype`` in ``slot``; raise ValueError if it is too big."""
        slot = self._index(slot)
        dtype = check_numeric_dtype(dtype)
        shape = tuple(int(n) for n in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > self.slot_bytes:
            raise ValueError(
                f"an array of {nbytes:,} bytes ({shape}, {dtype}) does not fit in a slot of {self.slot_bytes:,} "
                f"bytes; make the pool with slot_bytes >= {nbytes:,}"
            )
        return self._open_block().ref(shape, dtype, offset=slot * self.stride, slot=slot)

    def write(self, slot, array):
        """Copy ``array`` into ``slot`` and return its :class:`ArrayRef` (what to send through a pipe)."""
        array = check_numeric_array(array)
        ref = self.ref(slot, array.shape, array.dtype)
        with self._open_block().view(ref) as target:
            np.copyto(target, array, casting="no")
        return ref

    def read(self, ref):
        """Return a copy of the array ``ref`` points to (safe to keep after the slot is reused)."""
        self._check_ref(ref)
        return self._open_block().read(ref)

    def copy_out(self, ref):
        """A copy of the array ``ref`` points to, read without mapping the slot here (see :meth:`Block.copy_out`)."""
        self._check_ref(ref)
        return self._open_block().copy_out(ref)

    def lend(self, ref, give_back):
        """The array ``ref`` points to, in place and with no copy, on loan: when the array and
        every view of it are gone, ``give_back(ref.slot)`` is called (from whichever thread
        dropped the last one). Until then the slot is the borrower's: do not reuse it.
        """
        self._check_ref(ref)
        loan = _Loan(self._open_block()._ndarray(ref))
        weakref.finalize(loan, give_back, ref.slot)
        return np.asarray(loan)

    def view(self, ref):
        """A ``with`` block yielding the array in place: read it, or compute straight into it (zero copy)."""
        self._check_ref(ref)
        return self._open_block().view(ref)

    def _check_ref(self, ref):
        if not isinstance(ref, ArrayRef) or ref.name != self.name or ref.slot is None:
            raise ValueError(f"expected an ArrayRef made by this pool ({self.name!r}), not {ref!r}")

    def close(self):
        """Unmap the pool here; the owner also unlinks it. Safe to call twice, on every path."""
        if self._block is not None:
            self._block.close()
        self._free = []
