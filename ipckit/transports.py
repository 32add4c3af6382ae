"""Ten ways to move a numpy array between processes, behind one interface, and their registry.

``TRANSPORTS`` maps a name to a :class:`Transport`. Every transport moves one
numpy array (any numeric or bool dtype, either byte order, any shape, any
memory order; masked and object arrays are refused in the sender) from a
*sender* to a *receiver* in another process, and they all have the same shape:

``transport.start_methods``
    the start methods it works under (``fork_global`` needs fork).
``transport.unavailable_reason(nbytes, start_method, practical=True, hold=1)``
    ``None`` if an array of ``nbytes`` can go this way here, else a short
    reason: a start method it cannot use, more bytes than ``/dev/shm`` has
    free, or (with ``practical=True``) a size at which it would take minutes
    (``rawarray_seq``, ``manager``). ``check_available`` raises instead, with
    the whole story and the fix.
``transport.open(capacity, start_method, hold=1) -> Link``
    creates, in the calling process, what the transport needs (pipes, a
    queue, a Manager server, shared memory for arrays of up to ``capacity``
    bytes for the transports whose memory must exist before the receiver
    starts). Use it as a context manager: ``close()`` releases everything, on
    every path.
``link.sender.send(array, timeout, peer=None)`` / ``link.receiver.recv(timeout, peer=None) -> ndarray``
    the two ends. Each end is picklable *at process creation* (pass it in
    ``Process(args=...)``), so either end can live in the parent or in a
    child. ``timeout`` limits each wait (:mod:`ipckit.watch`). ``peer`` is the
    other end's ``Process`` when the caller is its parent: waits then also
    watch its sentinel and raise :class:`~ipckit.errors.WorkerDied` instead of
    waiting out the timeout. After starting a child, call ``close()`` on the
    ends it took, so that a dead child gives a broken pipe instead of a hang.
``link.receiver.release()``
    says "I am done with every array you gave me" before the next ``recv()``.
``transport.send_before_start``
    True for ``fork_global``: the data travels by ``fork`` itself, so the
    sender calls ``send()`` and *then* starts the receiver from the same
    process.

The contract every transport keeps is in :mod:`ipckit.arrays`, which also
checks it (``stream_check``). To add a transport: a sender and a receiver
class, a :class:`Transport` subclass whose ``_open`` makes the link, and an
entry in ``TRANSPORTS``; the tests and the benchmark then take it in.
"""
import contextlib
import ctypes
import os
import pickle
import queue as queue_module
import struct
import sys
import time
import uuid

import numpy as np

from . import shm, watch
from .checks import check_count
from .context import START_METHODS, get_context, resolve_start_method
from .dtypes import check_numeric_array, ctype_for
from .errors import WorkerDied
from .shm import NotEnoughSharedMemory
from .sizes import MiB
from .watch import DEFAULT_TIMEOUT, read_into, receive, write_all


def _c_order(array):
    """A C-contiguous array with the same values: the array itself when it already is one."""
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


# --- ends: one class per mechanism -------------------------------------------------------------


class _End:
    """Base for both ends: closes its connection, and unmaps the shared memory it mapped itself."""

    _conn = None
    _memory = None  # the shm.Block or shm.SlotPool this end uses, if any

    def __init__(self, conn=None):
        self._conn = conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
        memory, self._memory = self._memory, None
        if memory is not None and not memory.owner:
            memory.close()  # only unmaps: the process that opened the link owns the memory and unlinks it


class _Receiver(_End):
    """Base for receiving ends. Most return arrays the caller owns, so release() has nothing to do."""

    def release(self):
        """Tell the sender it may reuse the memory of every array this end returned so far."""


def _dumps(array):
    """Pickle ``array`` with protocol 5, which keeps its dtype exactly (below 5, '>i4' comes back as '<i4')."""
    array = check_numeric_array(array)
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = np.ascontiguousarray(array)  # numpy pickles a strided view the old way, byte order lost
    return pickle.dumps(array, protocol=5)


_LENGTH = struct.Struct("!Q")  # the length of the message that follows, on the pipe transports' pipes


