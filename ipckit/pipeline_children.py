"""The ordered pipeline's children: what the producer and the consumers run.

``ipckit.pipeline`` is main's side and the public API; this module holds what
the producer and consumer processes run (so a spawned child imports only this
and ``ipckit.pipeline_wire``, the frames that cross the pipes), and the
*lifeline* that ties every child to main: a pipe whose only write end main
holds, watched by a thread in each child that ends the process at
end-of-file. It works under fork, spawn and forkserver alike, whichever
thread started the children (``PR_SET_PDEATHSIG`` would fire when that
*thread* exits).

What a child does that may fail is named in its error record ("on item 4",
"while pickling the result of item 4"), so the caller's exception says it.
"""
import functools
import math
import os
import pickle
import queue
import select
import signal
import threading
import time
import weakref
from collections import deque
from multiprocessing.connection import Connection

import numpy as np

from .errors import error_record
from .pipeline_wire import (
    BATCH,
    BIG_PICKLED,
    DONE,
    ERROR,
    HEADER,
    IN_SLOT,
    ITEM,
    LIST,
    POOL,
    RESULT,
    SLOT,
    STOP,
    WAITED,
    WANT_POOL,
    WANT_SLOT,
    Reader,
    frame,
)
from .shm import ArrayRef
from .watch import write_all

SHARED_MEMORY_THRESHOLD = 64 * 1024  # bytes; smaller arrays are cheaper to pickle
HOLD_RESULTS_AT_MOST = 0.001  # seconds a consumer holds a result while it works on items that came with it

# --- children die with main: the lifeline ---------------------------------------------

_LIFELINES = set()  # main's write ends of every live pipeline's lifeline
_LIVE = weakref.WeakSet()  # the machinery (_Core) of every pipeline made in this process, for the exit hook


def _forget_pipelines_in_child():
    """Run in every process forked from here: main alone holds the lifelines' write ends, and stops its pipelines."""
    for fd in list(_LIFELINES):
        try:
            os.close(fd)
        except OSError:
            pass
    _LIFELINES.clear()
    _LIVE.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pipelines_in_child)


def new_lifeline():
    """A pipe main never writes to: main keeps the write end (an fd), children get the read end.

    Its write end is not inherited by exec'd programs (``os.pipe`` makes it so)
    and is closed in every forked process, so end-of-file on the read end means
    main has gone. Unlike ``PR_SET_PDEATHSIG``, which fires when the *thread*
    that forked exits, this does not care which thread started the children.
    """
    read_fd, write_fd = os.pipe()
    _LIFELINES.add(write_fd)
    return write_fd, Connection(read_fd, writable=False)  # a Connection travels to spawn and forkserver children


def end_lifeline(write_fd):
    _LIFELINES.discard(write_fd)  # forget it first: a fork in between must not close a reused number
    os.close(write_fd)


def _watch_lifeline(lifeline):
    """Child: a thread that ends this process the moment main's end of the lifeline closes."""

    def watch():
        try:
            os.read(lifeline.fileno(), 1)  # main never writes: this returns at end-of-file
        finally:
            os._exit(0)  # main has gone; nobody is left to report to

    threading.Thread(target=watch, name="ipckit-lifeline", daemon=True).start()


