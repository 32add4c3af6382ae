"""The ordered pipeline's children, and what they and main speak over the pipes.

``ipckit.pipeline`` is main's side and the public API; this module holds what
the producer and consumer processes run (so a spawned child imports only
this), the framing of messages over raw pipes, and the *lifeline* that ties
every child to main: a pipe whose only write end main holds, watched by a
thread in each child that ends the process at end-of-file. It works under
fork, spawn and forkserver alike, whichever thread started the children
(``PR_SET_PDEATHSIG`` would fire when that *thread* exits).

What a child does that may fail is named in its error record ("on item 4",
"while pickling the result of item 4"), so the caller's exception says it.
"""
import os
import pickle
import selectors
import signal
import struct
import threading
import time
import weakref
from collections import deque
from multiprocessing.connection import Connection

import numpy as np

from .run import error_record

SHARED_MEMORY_THRESHOLD = 64 * 1024  # bytes; smaller arrays are cheaper to pickle


# --- what crosses the pipes -----------------------------------------------------------

_HEADER = struct.Struct("!Q")  # the length of the pickle that follows


class _Channel:
    """Messages over one end of a Pipe: a length, then a pickle.

    ``Connection.send`` / ``recv`` build a ForkingPickler per message and make two
    system calls per receive. A pipeline message is a small tuple, so here the C
    pickler writes it in one call, and a read takes whatever has arrived (often
    several messages at once) into a buffer that :meth:`messages` empties.
    """

    def __init__(self, conn):
        self.conn = conn
        self._fd = conn.fileno()
        self._buffer = bytearray()

    @staticmethod
    def frame(message):
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        return _HEADER.pack(len(data)) + data

    def send(self, message):
        view = memoryview(self.frame(message))  # pickled whole first: a failure writes nothing
        while view:
            view = view[os.write(self._fd, view):]

    def fill(self):
        """Read what has arrived (call it when the pipe is readable); EOFError at its end."""
        chunk = os.read(self._fd, 1 << 16)
        if not chunk:
            raise EOFError
        self._buffer += chunk

    def has_message(self):
        if len(self._buffer) < _HEADER.size:
            return False
        return len(self._buffer) >= _HEADER.size + _HEADER.unpack_from(self._buffer)[0]

    def take(self):
        """The next whole message in the buffer (check :meth:`has_message` first)."""
        end = _HEADER.size + _HEADER.unpack_from(self._buffer)[0]
        try:
            with memoryview(self._buffer) as view, view[_HEADER.size:end] as data:
                return pickle.loads(data)
        finally:
            del self._buffer[:end]  # cheap: a bytearray drops its front without moving the rest

    def messages(self):
        """Fill once, then yield every whole message that has arrived."""
        self.fill()
        while self.has_message():
            yield self.take()


class _Outbox(_Channel):
    """Main's channel to the producer: never blocks main.

    A producer busy in its own code reads nothing, so a blocking write of one
    message too many would stop main, and with it every consumer. Messages wait
    here instead, and go out when the pipe has room (main then waits for
    "writable" too). A new allowance replaces one still waiting: only the
    highest counts.
    """

    def __init__(self, conn):
        super().__init__(conn)
        os.set_blocking(self._fd, False)
        self.waiting = deque()
        self.closed = False

    def post(self, message):
        if self.closed:
            return
        if message[0] == "allow" and self.waiting and self.waiting[-1][0] == "allow":
            self.waiting[-1] = message
        else:
            self.waiting.append(message)
        self.flush()

    def flush(self):
        """Write what fits; return True while something is still waiting."""
        while self.waiting and not self.closed:
            frame = self.frame(self.waiting[0])  # small: a write of it is all or nothing
            try:
                os.write(self._fd, frame)
            except BlockingIOError:
                return True
            except (BrokenPipeError, ConnectionResetError):  # the producer has finished or died
                self.closed = True
                self.waiting.clear()
                return False
            self.waiting.popleft()
        return False


class _Orphaned(Exception):
    """Main has closed its end: a child stops quietly."""


class _FromMain(_Channel):
    """A child's end of its pipe from main."""

    def __init__(self, conn):
        super().__init__(conn)
        self._watch = _Watch([conn])

    def waiting(self):
        """True if a message is here or has arrived (``conn.poll(0)`` would build a selector per call)."""
        if not self.has_message() and self._watch.ready(0):
            self._fill_or_orphan()
        return self.has_message()

    def recv(self):
        """The next message; raises _Orphaned if main has closed its end."""
        while not self.has_message():
            self._fill_or_orphan()  # blocks until something arrives
        return self.take()

    def _fill_or_orphan(self):
        try:
            self.fill()
        except (EOFError, ConnectionResetError):
            raise _Orphaned from None


class _Watch:
    """Wait on several pipes and sentinels, like ``multiprocessing.connection.wait``, many times over.

    ``connection.wait`` builds a new selector on every call; the pipeline waits
    once per message, so it keeps one selector and registers each handle once.
    """

    def __init__(self, handles):
        self._selector = selectors.DefaultSelector()
        for handle in handles:
            self._selector.register(handle, selectors.EVENT_READ)

    def forget(self, handle):
        self._selector.unregister(handle)

    def want_write(self, handle, wanted):
        """Also wake when ``handle`` can be written to (while ``wanted``)."""
        registered = handle in self._keys()
        if wanted and not registered:
            self._selector.register(handle, selectors.EVENT_WRITE)
        elif not wanted and registered:
            self._selector.unregister(handle)

    def _keys(self):
        return {key.fileobj for key in self._selector.get_map().values()}

    def ready(self, timeout=None):
        return [key.fileobj for key, _ in self._selector.select(timeout)]

    def close(self):
        self._selector.close()


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