def _write_message(conn, payload, timeout, peer, what):
    """Write ``payload`` (bytes-like) to the pipe after its length, each write within ``timeout``."""
    write_all(conn, _LENGTH.pack(len(payload)), timeout, peer, what)
    write_all(conn, payload, timeout, peer, what)


def _read_message(conn, timeout, peer, what):
    """The next message :func:`_write_message` wrote, as a bytearray read straight from the pipe."""
    length = bytearray(_LENGTH.size)
    read_into(conn, length, timeout, peer, what)
    payload = bytearray(_LENGTH.unpack(length)[0])
    read_into(conn, payload, timeout, peer, what)
    return payload


class _PicklePipeSender(_End):
    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        # Connection.send(array) would pickle with the default protocol (4 before Python 3.14).
        _write_message(self._conn, _dumps(array), timeout, peer, "the pickled array")


class _PicklePipeReceiver(_Receiver):
    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        return pickle.loads(_read_message(self._conn, timeout, peer, "array"))


class _BytesPipeSender(_End):
    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        array = check_numeric_array(array)
        if array.flags.c_contiguous:
            order, data = "C", array
        elif array.flags.f_contiguous:
            order, data = "F", array.T  # the transpose of a Fortran array is C-contiguous: no copy
        else:
            order, data = "C", np.ascontiguousarray(array)  # a strided view: one copy to make it contiguous
        header = pickle.dumps((array.dtype.str, array.shape, order))
        _write_message(self._conn, header, timeout, peer, "array header")  # a small header...
        write_all(self._conn, data.reshape(-1).view(np.uint8), timeout, peer, "array data")  # ...then the raw buffer


class _BytesPipeReceiver(_Receiver):
    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        dtype, shape, order = pickle.loads(_read_message(self._conn, timeout, peer, "array header"))
        out = np.empty(shape, dtype=np.dtype(dtype), order=order)
        target = (out if order == "C" else out.T).reshape(-1).view(np.uint8)
        read_into(self._conn, target, timeout, peer, "array data")  # straight into the new array's memory
        return out


class _QueueSender(_End):
    def __init__(self, queue):
        self._queue = queue

    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        # Pickled here, not by the queue's feeder thread later: put(array) would return at once and
        # pickle whatever the array holds by then, so a sender that refills its array would send
        # later values (and with the default protocol, '>i4' would arrive as '<i4').
        self._queue.put(_dumps(array))


class _QueueReceiver(_Receiver):
    def __init__(self, queue):
        self._queue = queue

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        deadline = time.monotonic() + timeout
        while True:  # blocking gets in short slices, to notice a dead peer; never a busy loop
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no array within {timeout} s")
            try:
                return pickle.loads(self._queue.get(timeout=min(remaining, 0.25)))
            except queue_module.Empty:
                if peer is not None and not peer.is_alive():
                    try:
                        return pickle.loads(self._queue.get(timeout=0.1))
                    except queue_module.Empty:
                        raise WorkerDied(peer.name, peer.exitcode) from None


class _ManagerSender(_End):
    def __init__(self, store, conn):
        self._store, self._conn = store, conn
        self._sent = 0  # a plain int: it is pickled with this end (itertools objects stop pickling in 3.14)

    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        self._sent += 1
        key = f"{os.getpid()}-{self._sent}"
        self._store[key] = _dumps(array)  # pickled, then pickled again to the manager's server process
        self._conn.send(key)  # tell the receiver where to look


class _ManagerReceiver(_Receiver):
    def __init__(self, store, conn):
        self._store, self._conn = store, conn

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        key = receive(self._conn, peer, timeout, "array")
        return pickle.loads(self._store.pop(key))  # pickled again, from the server to this process


class _BufferSender(_End):
    """Write into shared memory, send a small header, wait for the receiver's acknowledgement."""

    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        array = check_numeric_array(array)
        header = self._put(array, timeout)
        self._conn.send(header)
        receive(self._conn, peer, timeout, "acknowledgement")  # the receiver has its copy

    def _put(self, array, timeout):  # -> the header the receiver needs
        raise NotImplementedError


