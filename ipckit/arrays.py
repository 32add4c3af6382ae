"""Large numpy arrays between processes: one interface, many transports.

``TRANSPORTS`` maps a name to a :class:`Transport`. Every transport moves one
numpy array (any numeric or bool dtype, either byte order, any shape, any
memory order; masked and object arrays are refused in the sender) from a
*sender* to a *receiver* in another process, and they all have the same shape:

``transport.start_methods``
    the start methods it works under (``fork_global`` needs fork).
``transport.unavailable_reason(nbytes, start_method, practical=True)``
    ``None`` if an array of ``nbytes`` can go this way here, else a sentence
    saying why not: a start method it cannot use, more bytes than ``/dev/shm``
    has free, or (with ``practical=True``) a size at which it would take
    minutes (``rawarray_seq``, ``manager``). ``check_available`` raises instead.
``transport.open(capacity, start_method, hold=1) -> Link``
    creates, in the calling process, what the transport needs (pipes, a
    queue, a Manager server, shared memory for arrays of up to ``capacity``
    bytes for the transports whose memory must exist before the receiver
    starts). Use it as a context manager: ``close()`` releases everything, on
    every path.
``link.sender.send(array, timeout, peer=None)`` / ``link.receiver.recv(timeout, peer=None) -> ndarray``
    the two ends. Each end is picklable *at process creation* (pass it in
    ``Process(args=...)``), so either end can live in the parent or in a
    child. ``peer`` is the other end's ``Process`` when the caller is its
    parent: waits then also watch its sentinel and raise
    :class:`~ipckit.run.WorkerDied` instead of waiting out the timeout.
    After starting a child, call ``close()`` on the ends it took, so that a
    dead child gives a broken pipe instead of a hang.
``link.receiver.release()``
    says "I am done with every array you gave me" before the next ``recv()``.
``transport.send_before_start``
    True for ``fork_global``: the data travels by ``fork`` itself, so the
    sender calls ``send()`` and *then* starts the receiver from the same
    process.

The contract, the same for every transport
------------------------------------------
* **What recv() returns stays intact until the receiver's next recv()** (or
  its ``release()``), whatever the sender does meanwhile: a sender may keep
  sending without waiting for the reader, as real programs do. Most
  transports return a new array that is the caller's for ever. The in-place
  one, ``shared_memory`` (``in_place = True``), returns the array where it
  lies, in one of two slots it uses in turn: the receiver tells the sender a
  slot is free only when the caller is done with its array (at the next
  ``recv()`` or ``release()``), never inside ``recv()``, and the sender waits
  for that before writing there again. Copy such an array to keep it longer,
  or open the link with ``hold=N`` to keep the last N (N + 1 slots).
  ``fork_global`` hands over the array the child inherited: its own for ever.
* **send() takes the values the array has at the call**: the sender may change
  or refill its array as soon as ``send()`` returns. (A ``Queue`` pickles in a
  feeder thread later, so the ``queue`` transport pickles in ``send()``
  itself.) ``fork_global`` is the exception: the child sees the array as it is
  at the fork, so change nothing between ``send()`` and starting the child.
* **The dtype comes back equal**, byte order included: the pickling
  transports use pickle protocol 5 (below it, numpy turns ``'>i4'`` into
  ``'<i4'``, and ``Connection.send`` and ``Queue`` use the default protocol,
  4 before Python 3.14).

:func:`stream_check` streams frames the way a real program does and counts
those that arrived whole; the tests run it on every transport. The benchmark
(:func:`hand_off_times`, and :mod:`ipckit.bench` on top of it) times bursts of
arrays sent without waiting, from ``send`` in one process to ``recv``
returning in another, and checks :func:`fingerprint` of every array received
outside the timed interval. The pipeline streams arrays through
:class:`ipckit.shm.SlotPool` slots, like ``shared_memory_pool``.

:func:`echo` and :func:`echo_many` send arrays to a child and back by one
transport; :func:`pack` / :func:`unpack` put a list of arrays of mixed shapes
and dtypes into one flat shared buffer and back, with one memory copy each.
"""
import ctypes
import os
import pickle
import queue as queue_module
import select
import threading
import time
import uuid
import zlib
from collections import namedtuple
from multiprocessing import resource_tracker
from multiprocessing.connection import wait
from multiprocessing.sharedctypes import typecode_to_type

import numpy as np

from . import shm
from .context import START_METHODS, get_context, resolve_start_method
from .run import DEFAULT_TIMEOUT, WorkerDied, call_and_send, child_error, receive, stop_process
from .shm import NotEnoughSharedMemory, check_numeric_array, check_numeric_dtype
from .checks import check_count, check_timeout