def _become_a_worker(close_fds, lifeline):
    """Set a child up: leave Ctrl-C to main, close main's ends of pipes inherited by fork, die with main.

    Under fork a child also inherits its parent's ends of its own pipes; holding
    them, it would never see end-of-file from a parent that died.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Jupyter's interrupt: main stops the children in order
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    _watch_lifeline(lifeline)


class _Orphaned(Exception):
    """Main has closed its end: a child stops quietly."""


def _report(fd, exc, doing, held=()):
    """Send the results not sent yet, then an exception, to main (if main has gone, no one is left to tell)."""
    error = frame(ERROR, body=pickle.dumps(error_record(exc, doing), protocol=pickle.HIGHEST_PROTOCOL))
    try:
        write_all(fd, b"".join([*held, error]))
    except OSError:
        pass


def _is_big_array(value):
    """Plain numpy arrays of numbers go through slots (a subclass would lose its type there)."""
    return type(value) is np.ndarray and value.dtype.kind in "biufc" and value.nbytes >= SHARED_MEMORY_THRESHOLD


class _SlotBytes:
    """Every slot of a pool as a writable uint8 array, made once per slot.

    ``SlotPool.write`` and ``SlotPool.view`` check their arguments and build a
    view on every call (about 20 µs for a 77 KB frame, ten times the copy
    itself); a child that moves thousands of items per second keeps one view
    per slot instead, made through the pool's own ``view``, and cuts arrays
    from it.
    """

    def __init__(self, pool):
        self.pool = pool
        self._views = {}
        self._opened = []  # the pool's view contexts, left when the pool closes

    def _slot(self, slot):
        view = self._views.get(slot)
        if view is None:
            context = self.pool.view(self.pool.ref(slot, (self.pool.slot_bytes,), np.uint8))
            view = self._views[slot] = context.__enter__()
            self._opened.append(context)
        return view

    def array(self, ref):
        """The array ``ref`` (an ArrayRef made by this pool) describes, in place."""
        dtype = np.dtype(ref.dtype)
        start = ref.offset - ref.slot * self.pool.stride
        nbytes = math.prod(ref.shape) * dtype.itemsize
        return self._slot(ref.slot)[start:start + nbytes].view(dtype).reshape(ref.shape)

    def write(self, slot, array):
        """Copy ``array`` into ``slot``; return its ArrayRef (what travels)."""
        target = self._slot(slot)[:array.nbytes].view(array.dtype).reshape(array.shape)
        np.copyto(target, array, casting="no")
        return ArrayRef(self.pool.name, slot * self.pool.stride, array.shape, array.dtype.str, slot)

    def close(self):
        self._views.clear()
        for context in self._opened:
            context.__exit__(None, None, None)
        self._opened.clear()
        self.pool.close()


# --- the producer -----------------------------------------------------------------------


class _Credits:
    """The producer's allowance: hand-off ``n`` may leave only while ``n < allowed``.

    It starts at the pipeline's capacity; the caller's thread in main writes a
    byte for every hand-off whose results its loop has taken. The producer
    reads them only when it has used its allowance, so the kernel wakes it
    only then.
    """

    def __init__(self, conn, capacity):
        self.fd = None if conn is None else conn.fileno()
        self.allowed = float("inf") if capacity is None else capacity

    def wait_for(self, n):
        while self.fd is not None and n >= self.allowed:
            got = os.read(self.fd, 1 << 16)
            if not got:
                raise _Orphaned
            self.allowed += len(got)


class _Slots:
    """The producer's side of the slot pool: main sends the pool once asked, then every free slot."""

    def __init__(self, conn, send):
        self.reader = Reader(conn.fileno(), 1 << 12)
        self.send = send  # writes a frame to main
        self.poll = select.poll()
        self.poll.register(conn.fileno(), select.POLLIN)
        self.free = deque()
        self.pool = None
        self.asked = False  # WANT_POOL sent
        self.known = False  # main has answered it (pool may still be None: no room)

    def _take(self, block):
        if not block and not self.poll.poll(0):
            return
        try:
            frames = self.reader.read()
        except (EOFError, ConnectionResetError):
            raise _Orphaned from None
        for entry in frames:
            if entry.kind == POOL:
                pool, self.known = pickle.loads(entry.body), True
                self.pool = None if pool is None else _SlotBytes(pool)
            elif entry.kind == SLOT:
                self.free.append(entry.slot)

    def place(self, array):
        """Put a big array in a slot; return (what travels, slot, flags)."""
        if not self.asked:
            self.asked = True
            self.send(frame(WANT_POOL, seq=array.nbytes))
        while not self.known:
            self._take(block=True)
        if self.pool is None or array.nbytes > self.pool.pool.slot_bytes:
            return array, -1, BIG_PICKLED
        flags = 0
        if not self.free:
            self._take(block=False)
        if not self.free:  # every slot is in use: wait for one (never pickle for lack of a slot)
            flags = WAITED
            self.send(frame(WANT_SLOT))
            while not self.free:
                self._take(block=True)
        slot = self.free.popleft()
        return self.pool.write(slot, array), slot, flags

    def close(self):
        if self.pool is not None:
            self.pool.close()


def _clock(timed):
    return time.perf_counter() if timed else 0.0