class _BufferReceiver(_Receiver):
    """Copy the array out of the shared buffer, then acknowledge: what it returns is the caller's."""

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        header = receive(self._conn, peer, timeout, "array")
        try:
            return self._take(header, timeout)
        finally:
            self._conn.send("done")  # after the copy: the sender may now write the next array

    def _take(self, header, timeout):
        raise NotImplementedError


def _check_capacity(array, capacity, name):
    if array.nbytes > capacity:
        raise ValueError(
            f"this {name} link holds at most {capacity:,} bytes, the array has {array.nbytes:,}: "
            "open the link with a larger capacity (its memory must exist before the receiver starts)"
        )


class _RawArraySender(_BufferSender):
    def __init__(self, conn, raw, capacity, by_sequence):
        super().__init__(conn)
        self._raw, self._capacity, self._by_sequence = raw, capacity, by_sequence

    def _put(self, array, timeout):
        _check_capacity(array, self._capacity, "rawarray_seq" if self._by_sequence else "rawarray")
        flat = array.reshape(-1, order="C")
        if self._by_sequence:
            ctype = ctype_for(array.dtype)
            if ctype is None:  # float16, complex, bool, big-endian: no typecode holds them, so go byte by byte
                ctype, flat = ctypes.c_ubyte, _c_order(array).reshape(-1).view(np.uint8)
            # What RawArray(typecode, sequence) does: ctypes' __init__ with one Python object per element.
            (ctype * flat.size).from_buffer(self._raw).__init__(*flat)
        else:
            shm.array_in(self._raw, array.shape, array.dtype)[...] = array  # one memory copy
        return (array.dtype.str, array.shape)


class _RawArrayReceiver(_BufferReceiver):
    def __init__(self, conn, raw):
        super().__init__(conn)
        self._raw = raw

    def _take(self, header, timeout):
        dtype, shape = header
        return shm.array_in(self._raw, shape, dtype).copy()


@contextlib.contextmanager
def _locked(lock, timeout):
    """Hold ``lock``, taken within ``timeout`` (a process that died holding it would block us for ever)."""
    if not lock.acquire(timeout=timeout):
        raise TimeoutError(f"the array's lock was not free within {timeout} s")
    try:
        yield
    finally:
        lock.release()


class _SyncArraySender(_BufferSender):
    def __init__(self, conn, shared, capacity):
        super().__init__(conn)
        self._shared, self._capacity = shared, capacity

    def _put(self, array, timeout):
        _check_capacity(array, self._capacity, "array")
        with _locked(self._shared.get_lock(), timeout):
            shm.array_in(self._shared.get_obj(), array.shape, array.dtype)[...] = array
        return (array.dtype.str, array.shape)


class _SyncArrayReceiver(_BufferReceiver):
    def __init__(self, conn, shared):
        super().__init__(conn)
        self._shared = shared

    def _take(self, header, timeout):
        dtype, shape = header
        with _locked(self._shared.get_lock(), timeout):
            return shm.array_in(self._shared.get_obj(), shape, dtype).copy()


class _SharedMemorySender(_End):
    """Writes array ``n`` into slot ``n % slots`` of the link's block, once the receiver has released it.

    With one slot more than the receiver may hold, a sender whose receiver keeps
    up never waits, and it never writes under an array the receiver still holds.
    """

    def __init__(self, conn, name, slots, stride):
        self._conn, self._name, self._slots, self._stride = conn, name, slots, stride
        self._memory = None  # attached on first use, in the process that sends
        self._sent = 0  # arrays sent, and arrays the receiver has released: the difference is in use
        self._released = 0

    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        array = check_numeric_array(array)
        _check_capacity(array, self._stride, "shared_memory")
        while self._sent - self._released >= self._slots:  # the slot we need holds an array still in use
            self._released += receive(self._conn, peer, timeout,
                                      "release of an array by the receiver (it holds every slot)")
        if self._memory is None:
            self._memory = shm.attach(self._name, populate=True)  # every page mapped now: no faults later
        slot = self._sent % self._slots
        ref = self._memory.write(array, offset=slot * self._stride, slot=slot)  # one copy, at memcpy speed
        self._conn.send(ref)
        self._sent += 1