MiB = 2**20

# --- dtypes and typecodes -------------------------------------------------------------------

# The typecodes multiprocessing.Array/RawArray accept for numbers, and the numpy dtype each holds.
# 'q'/'Q' come before 'l'/'L': a C long is 4 bytes on Windows, a long long is 8 everywhere.
TYPECODES = {code: np.dtype(typecode_to_type[code]) for code in "bBhHiIqQlLfd"}


def _ctype_for(dtype):
    """The ctypes type holding one element of ``dtype`` exactly, or None (float16, complex, bool)."""
    for code, held in TYPECODES.items():
        if held == dtype:
            return typecode_to_type[code]
    return None


def typecode_for(dtype, typecode=None):
    """Return the multiprocessing typecode that holds ``dtype`` exactly, or check the one given.

    Raises TypeError when no typecode can hold the dtype (float16, complex,
    bool: ``Array``/``RawArray`` know only ``b B h H i I l L q Q f d``) or when
    ``typecode`` would round or refuse the values (``'f'`` for float64,
    ``'i'`` for floats), and ValueError for a typecode that does not exist.
    """
    dtype = check_numeric_dtype(dtype)
    if typecode is None:
        for code, held in TYPECODES.items():
            if held == dtype:
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
        good = [code for code, held in TYPECODES.items() if held == dtype]
        fix = f"use {good[0]!r} for {dtype}" if good else f"no typecode holds {dtype}; use pack() or shared_memory"
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


def from_rawarray(raw, shape, dtype, copy=True):
    """The array of ``shape``/``dtype`` in ``raw`` (a copy by default, else a view sharing its memory)."""
    dtype = check_numeric_dtype(dtype)
    view = shm.array_in(raw, shape, dtype)
    return view.copy() if copy else view


Fingerprint = namedtuple("Fingerprint", "shape dtype crc32")


def fingerprint(array):
    """(shape, dtype, CRC-32 of the bytes in C order): equal fingerprints mean equal arrays, bit for bit."""
    array = check_numeric_array(array)
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return Fingerprint(tuple(array.shape), str(array.dtype), zlib.crc32(data))


# --- waiting without hanging -------------------------------------------------------------------


def _wait_readable(conn, timeout, peer, what):
    """Wait until ``conn`` has data, at most ``timeout`` s; with a ``peer`` process, also watch it die."""
    handles = [conn] + ([peer.sentinel] if peer is not None else [])
    ready = wait(handles, timeout)
    if not ready:
        raise TimeoutError(f"no {what} within {timeout} s")
    if conn in ready or conn.poll(0):
        return
    peer.join(1.0)
    raise WorkerDied(peer.name, peer.exitcode)


def _recv_message(conn, timeout, peer, what, raw=False):
    """The next message on ``conn`` (unpickled, or its bytes with ``raw=True``), within ``timeout`` s."""
    _wait_readable(conn, timeout, peer, what)
    try:
        return conn.recv_bytes() if raw else conn.recv()
    except EOFError:
        raise (WorkerDied(peer.name, peer.exitcode) if peer is not None else EOFError(f"the other end closed before {what}")) from None


def _write_raw(conn, data):
    """Write the bytes of ``data`` (a 1-D uint8 array) to ``conn``'s pipe as they are, without a length prefix.

    The reader knows the length from the header sent before. Raises
    BrokenPipeError if the reader has gone.
    """
    view, fd = memoryview(data), conn.fileno()
    while len(view):  # one write() moves it all, unless a signal interrupts it
        view = view[os.write(fd, view):]


def _read_raw_into(conn, target, timeout, peer):
    """Read exactly ``len(target)`` bytes from ``conn``'s pipe straight into ``target`` (a 1-D uint8 array).

    ``Connection.recv_bytes_into`` would first read the whole message into a
    temporary ``BytesIO`` (allocating a buffer of the remaining size for every
    64 KiB the pipe delivers) and then copy it: two extra copies of a big array.
    ``os.readv`` into the array's own memory leaves only the kernel's copy.
    One ``poll`` object watches the pipe and the peer, with the deadline.
    """
    view, fd, received = memoryview(target), conn.fileno(), 0
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if peer is not None:
        poller.register(peer.sentinel, select.POLLIN)
    deadline = time.monotonic() + timeout
    while received < len(view):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"only {received:,} of {len(view):,} bytes of array data within {timeout} s")
        ready = {handle for handle, _ in poller.poll(remaining * 1000)}
        if fd in ready:  # data, or the writer closed its end (then readv returns 0)
            count = os.readv(fd, [view[received:]])
            if count == 0:
                if peer is not None:
                    peer.join(1.0)
                    raise WorkerDied(peer.name, peer.exitcode)
                raise EOFError(f"the other end closed after {received:,} of {len(view):,} bytes of array data")
            received += count
        elif ready:  # only the peer's sentinel: it died before sending everything
            peer.join(1.0)
            raise WorkerDied(peer.name, peer.exitcode)