def _run_producer(produce, args, out, control, credits, lifeline, capacity, chunksize, timed, close_fds):
    """The producer process: run ``produce(*args)``, send each item (or batch) once allowed."""
    out_fd = out.fileno()
    slots = None
    doing, at = "while starting", None  # what it does, said on an error: "...{}".format(at), never per item
    try:
        _become_a_worker(close_fds, lifeline)
        allowance = _Credits(credits, capacity)
        if chunksize > 1:
            send = _LockedWriter(out_fd)  # two threads write to main: whole frames, one at a time
            slots = _Slots(control, send)
            _produce_in_batches(produce, args, send, slots, allowance, chunksize, timed)
            return
        slots = _Slots(control, functools.partial(write_all, out_fd))
        dumps, protocol, pack, clock, seq = pickle.dumps, pickle.HIGHEST_PROTOCOL, HEADER.pack, time.perf_counter, 0
        doing = "in produce(), before the first item"
        for item in produce(*args):  # the loop runs once per item: it is kept lean
            produced = clock() if timed else 0.0
            slot, flags = -1, 0
            if type(item) is np.ndarray and _is_big_array(item):
                allowance.wait_for(seq)  # a credit first, then a slot: a slot is only taken for an item that may go
                item, slot, flags = slots.place(item)  # what travels is the slot's ArrayRef
            doing, at = "while pickling item {}", seq
            body = dumps(item, protocol)  # main forwards it unopened
            del item
            if seq >= allowance.allowed:
                allowance.wait_for(seq)  # backpressure: wait until the caller's loop has made room
            write_all(out_fd, pack(len(body), ITEM, flags, 1, slot, seq, produced, clock() if timed else 0.0) + body)
            doing = "in produce(), after item {}"
            seq += 1
        write_all(out_fd, frame(DONE, seq))
    except (_Orphaned, BrokenPipeError):
        pass
    except BaseException as exc:
        _report(out_fd, exc, doing.format(at))
    finally:
        if slots is not None:
            slots.close()


class _LockedWriter:
    """``write_all`` to one pipe from several threads, a whole frame at a time."""

    def __init__(self, fd):
        self.fd = fd
        self.lock = threading.Lock()

    def __call__(self, data):
        with self.lock:
            write_all(self.fd, data)


class _Pickled:
    """An item in a batch that was pickled at once, as it was yielded (it may be changed later)."""

    __slots__ = ("blob",)

    def __init__(self, blob):
        self.blob = blob


class _Alone:
    """A big array, which travels as a hand-off of its own (in its slot, or pickled)."""

    __slots__ = ("body", "slot", "flags")

    def __init__(self, body, slot, flags):
        self.body, self.slot, self.flags = body, slot, flags


class _Last:
    """The last frame the producer sends: the end of the stream, or its error."""

    __slots__ = ("frame",)

    def __init__(self, frame):
        self.frame = frame


QUEUED_BATCHES = 2  # batches' worth of items the producer makes ahead of its sender thread
_PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None)})  # cannot change once yielded