class _SharedMemoryReceiver(_Receiver):
    """Returns each array in place, in the link's block: no copy.

    The array stays intact until this end releases it: at the next ``recv()``
    (the oldest of ``hold`` held arrays) or at ``release()``. Only then is the
    sender told that it may write into that slot again.
    """

    def __init__(self, conn, name, hold):
        self._conn, self._name, self._hold = conn, name, hold
        self._memory = None
        self._held = 0  # arrays returned and not yet released

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        if self._held >= self._hold:
            self._release(self._held - self._hold + 1)  # the caller is done with the oldest one
        ref = receive(self._conn, peer, timeout, "array")
        if self._memory is None:
            self._memory = shm.attach(self._name)
        self._held += 1
        return self._memory._ndarray(ref)  # in place: intact until released

    def release(self):
        if self._held:
            self._release(self._held)

    def _release(self, count):
        self._held -= count
        try:
            self._conn.send(count)  # after the reads: only now may the sender write there again
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender has finished and gone: nobody is waiting for the news


class _PoolSender(_BufferSender):
    def __init__(self, conn, pool):
        super().__init__(conn)
        self._memory = pool

    def _put(self, array, timeout):
        return self._memory.write(0, array)  # the same slot every time: its pages stay mapped


class _PoolReceiver(_BufferReceiver):
    def __init__(self, conn, pool):
        super().__init__(conn)
        self._memory = pool

    def _take(self, ref, timeout):
        return self._memory.read(ref)


_FORK_INHERITED = {}  # link key -> arrays "sent" by fork: set in the sender, inherited by its forked children


class _ForkGlobalSender(_End):
    def __init__(self, key):
        self._key = key

    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        _FORK_INHERITED.setdefault(self._key, []).append(check_numeric_array(array))


class _ForkGlobalReceiver(_Receiver):
    def __init__(self, key):
        self._key = key
        self._taken = 0

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        arrays = _FORK_INHERITED.get(self._key, [])
        if self._taken >= len(arrays):
            raise RuntimeError(
                "fork_global: nothing inherited. The sender must call send() and then fork this process "
                "(start_method='fork'); an array sent after the fork never arrives."
            )
        self._taken += 1
        return arrays[self._taken - 1]  # the parent's pages, shared copy-on-write: no copy at all


# --- transports and links ---------------------------------------------------------------------


class Link:
    """What :meth:`Transport.open` made: ``sender`` and ``receiver`` ends, and the resources to release."""

    def __init__(self, transport, sender, receiver, closers=()):
        self.transport = transport
        self.sender = sender
        self.receiver = receiver
        self._closers = list(closers)  # called with discard=True/False, last made first closed

    def __repr__(self):
        return f"<Link {self.transport.name}>"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(discard=exc_type is not None)

    def close(self, discard=False):
        """Close both ends here and release everything; ``discard=True`` drops unsent data (error paths)."""
        closers, self._closers = self._closers, []
        errors = []
        for close in [lambda _: self.sender.close(), lambda _: self.receiver.close()] + closers[::-1]:
            try:
                close(discard)
            except Exception as exc:  # keep closing the rest
                errors.append(exc)
        if errors and not discard:
            raise errors[0]