def _c_order(array):
    """A C-contiguous array with the same values: the array itself when it already is one."""
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


# --- ends: one class per mechanism -------------------------------------------------------------


class _End:
    """Base for both ends: closes its connection, if it has one."""

    _conn = None

    def close(self):
        if self._conn is not None:
            self._conn.close()


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


class _PicklePipeSender(_End):
    def __init__(self, conn):
        self._conn = conn

    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        # Connection.send(array) would pickle with the default protocol (4 before Python 3.14).
        self._conn.send_bytes(_dumps(array))  # the whole array, pickled, into the pipe


class _PicklePipeReceiver(_Receiver):
    def __init__(self, conn):
        self._conn = conn

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        return pickle.loads(_recv_message(self._conn, timeout, peer, "array", raw=True))


class _BytesPipeSender(_End):
    def __init__(self, conn):
        self._conn = conn

    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        array = check_numeric_array(array)
        if array.flags.c_contiguous:
            order, data = "C", array
        elif array.flags.f_contiguous:
            order, data = "F", array.T  # the transpose of a Fortran array is C-contiguous: no copy
        else:
            order, data = "C", np.ascontiguousarray(array)  # a strided view: one copy to make it contiguous
        self._conn.send((array.dtype.str, array.shape, order))  # a small header...
        _write_raw(self._conn, data.reshape(-1).view(np.uint8))  # ...then the raw buffer, no pickling


class _BytesPipeReceiver(_Receiver):
    def __init__(self, conn):
        self._conn = conn

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        dtype, shape, order = _recv_message(self._conn, timeout, peer, "array header")
        out = np.empty(shape, dtype=np.dtype(dtype), order=order)
        target = (out if order == "C" else out.T).reshape(-1).view(np.uint8)
        _read_raw_into(self._conn, target, timeout, peer)  # straight into the new array's memory
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
        key = _recv_message(self._conn, timeout, peer, "array")
        return pickle.loads(self._store.pop(key))  # pickled again, from the server to this process


class _BufferSender(_End):
    """Write into shared memory, send a small header, wait for the receiver's acknowledgement."""

    def __init__(self, conn):
        self._conn = conn

    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        array = check_numeric_array(array)
        header = self._put(array)
        self._conn.send(header)
        _recv_message(self._conn, timeout, peer, "acknowledgement")  # the receiver has its copy

    def _put(self, array):  # -> the header the receiver needs
        raise NotImplementedError


class _BufferReceiver(_Receiver):
    """Copy the array out of the shared buffer, then acknowledge: what it returns is the caller's."""

    def __init__(self, conn):
        self._conn = conn

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        header = _recv_message(self._conn, timeout, peer, "array")
        try:
            return self._take(header)
        finally:
            self._conn.send("done")  # after the copy: the sender may now write the next array

    def _take(self, header):
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

    def _put(self, array):
        _check_capacity(array, self._capacity, "rawarray_seq" if self._by_sequence else "rawarray")
        flat = array.reshape(-1, order="C")
        if self._by_sequence:
            ctype = _ctype_for(array.dtype)
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

    def _take(self, header):
        dtype, shape = header
        return shm.array_in(self._raw, shape, dtype).copy()


class _SyncArraySender(_BufferSender):
    def __init__(self, conn, shared, capacity):
        super().__init__(conn)
        self._shared, self._capacity = shared, capacity

    def _put(self, array):
        _check_capacity(array, self._capacity, "array")
        with self._shared.get_lock():
            shm.array_in(self._shared.get_obj(), array.shape, array.dtype)[...] = array
        return (array.dtype.str, array.shape)


class _SyncArrayReceiver(_BufferReceiver):
    def __init__(self, conn, shared):
        super().__init__(conn)
        self._shared = shared

    def _take(self, header):
        dtype, shape = header
        with self._shared.get_lock():
            return shm.array_in(self._shared.get_obj(), shape, dtype).copy()