class _Batcher:
    """The producer's sender thread with ``chunksize > 1``: batches of what is ready, never a wait for more.

    The main thread runs ``produce`` and queues each item: a number, string or
    bytes as it is (it cannot change), anything else pickled at once (a
    generator may change an object it yielded), a big array as a frame of its
    own. This thread takes whatever is queued, up to ``chunksize`` items, as
    one batch, as soon as it has a credit for it: a fast producer fills batches
    while this thread writes, a slow one sends each item alone, and no item
    waits for a batch to fill.
    """

    def __init__(self, send, allowance, chunksize, timed):
        self.send, self.allowance, self.chunksize, self.timed = send, allowance, chunksize, timed
        self.queued = deque()  # items, _Pickled, _Alone, then a _Last
        self.times = deque()  # when each queued item was produced (with the timeline only)
        self.ready = queue.SimpleQueue()  # tokens: something was queued (this thread waits on it)
        self.room = queue.SimpleQueue()  # tokens: room was made (the producer waits on it)
        self.sender_waits = self.producer_waits = False
        self.gone = False  # this thread has stopped (main closed its end)
        self.thread = threading.Thread(target=self._send, name="ipckit-batcher", daemon=True)
        self.thread.start()

    def wake_sender(self):
        if self.sender_waits:
            self.sender_waits = False
            self.ready.put(None)

    def wait_for_room(self):
        """Block while ``QUEUED_BATCHES`` batches' worth are queued (the sender is busy, or waits for a
        credit). The sender wakes this thread only once a batch or less is left, so that it then makes
        several batches in one go rather than one wake-up per batch."""
        while len(self.queued) >= QUEUED_BATCHES * self.chunksize and not self.gone:
            self.producer_waits = True
            if len(self.queued) >= QUEUED_BATCHES * self.chunksize and not self.gone:
                self.room.get()
            self.producer_waits = False
        if self.gone:
            raise _Orphaned

    def finish(self, last_frame):
        """Send what is queued, then ``last_frame`` (the end of the stream or an error); wait for it."""
        self.queued.append(_Last(last_frame))
        self.wake_sender()
        self.thread.join()

    def _send(self):
        queued, times, chunksize, send, timed = self.queued, self.times, self.chunksize, self.send, self.timed
        handoff = seq = 0
        dumps, protocol = pickle.dumps, pickle.HIGHEST_PROTOCOL
        try:
            while True:
                while not queued:
                    self.sender_waits = True
                    if not queued:
                        self.ready.get()
                    self.sender_waits = False
                first = queued[0]
                if type(first) is _Last:
                    send(first.frame)
                    return
                self.allowance.wait_for(handoff)
                if type(first) is _Alone:
                    queued.popleft()
                    produced = times.popleft() if timed else 0.0
                    data = frame(ITEM, seq, first.body, first.flags, 1, first.slot, produced, _clock(timed))
                    count = 1
                else:
                    popleft = queued.popleft
                    values = [popleft() for _ in range(min(chunksize, len(queued)))]
                    pickled = []
                    if not set(map(type, values)) <= _PLAIN:
                        values, pickled = _unwrap(values, queued)
                    count = len(values)
                    produced = times.popleft() if timed else 0.0
                    for _ in range(count - 1 if timed else 0):
                        times.popleft()
                    body = dumps((values, pickled), protocol)
                    data = HEADER.pack(len(body), BATCH, 0, count, -1, seq, produced, _clock(timed)) + body
                if self.producer_waits and len(queued) <= chunksize:
                    self.producer_waits = False
                    self.room.put(None)
                send(data)
                handoff += 1
                seq += count
        except (_Orphaned, OSError):
            pass
        finally:
            self.gone = True
            self.room.put(None)


def _unwrap(values, queued):
    """A batch with more than plain values in it: cut it before a big array or the end (they go
    back to the queue's front), and unwrap the items pickled one by one (their places are returned)."""
    for index, value in enumerate(values):
        if type(value) in (_Alone, _Last):
            queued.extendleft(reversed(values[index:]))
            values = values[:index]
            break
    pickled = [index for index, value in enumerate(values) if type(value) is _Pickled]
    for index in pickled:
        values[index] = values[index].blob
    return values, pickled


def _produce_in_batches(produce, args, send, slots, allowance, chunksize, timed):
    batcher = _Batcher(send, allowance, chunksize, timed)
    queued, times, plain = batcher.queued, batcher.times, _PLAIN
    dumps, protocol, seq = pickle.dumps, pickle.HIGHEST_PROTOCOL, 0
    limit = QUEUED_BATCHES * chunksize
    doing = None  # what failed, if not produce() itself (said lazily: an f-string per item is too dear here)
    try:
        for item in produce(*args):
            if timed:
                times.append(time.perf_counter())
            if type(item) in plain:
                queued.append(item)
            elif _is_big_array(item):
                doing = f"while placing item {seq} in shared memory"
                ref, slot, flags = slots.place(item)
                doing = f"while pickling item {seq}"
                queued.append(_Alone(dumps(ref, protocol), slot, flags))
                doing = None
            else:
                doing = f"while pickling item {seq}"
                queued.append(_Pickled(dumps(item, protocol)))
                doing = None
            del item
            seq += 1
            if batcher.sender_waits:
                batcher.wake_sender()
            if len(queued) >= limit:
                batcher.wait_for_room()
    except _Orphaned:
        raise
    except BaseException as exc:  # after the items before it, like any other end
        if doing is None:
            doing = f"in produce(), after item {seq - 1}" if seq else "in produce(), before the first item"
        batcher.finish(frame(ERROR, body=pickle.dumps(error_record(exc, doing), protocol)))
        return
    batcher.finish(frame(DONE, seq))


# --- the consumers ----------------------------------------------------------------------