class Transport:
    """One way to move an array between processes; see the module docstring for the interface."""

    name = ""
    summary = ""
    start_methods = START_METHODS
    send_before_start = False
    in_place = False  # True: recv returns the array where it lies (zero copy), intact until released
    practical_limit = None  # bytes per burst above which the benchmark should skip it (it would take minutes)
    posix_pipes = False  # True: it needs select.poll and os.readv on a raw pipe descriptor

    def __repr__(self):
        return f"<Transport {self.name}: {self.summary}>"

    def shm_bytes(self, nbytes, hold=1):
        """Bytes of /dev/shm this transport needs at once for arrays of ``nbytes`` (``hold`` held by the receiver)."""
        return 0

    def _problem(self, nbytes, start_method, hold):
        """(short reason, the exception to raise) if an array of ``nbytes`` cannot go this way here, else None."""
        nbytes, hold = check_count(nbytes, "nbytes", minimum=0), check_count(hold, "hold")
        method = resolve_start_method(start_method)
        if self.posix_pipes and not watch.HAS_POSIX_PIPES:
            reason = f"needs POSIX pipes, which {sys.platform} does not have"
            return reason, OSError(
                f"transport {self.name!r} {reason} (select.poll, os.readv): use 'queue' or 'shared_memory' there"
            )
        if method not in self.start_methods:
            reason = f"needs the {' or '.join(repr(m) for m in self.start_methods)} start method, not {method!r}"
            return reason, ValueError(
                f"transport {self.name!r} {reason}: a child started by {method} begins with a fresh interpreter "
                f"and inherits none of the parent's memory. Pass start_method={self.start_methods[0]!r} (not "
                "available on Windows), or use shared_memory."
            )
        needed = self.shm_bytes(nbytes, hold)
        problem = shm.space_problem(needed, what="shared memory") if needed else None
        if problem:
            reason = f"{needed:,} bytes of shared memory do not fit in {shm.SHM_DIR} ({shm.free_bytes():,} free)"
            return reason, NotEnoughSharedMemory(f"transport {self.name!r}: {problem}")
        return None

    def check_available(self, nbytes, start_method=None, hold=1):
        """Raise ValueError or NotEnoughSharedMemory, saying why and what to do, if ``nbytes`` cannot go this way."""
        problem = self._problem(nbytes, start_method, hold)
        if problem is not None:
            raise problem[1]

    def unavailable_reason(self, nbytes, start_method=None, practical=True, hold=1):
        """None if an array of ``nbytes`` can go this way under ``start_method``, else why not, in a few words."""
        problem = self._problem(nbytes, start_method, hold)
        if problem is not None:
            return problem[0]
        if practical and self.practical_limit is not None and nbytes * hold > self.practical_limit:
            each = f" per array in bursts of {hold}" if hold > 1 else ""
            return f"would take minutes above {self.practical_limit / hold / MiB:g} MiB{each}"
        return None

    def open(self, capacity=0, start_method=None, hold=1):
        """Make the link in this process (before starting the processes that use its ends).

        ``hold``: how many arrays the receiver may keep at once. Each array
        ``recv()`` returns stays intact until the receiver has called ``recv()``
        ``hold`` more times, or ``release()``. Only an in-place transport
        (``shared_memory``) needs more memory for a larger ``hold``: the others
        return arrays the caller owns.
        """
        capacity = check_count(capacity, "capacity", minimum=0)
        hold = check_count(hold, "hold")
        return self._open(capacity, get_context(start_method), hold)

    def _open(self, capacity, ctx, hold=1):
        raise NotImplementedError


class _OnePipe(Transport):
    """A transport that is one pipe, one way: ``ends`` are its sender's and its receiver's classes."""

    ends = (None, None)
    posix_pipes = True  # its ends wait on the raw descriptor with a deadline, and read into the array

    def _open(self, capacity, ctx, hold=1):
        reader, writer = ctx.Pipe(duplex=False)
        sender, receiver = self.ends
        return Link(self, sender(writer), receiver(reader))


class _PipePickle(_OnePipe):
    name = "pipe_pickle"
    summary = "pickle.dumps(array, protocol=5) into a pipe, after its length: the whole array, pickled"
    ends = (_PicklePipeSender, _PicklePipeReceiver)


class _PipeBytes(_OnePipe):
    name = "pipe_bytes"
    summary = "a small header, then the raw buffer written to the pipe and read straight into the new array"
    ends = (_BytesPipeSender, _BytesPipeReceiver)


class _Queue(Transport):
    name = "queue"
    summary = "multiprocessing.Queue: pickled by the sender, then written to a pipe by a feeder thread"

    def _open(self, capacity, ctx, hold=1):
        queue = ctx.Queue()

        def close(discard):
            if discard:
                queue.cancel_join_thread()  # do not wait to flush data nobody will read
            queue.close()
            if not discard:
                queue.join_thread()

        return Link(self, _QueueSender(queue), _QueueReceiver(queue), [close])


class _Manager(Transport):
    name = "manager"
    summary = "a Manager dict proxy: pickled to the manager's server process, and again to the receiver"
    practical_limit = 256 * MiB

    def _open(self, capacity, ctx, hold=1):
        manager = ctx.Manager()
        try:
            store = manager.dict()
            reader, writer = ctx.Pipe(duplex=False)
        except BaseException:
            manager.shutdown()
            raise
        return Link(
            self,
            _ManagerSender(store, writer),
            _ManagerReceiver(store, reader),
            [lambda discard: manager.shutdown()],
        )