class _SharedMemorySender(_End):
    """Writes array ``n`` into slot ``n % slots`` of the link's block, once the receiver has released it.

    With one slot more than the receiver may hold, a sender whose receiver keeps
    up never waits, and it never writes under an array the receiver still holds.
    """

    def __init__(self, conn, name, slots, stride):
        self._conn, self._name, self._slots, self._stride = conn, name, slots, stride
        self._block = None  # attached on first use, in the process that sends
        self._sent = 0  # arrays sent, and arrays the receiver has released: the difference is in use
        self._released = 0

    def send(self, array, timeout=DEFAULT_TIMEOUT, peer=None):
        array = check_numeric_array(array)
        _check_capacity(array, self._stride, "shared_memory")
        while self._sent - self._released >= self._slots:  # the slot we need holds an array still in use
            self._released += _recv_message(
                self._conn, timeout, peer, "release of an array by the receiver (it holds every slot)"
            )
        if self._block is None:
            self._block = shm.attach(self._name, populate=True)  # every page mapped now: no faults later
        slot = self._sent % self._slots
        ref = self._block.write(array, offset=slot * self._stride, slot=slot)  # one copy, at memcpy speed
        self._conn.send(ref)
        self._sent += 1

    def close(self):
        super().close()
        if self._block is not None:
            self._block.close()  # only unmaps: the link's owner unlinks the block
            self._block = None


class _SharedMemoryReceiver(_Receiver):
    """Returns each array in place, in the link's block: no copy.

    The array stays intact until this end releases it: at the next ``recv()``
    (the oldest of ``hold`` held arrays) or at ``release()``. Only then is the
    sender told that it may write into that slot again.
    """

    def __init__(self, conn, name, hold):
        self._conn, self._name, self._hold = conn, name, hold
        self._block = None
        self._held = 0  # arrays returned and not yet released

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        if self._held >= self._hold:
            self._release(self._held - self._hold + 1)  # the caller is done with the oldest one
        ref = _recv_message(self._conn, timeout, peer, "array")
        if self._block is None:
            self._block = shm.attach(self._name)
        self._held += 1
        return self._block._ndarray(ref)  # in place: intact until released

    def release(self):
        if self._held:
            self._release(self._held)

    def _release(self, count):
        self._held -= count
        try:
            self._conn.send(count)  # after the reads: only now may the sender write there again
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender has finished and gone: nobody is waiting for the news

    def close(self):
        super().close()
        if self._block is not None:
            self._block.close()  # arrays already handed out keep the mapping until they go
            self._block = None


class _PoolSender(_BufferSender):
    def __init__(self, conn, pool):
        super().__init__(conn)
        self._pool = pool

    def _put(self, array):
        return self._pool.write(0, array)  # the same slot every time: its pages stay mapped

    def close(self):
        super().close()
        if not self._pool.owner:
            self._pool.close()


class _PoolReceiver(_BufferReceiver):
    def __init__(self, conn, pool):
        super().__init__(conn)
        self._pool = pool

    def _take(self, ref):
        return self._pool.read(ref)

    def close(self):
        super().close()
        if not self._pool.owner:
            self._pool.close()


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

    def __repr__(self):
        return f"<Transport {self.name}: {self.summary}>"

    def shm_bytes(self, nbytes, hold=1):
        """Bytes of /dev/shm this transport needs at once for arrays of ``nbytes`` (``hold`` held by the receiver)."""
        return 0

    def _hard_problem(self, nbytes, method, hold=1):
        if method not in self.start_methods:
            return ValueError(
                f"transport {self.name!r} needs the {' or '.join(repr(m) for m in self.start_methods)} start method, "
                f"not {method!r}: a child started by {method} begins with a fresh interpreter and inherits none "
                f"of the parent's memory. Pass start_method={self.start_methods[0]!r} (not available on Windows), "
                "or use shared_memory."
            )
        needed = self.shm_bytes(nbytes, hold)
        if needed:
            problem = shm.space_problem(needed, what="shared memory")
            if problem:
                return NotEnoughSharedMemory(f"transport {self.name!r}: {problem}")
        return None

    def check_available(self, nbytes, start_method=None, hold=1):
        """Raise ValueError or NotEnoughSharedMemory if an array of ``nbytes`` cannot go this way here."""
        nbytes, hold = check_count(nbytes, "nbytes", minimum=0), check_count(hold, "hold")
        problem = self._hard_problem(nbytes, resolve_start_method(start_method), hold)
        if problem is not None:
            raise problem

    def unavailable_reason(self, nbytes, start_method=None, practical=True, hold=1):
        """None if an array of ``nbytes`` can go this way under ``start_method``, else why not (a sentence)."""
        nbytes, hold = check_count(nbytes, "nbytes", minimum=0), check_count(hold, "hold")
        problem = self._hard_problem(nbytes, resolve_start_method(start_method), hold)
        if problem is not None:
            return str(problem)
        if practical and self.practical_limit is not None and nbytes * hold > self.practical_limit:
            each = f" per array in bursts of {hold}" if hold > 1 else ""
            return (
                f"{self.name} is skipped above {self.practical_limit / hold / MiB:g} MiB{each}: "
                f"{self.summary.lower()}, so it would take minutes"
            )
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