def _in_slot(result, slots, ref):
    """Where a big array result goes back: (what travels, True), or (result, False) to pickle it.

    A result that lies in the item's slot already (the input, mutated in place,
    or a contiguous part of it) travels as a ref, with no copy at all; any
    other array of numbers that fits is copied into the item's slot.
    """
    slot_bytes = slots.pool.slot_bytes
    if not _is_big_array(result) or result.nbytes > slot_bytes:
        return result, False
    base = ref.slot * slots.pool.stride
    start = result.__array_interface__["data"][0] - slots._slot(ref.slot).__array_interface__["data"][0]
    if result.flags.c_contiguous and 0 <= start and start + result.nbytes <= slot_bytes:
        return ArrayRef(ref.name, base + start, result.shape, result.dtype.str, ref.slot), True
    return slots.write(ref.slot, result), True  # numpy copes with a result that overlaps the slot


def _run_consumer(consume, conn, lifeline, timed, hold, close_fds):
    """A consumer process: take items (one at a time, or a few ahead with prefetch) and send results in order.

    The results of items that came in one read (with prefetch, or after a
    wait) go back in one write, so main wakes once for them, unless the
    first of them has waited ``HOLD_RESULTS_AT_MOST`` (then what is done goes
    at once). In the strict hand-off a consumer holds one item: nothing waits.
    With a timeout (``hold`` False) every result goes at once: main times each
    item from the result before it.
    """
    fd = conn.fileno()
    slots = None
    doing, at = "while starting", None  # what it does, said on an error: "...{}".format(at), never per item
    dumps, loads, protocol = pickle.dumps, pickle.loads, pickle.HIGHEST_PROTOCOL
    pack, clock = HEADER.pack, time.perf_counter
    held = []  # results not sent yet
    try:
        _become_a_worker(close_fds, lifeline)
        reader = Reader(fd)
        while True:
            doing = "while waiting for an item"
            try:
                frames = reader.read()  # blocks until main sends something
            except (EOFError, ConnectionResetError):
                return
            held_since, held = clock(), []
            for entry in frames:
                kind, count, slot, seq, body = entry.kind, entry.count, entry.slot, entry.seq, entry.body
                if kind == STOP:
                    return
                if kind == POOL:
                    slots = _SlotBytes(loads(body))
                    continue
                if kind == ITEM:
                    doing, at = "while unpickling item {}", seq
                    payload = loads(body)
                    doing = "on item {}"
                    started = clock() if timed else 0.0
                    flags = 0
                    if slot >= 0:
                        result, in_slot = _in_slot(consume(slots.array(payload)), slots, payload)
                        flags = IN_SLOT if in_slot else 0
                    else:
                        result = consume(payload)
                    finished = clock() if timed else 0.0
                    doing = "while pickling the result of item {}"
                    body = dumps(result, protocol)
                else:  # a batch: its results travel back together, as a list
                    values, pickled = loads(body)
                    for place in pickled:  # the items that were pickled one by one
                        doing, at = "while unpickling item {}", seq + place
                        values[place] = loads(values[place])
                    started = _clock(timed)
                    results = []
                    try:
                        results.extend(map(consume, values))  # on an error, the results before it are in
                    except BaseException as exc:
                        raise _Failed(exc, f"on item {seq + len(results)}") from None
                    finished = _clock(timed)
                    flags, payload, result = LIST, 0, 0
                    body = _pickle_results(results, seq)
                del payload, result
                held.append(pack(len(body), RESULT, flags, count, slot, seq, started, finished) + body)
                if not hold or clock() - held_since > HOLD_RESULTS_AT_MOST:
                    write_all(fd, held[0] if len(held) == 1 else b"".join(held))
                    held.clear()
                    held_since = clock()
            if held:  # every item of this read is done: its results go back together
                write_all(fd, held[0] if len(held) == 1 else b"".join(held))
    except _Failed as failed:
        _report(fd, failed.error, failed.doing, held)
    except BaseException as exc:
        _report(fd, exc, doing.format(at), held)
    finally:
        if slots is not None:
            slots.close()


def _pickle_results(results, seq):
    """A batch's results as one pickle; if one will not pickle, fail naming its item."""
    try:
        return pickle.dumps(results, pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:
        for index, result in enumerate(results):
            try:
                pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
            except BaseException as single:
                raise _Failed(single, f"while pickling the result of item {seq + index}") from None
        raise _Failed(exc, f"while pickling the results of items {seq} to {seq + len(results) - 1}") from None


class _Failed(Exception):
    """An exception, and what the child was doing: raised where ``doing`` alone cannot say which item."""

    def __init__(self, error, doing):
        super().__init__(doing)
        self.error, self.doing = error, doing