class _SyncArray(Transport):
    name = "array"
    summary = "a synchronized multiprocessing.Array, filled by a numpy copy under its lock"

    def _open(self, capacity, ctx, hold=1):
        shared = ctx.Array("B", max(capacity, 1), lock=True)
        a, b = ctx.Pipe(duplex=True)
        return Link(self, _SyncArraySender(a, shared, capacity), _SyncArrayReceiver(b, shared))


class _RawArray(Transport):
    name = "rawarray"
    summary = "RawArray(typecode, n) allocated once, filled by one numpy copy"
    by_sequence = False

    def _open(self, capacity, ctx, hold=1):
        raw = ctx.RawArray("B", max(capacity, 1))
        a, b = ctx.Pipe(duplex=True)
        return Link(self, _RawArraySender(a, raw, capacity, self.by_sequence), _RawArrayReceiver(b, raw))


class _RawArraySeq(_RawArray):
    name = "rawarray_seq"
    summary = "the seed's way, as RawArray(typecode, sequence) does it: element by element in Python"
    by_sequence = True
    practical_limit = 64 * MiB


def _page_round(nbytes):
    """``nbytes`` rounded up to whole pages (at least one): the stride of a slot."""
    return -(-max(nbytes, 1) // shm.PAGE) * shm.PAGE


class _SharedMemory(Transport):
    name = "shared_memory"
    summary = (
        "two reused shared-memory slots, taken in turn: the sender copies each array into the free one, "
        "the reader reads it in place until its next recv()"
    )
    in_place = True

    def shm_bytes(self, nbytes, hold=1):
        return (hold + 1) * _page_round(nbytes)

    def _open(self, capacity, ctx, hold=1):
        slots, stride = hold + 1, _page_round(capacity)
        block = shm.create(slots * stride)  # made here, before the ends go to their processes; unlinked by close()
        try:
            a, b = ctx.Pipe(duplex=True)
        except BaseException:
            block.close()
            raise
        sender = _SharedMemorySender(a, block.name, slots, stride)
        return Link(self, sender, _SharedMemoryReceiver(b, block.name, hold), [lambda discard: block.close()])


class _SharedMemoryPool(Transport):
    name = "shared_memory_pool"
    summary = "one reused shared-memory slot (ipckit.shm.SlotPool): allocated once, written many times"

    def shm_bytes(self, nbytes, hold=1):
        return _page_round(nbytes)

    def _open(self, capacity, ctx, hold=1):
        pool = shm.SlotPool(1, max(capacity, 1))
        try:
            a, b = ctx.Pipe(duplex=True)
        except BaseException:
            pool.close()
            raise
        return Link(self, _PoolSender(a, pool), _PoolReceiver(b, pool), [lambda discard: pool.close()])


class _ForkGlobal(Transport):
    name = "fork_global"
    summary = "a module global inherited at fork (copy-on-write pages): parent to child only"
    start_methods = ("fork",)
    send_before_start = True

    def _open(self, capacity, ctx, hold=1):
        key = uuid.uuid4().hex
        return Link(
            self, _ForkGlobalSender(key), _ForkGlobalReceiver(key), [lambda discard: _FORK_INHERITED.pop(key, None)]
        )


TRANSPORTS = {
    t.name: t
    for t in (
        _PipePickle(),
        _PipeBytes(),
        _Queue(),
        _Manager(),
        _SyncArray(),
        _RawArraySeq(),
        _RawArray(),
        _SharedMemory(),
        _SharedMemoryPool(),
        _ForkGlobal(),
    )
}


def get_transport(transport):
    """The :class:`Transport` called ``transport`` (or ``transport`` itself); ValueError listing the names."""
    if isinstance(transport, Transport):
        return transport
    if isinstance(transport, str) and transport in TRANSPORTS:
        return TRANSPORTS[transport]
    raise ValueError(f"unknown transport {transport!r}; choose one of: {', '.join(TRANSPORTS)}")