class _PipePickle(Transport):
    name = "pipe_pickle"
    summary = "Connection.send_bytes(pickle.dumps(array, protocol=5)): the whole array, pickled, into a pipe"

    def _open(self, capacity, ctx, hold=1):
        reader, writer = ctx.Pipe(duplex=False)
        return Link(self, _PicklePipeSender(writer), _PicklePipeReceiver(reader))


class _PipeBytes(Transport):
    name = "pipe_bytes"
    summary = "a small header, then the raw buffer written to the pipe and read straight into the new array"

    def _open(self, capacity, ctx, hold=1):
        reader, writer = ctx.Pipe(duplex=False)
        return Link(self, _BytesPipeSender(writer), _BytesPipeReceiver(reader))


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


# --- a child that is watched ------------------------------------------------------------------


_PEER_GONE = (WorkerDied, BrokenPipeError, ConnectionResetError, EOFError)


class _Child:
    """Start ``func(*args)`` in a child; stop it on every path; terminate it when ``timeout`` runs out.

    The timer unblocks anything the parent is stuck in (a pipe write, a wait),
    because terminating the child breaks its pipes and fires its sentinel.
    """

    def __init__(self, ctx, func, args, timeout, name):
        self._ctx, self._func, self._args, self._timeout, self._name = ctx, func, args, timeout, name
        self.expired = False

    def __enter__(self):
        if self._ctx.get_start_method() == "fork":
            # Start the resource tracker before forking, so parent and children share one
            # (a child would otherwise start its own, and blocks would be tracked twice).
            resource_tracker.ensure_running()
        self._reply, writer = self._ctx.Pipe(duplex=False)
        self.process = self._ctx.Process(target=call_and_send, args=(writer, self._func, self._args, {}), name=self._name)
        try:
            self.process.start()
        except BaseException:
            self._reply.close()
            raise
        finally:
            writer.close()
        self._timer = threading.Timer(self._timeout, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def _expire(self):
        self.expired = True
        self.process.terminate()

    def result(self):
        reply = receive(self._reply, self.process, self._timeout, what="the result")
        if reply[0] == "error":
            raise child_error(self.process.name, reply)
        return reply[1]

    def explain(self, exc):
        """The child's own error, if it reported one before dying or breaking a pipe; else ``exc``."""
        if self._reply.poll(1.0):
            try:
                reply = receive(self._reply, self.process, 1.0, what="the result")
            except Exception:
                return exc
            if reply[0] == "error":
                return child_error(self.process.name, reply)
        return exc

    def __exit__(self, exc_type, exc, tb):
        self._timer.cancel()
        self._reply.close()
        if exc_type is not None and self.process.is_alive():
            self.process.terminate()
        stop_process(self.process)
        if self.expired and exc_type is not None and not issubclass(exc_type, TimeoutError):
            raise TimeoutError(f"{self._name} did not finish within {self._timeout} s; stopped") from exc


# --- echo ----------------------------------------------------------------------------------------


def _echo_worker(receiver, sender, count, timeout):
    """Child: receive ``count`` arrays and send each straight back."""
    try:
        for _ in range(count):
            sender.send(receiver.recv(timeout), timeout)
        return count
    finally:
        receiver.close()
        sender.close()


def _prepare(arrays, transport, start_method, timeout):
    transport = get_transport(transport)
    arrays = [check_numeric_array(a) for a in arrays]
    method = resolve_start_method(start_method)
    check_timeout(timeout)
    capacity = max((a.nbytes for a in arrays), default=0)
    transport.check_available(capacity, method)
    return transport, arrays, method, capacity


def echo_many(arrays, transport, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Send each array to one child by ``transport`` and back by the same; return what came back.

    One child serves the whole list, in order. ``fork_global`` moves data only
    from parent to child (a child cannot write into its parent's memory), so
    its arrays come back through ``pipe_bytes``.
    """
    if isinstance(arrays, np.ndarray):
        raise TypeError("echo_many takes a list of arrays; for one array use echo(array, ...)")
    transport, arrays, method, capacity = _prepare(list(arrays), transport, start_method, timeout)
    way_back = TRANSPORTS["pipe_bytes"] if transport.send_before_start else transport
    ctx = get_context(method)
    results = []
    with transport.open(capacity, method) as there, way_back.open(capacity, method) as back:
        if transport.send_before_start:
            for array in arrays:
                there.sender.send(array, timeout)
        child_args = (there.receiver, back.sender, len(arrays), timeout)
        with _Child(ctx, _echo_worker, child_args, timeout, f"echo:{transport.name}") as child:
            there.receiver.close()  # the child has its own copies of these two ends
            back.sender.close()
            try:
                for array in arrays:
                    if not transport.send_before_start:
                        there.sender.send(array, timeout, peer=child.process)
                    result = back.receiver.recv(timeout, peer=child.process)
                    results.append(result.copy() if way_back.in_place else result)  # the next send reuses it
            except _PEER_GONE as exc:
                raise child.explain(exc) from None
            child.result()
    return results


def echo(array, transport, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Send ``array`` to a child process by ``transport`` and back by the same; return what came back.

    The result equals ``array`` in shape, dtype and values (it is C-ordered
    unless a transport keeps the order). Bad input raises here, before any
    process starts: TypeError for a non-array or an object/str dtype,
    ValueError for an unknown transport or ``fork_global`` under spawn or
    forkserver, :class:`~ipckit.shm.NotEnoughSharedMemory` when /dev/shm is too small.
    """
    return echo_many([array], transport, start_method, timeout)[0]


# --- streaming: the sender does not wait, the reader holds each array ---------------------------


def stream_pattern(shape):
    """The base of every frame of a test stream: uint8 values 0..250 repeating, of ``shape``."""
    size = int(np.prod(shape, dtype=np.int64))
    return (np.arange(size) % 251).astype(np.uint8).reshape(shape)


def stream_frame(pattern, index, out=None):
    """Frame ``index`` of a test stream: every byte differs from the same byte of the frame before and after.

    So a frame that was partly overwritten by the next one never passes for a whole one.
    """
    return np.add(pattern, np.uint8(index % 256), out=out)


def _hold_and_check(receiver, count, shape, hold, timeout):
    """Child: receive ``count`` frames; hold each ``hold`` seconds (as a reader at work would), then compare it bit for bit."""
    pattern = stream_pattern(shape)
    expected = np.empty_like(pattern)
    intact = []
    try:
        for index in range(count):
            frame = receiver.recv(timeout)
            time.sleep(hold)  # meanwhile the sender keeps sending
            intact.append(bool(frame.dtype == np.uint8 and np.array_equal(frame, stream_frame(pattern, index, expected))))
            del frame
        return intact
    finally:
        receiver.close()


def stream_check(transport, count=100, shape=(240, 320), hold=0.001, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Stream ``count`` distinct uint8 frames from this process to a child that holds each before checking it.

    The sender does what real programs do: it sends frame after frame from one
    reused buffer, without waiting for the reader. The reader holds each frame
    ``hold`` seconds, then compares it bit for bit with the frame that was sent.
    Returns ``{"transport", "start_method", "frames", "intact", "torn"}`` where
    ``torn`` lists the indexes of frames that did not arrive whole.
    """
    transport = get_transport(transport)
    method = resolve_start_method(start_method)
    count = check_count(count, "count")
    check_timeout(timeout)
    if not (isinstance(hold, (int, float)) and 0 <= hold < timeout):
        raise ValueError(f"hold must be a number of seconds from 0 to less than the timeout, not {hold!r}")
    shape = tuple(check_count(n, "shape entry", minimum=0) for n in shape)
    pattern = stream_pattern(shape)
    transport.check_available(pattern.nbytes, method)
    ctx = get_context(method)
    with transport.open(pattern.nbytes, method) as link:
        if transport.send_before_start:  # fork_global: the frames travel by the fork, each its own array
            for index in range(count):
                link.sender.send(stream_frame(pattern, index), timeout)
        args = (link.receiver, count, shape, hold, timeout)
        with _Child(ctx, _hold_and_check, args, timeout, f"hold-and-check:{transport.name}") as child:
            link.receiver.close()
            try:
                if not transport.send_before_start:
                    frame = np.empty_like(pattern)
                    for index in range(count):  # one buffer, refilled for every frame
                        link.sender.send(stream_frame(pattern, index, frame), timeout, peer=child.process)
            except _PEER_GONE as exc:
                raise child.explain(exc) from None
            intact = child.result()
    return {
        "transport": transport.name,
        "start_method": method,
        "frames": count,
        "intact": sum(intact),
        "torn": [index for index, whole in enumerate(intact) if not whole],
    }


# --- timing a hand-off ----------------------------------------------------------------------------


def _timed_receiver(receiver, report, bursts, frames, timeout):
    """Child: receive ``bursts`` bursts of ``frames`` arrays, holding every array of a burst.

    Reports when the burst's last array arrived (the clock stops there), then
    the fingerprint of every array of the burst, computed afterwards, then
    releases them and waits for the next burst.
    """
    try:
        for _ in range(bursts):
            held = [receiver.recv(timeout) for _ in range(frames)]
            report.send(time.perf_counter())
            report.send([fingerprint(array) for array in held])  # checked outside the timed interval
            del held
            receiver.release()
        return bursts
    finally:
        receiver.close()
        report.close()


STAMP_EVERY = 64 * 1024  # bytes between two stamps of a frame's number


def _stamped(array, frames):
    """What to send: ``array`` itself for one frame; else a C-ordered copy and a way to stamp frame k into it.

    The stamp (the frame's number in the first byte of every 64 KiB) makes every
    array of a burst differ from the others, so an array overwritten by a later
    one while the reader holds it cannot pass the check. Stamping is inside the
    timed interval (the sender makes its next array), so it is kept sparse: for
    64 MiB, 1,024 bytes to write against a 64 MiB copy.
    """
    if frames == 1:
        return array, lambda k: None
    source = np.array(array, order="C", copy=True)
    stamps = source.reshape(-1).view(np.uint8)[::STAMP_EVERY]

    def stamp(k):
        stamps[...] = k % 256

    return source, stamp


def hand_off_times(array, transport, start_method=None, repeats=3, timeout=DEFAULT_TIMEOUT, warmup=0, frames=1):
    """Time hand-offs of ``array`` from this process to a child by ``transport``, ``frames`` at a time.

    One measurement is a burst: ``frames`` arrays sent one after the other,
    without waiting for the reader (streaming), while the child receives them
    and holds every one. It runs from just before the first ``send`` here to
    just after the last ``recv`` returns in the child (``time.perf_counter`` is
    the same monotonic clock in every process on Linux), divided by
    ``frames``: seconds per array. With ``frames=1`` that is one lone
    hand-off. Only after the clock stops does the child compute each held
    array's fingerprint; this process compares them with what it sent, so
    ``intact`` is False if any array arrived damaged or was overwritten while
    held. ``warmup`` bursts go first, untimed but checked. ``fork_global``
    sends one array per burst, and its time includes starting the child,
    which is how the data travels.

    Returns a dict with the per-array time of every timed burst, the best, GB/s
    at the best, ``frames``, and ``intact``.
    """
    transport, (array,), method, nbytes = _prepare([array], transport, start_method, timeout)
    repeats = check_count(repeats, "repeats")
    warmup = check_count(warmup, "warmup", minimum=0)
    frames = 1 if transport.send_before_start else check_count(frames, "frames")
    transport.check_available(nbytes, method, hold=frames)
    ctx = get_context(method)
    source, stamp = _stamped(array, frames)
    expected = []
    for k in range(frames):
        stamp(k)
        expected.append(fingerprint(source))
    seconds, intact = [], True
    total = warmup + repeats
    children = [1] * total if transport.send_before_start else [total]  # fork_global: one child per burst
    for bursts in children:
        with transport.open(nbytes, method, hold=frames) as link:
            report_r, report_w = ctx.Pipe(duplex=False)
            try:
                if transport.send_before_start:
                    start = time.perf_counter()
                    link.sender.send(source, timeout)
                args = (link.receiver, report_w, bursts, frames, timeout)
                with _Child(ctx, _timed_receiver, args, timeout, f"receive:{transport.name}") as child:
                    link.receiver.close()
                    report_w.close()
                    try:
                        for _ in range(bursts):
                            if not transport.send_before_start:
                                start = time.perf_counter()
                                for k in range(frames):
                                    stamp(k)
                                    link.sender.send(source, timeout, peer=child.process)
                            arrived = _recv_message(report_r, timeout, child.process, "arrival time")
                            seconds.append((arrived - start) / frames)
                            intact &= _recv_message(report_r, timeout, child.process, "fingerprints") == expected
                    except _PEER_GONE as exc:
                        raise child.explain(exc) from None
                    child.result()
            finally:
                report_r.close()
                report_w.close()
    seconds = seconds[warmup:]
    best = min(seconds)
    return {
        "transport": transport.name,
        "start_method": method,
        "nbytes": nbytes,
        "frames": frames,
        "seconds": seconds,
        "best_s": best,
        "gb_per_s": nbytes / best / 1e9 if best > 0 else float("inf"),
        "intact": bool(intact),
    }


def _send_one(sender, array, timeout):
    """Child A: send one array."""
    try:
        sender.send(array, timeout)
        return True
    finally:
        sender.close()


def _receive_one(receiver, timeout):
    """Child B: receive one array; return its fingerprint."""
    try:
        return fingerprint(receiver.recv(timeout))
    finally:
        receiver.close()


def _send_then_fork_receiver(sender, receiver, array, timeout):
    """Child A for fork_global: "send" (set the global), then fork the receiver, which inherits it."""
    from .run import run_in_child

    sender.send(array, timeout)
    return run_in_child(_receive_one, receiver, timeout, start_method="fork", timeout=timeout)


def hand_off_between_children(array, transport, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Send ``array`` from one child (A) to another (B) by ``transport``; return the fingerprint B received.

    The parent only makes the link and hands one end to each child when it
    starts them. For ``fork_global``, A forks B itself after sending.
    """
    from .run import run_in_child, run_many

    transport, (array,), method, nbytes = _prepare([array], transport, start_method, timeout)
    with transport.open(nbytes, method) as link:
        if transport.send_before_start:
            return run_in_child(
                _send_then_fork_receiver, link.sender, link.receiver, array, timeout, start_method=method, timeout=timeout
            )
        calls = [(_send_one, (link.sender, array, timeout)), (_receive_one, (link.receiver, timeout))]
        return run_many(calls, start_method=method, timeout=timeout)[1]


def compare_transports(nbytes=4 * MiB, start_method=None, repeats=3, transports=None, timeout=DEFAULT_TIMEOUT,
                       frames=1):
    """Time every transport (or those named) on one float64 array of about ``nbytes``.

    Returns one record per transport: :func:`hand_off_times`' dict, or
    ``{"transport", "skipped": reason}`` when it cannot or should not run here.
    """
    nbytes = check_count(nbytes, "nbytes", minimum=8)
    method = resolve_start_method(start_method)
    array = np.arange(nbytes // 8, dtype=np.float64)
    records = []
    for name in transports or TRANSPORTS:
        transport = get_transport(name)
        reason = transport.unavailable_reason(array.nbytes, method, hold=frames)
        if reason:
            records.append({"transport": transport.name, "start_method": method, "nbytes": array.nbytes, "skipped": reason})
        else:
            records.append(hand_off_times(array, transport, method, repeats, timeout, frames=frames))
    return records


def rawarray_fill_seconds(n=1_000_000, repeats=3):
    """The seed's claim, measured in one process: seconds to make a RawArray('d') of ``n`` values two ways."""
    n = check_count(n, "n")
    repeats = check_count(repeats, "repeats")
    values = np.arange(n, dtype=np.float64)
    times = {}
    for label, by_sequence in (("RawArray('d', sequence)", True), ("RawArray('d', n) + numpy copy", False)):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            raw = to_rawarray(values, "d", by_sequence=by_sequence)
            best = min(best, time.perf_counter() - start)
            assert np.array_equal(from_rawarray(raw, values.shape, values.dtype, copy=False), values)
            del raw
        times[label] = best
    return times


# --- many arrays in one buffer ----------------------------------------------------------------------

PackedEntry = namedtuple("PackedEntry", "offset shape dtype")
Layout = namedtuple("Layout", "entries nbytes")
Layout.__doc__ = "Where each packed array lives: a tuple of PackedEntry(offset, shape, dtype), and the total bytes."


def layout_of(arrays):
    """The :class:`Layout` that :func:`pack` would use: offsets rounded up to 64 bytes, in list order."""
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, (list, tuple)):
        raise TypeError(f"pack takes a list (or tuple) of numpy arrays, not {type(arrays).__name__}; for one array use [array]")
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
    for entry, array in zip(layout.entries, arrays):
        shm.array_in(into, entry.shape, entry.dtype, entry.offset)[...] = array
    return into, layout


def unpack(buffer, layout, copy=True):
    """The arrays :func:`pack` put in ``buffer``: copies by default, views sharing its memory with ``copy=False``."""
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be the Layout returned by pack() or layout_of(), not {type(layout).__name__}")
    arrays = [shm.array_in(buffer, e.shape, e.dtype, e.offset) for e in layout.entries]
    return [a.copy() for a in arrays] if copy else arrays


def _repack_in_child(packed, layout, back):
    """Child: read the packed arrays in place and pack them into the buffer for the way back."""
    arrays = unpack(packed, layout, copy=False)
    pack(arrays, into=back)
    return [fingerprint(a) for a in arrays]


def packed_round_trip(arrays, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Pack ``arrays`` into a RawArray, let a child unpack them and pack them into a second one; unpack that.

    Returns ``(arrays_back, fingerprints_the_child_saw)``. Both RawArrays are
    made here, before the child starts, because that is the only time they can travel.
    """
    from .run import run_in_child

    packed, layout = pack(arrays, start_method=start_method)
    back = get_context(start_method).RawArray("B", max(layout.nbytes, 1))
    seen = run_in_child(_repack_in_child, packed, layout, back, start_method=start_method, timeout=timeout)
    return unpack(back, layout), seen