def _new_lifeline():
    """A pipe main never writes to: main keeps the write end (an fd), children get the read end.

    Its write end is not inherited by exec'd programs (``os.pipe`` makes it so)
    and is closed in every forked process, so end-of-file on the read end means
    main has gone. Unlike ``PR_SET_PDEATHSIG``, which fires when the *thread*
    that forked exits, this does not care which thread started the children.
    """
    read_fd, write_fd = os.pipe()
    _LIFELINES.add(write_fd)
    return write_fd, Connection(read_fd, writable=False)  # a Connection travels to spawn and forkserver children


def _end_lifeline(write_fd):
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


# --- the children ---------------------------------------------------------------------


def _is_big_array(value):
    """Plain numpy arrays of numbers go through slots (a subclass would lose its type there)."""
    return type(value) is np.ndarray and value.dtype.kind in "biufc" and value.nbytes >= SHARED_MEMORY_THRESHOLD


def _fits(pool, array):
    return pool is not None and array.nbytes <= pool.slot_bytes


def _report(channel, exc, doing):
    """Send an exception to main; if main has already gone, there is no one left to tell."""
    try:
        channel.send(error_record(exc, doing))
    except OSError:
        pass


def _run_producer(produce, args, out, control, lifeline, bounded, timed, close_fds):
    out = _Channel(out)
    pool = None
    doing = "while starting"
    try:
        _become_a_worker(close_fds, lifeline)
        from_main = _FromMain(control)
        allowed, slots, no_pool = 0, deque(), False

        def take(message):
            nonlocal allowed, pool, no_pool
            kind, value = message
            if kind == "allow":
                allowed = max(allowed, value)
            elif kind == "slot":
                slots.append(value)
            elif kind == "pool":
                pool, no_pool = value, value is None

        def wait_until(condition):
            while not condition():
                take(from_main.recv())

        sent = 0
        doing = "in produce(), before the first item"
        for item in produce(*args):
            produced = time.perf_counter() if timed else 0.0
            while from_main.waiting():
                take(from_main.take())
            if bounded:  # backpressure: wait for main to make room
                wait_until(lambda: sent < allowed)
            big = _is_big_array(item)
            if big and pool is None and not no_pool:  # the first big array: ask main for slots of its size
                out.send(("slots?", item.nbytes))
                wait_until(lambda: pool is not None or no_pool)
                while from_main.waiting():  # the slots granted with the pool
                    take(from_main.take())
            if big and bounded and _fits(pool, item):
                wait_until(lambda: bool(slots))  # room was granted, so a slot comes free
            slot = None
            if big and slots and _fits(pool, item):
                slot = slots.popleft()
                item = pool.write(slot, item)  # what travels is the slot's ArrayRef
            doing = f"while pickling item {sent}"
            blob = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)  # main forwards it unopened
            del item
            out.send(("item", sent, produced, time.perf_counter() if timed else 0.0, blob, slot, big and slot is None))
            doing = f"in produce(), after item {sent}"
            sent += 1
        out.send(("done", sent))
    except _Orphaned:
        pass
    except BaseException as exc:
        _report(out, exc, doing)
    finally:
        if pool is not None:
            pool.close()


def _pack_result(result, pool, ref, item_view):
    """Put a big array result back in the item's slot; anything else travels pickled.

    Returns (payload, slotted).
    """
    if not _is_big_array(result) or result.nbytes > pool.slot_bytes:
        return result, False
    if (
        result.shape == item_view.shape
        and result.dtype == item_view.dtype
        and result.__array_interface__["data"][0] == item_view.__array_interface__["data"][0]
        and result.strides == item_view.strides
    ):
        return ref, True  # consume returned its input: the result is already in the slot
    return pool.write(ref.slot, result), True  # numpy copes with a result that overlaps the slot


def _run_consumer(consume, conn, lifeline, timed, close_fds):
    from_main = _Channel(conn)  # both ways: a duplex pipe
    pool = None
    doing = "while starting"
    try:
        _become_a_worker(close_fds, lifeline)
        from_main = _FromMain(conn)
        while True:
            doing = "while waiting for an item"
            message = from_main.recv()
            if message[0] == "stop":
                return
            _, seq, blob, slot, new_pool = message
            if new_pool is not None:
                pool = new_pool
            doing = f"while unpickling item {seq}"
            payload = pickle.loads(blob)
            doing = f"on item {seq}"
            started = time.perf_counter() if timed else 0.0
            if slot is not None:
                with pool.view(payload) as item:
                    result, result_slotted = _pack_result(consume(item), pool, payload, item)
                    del item
            else:
                result, result_slotted = consume(payload), False
            finished = time.perf_counter() if timed else 0.0
            doing = f"while pickling the result of item {seq}"
            from_main.send(("result", seq, started, finished, result, result_slotted))
            del payload, result
    except _Orphaned:
        pass
    except BaseException as exc:
        _report(from_main, exc, doing)
    finally:
        if pool is not None:
            pool.close()
