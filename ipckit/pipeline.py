"""The ordered pipeline: producer -> main -> idle consumers, results in hand-off order.

::

    with OrderedPipeline(produce, consume, consumers=2, buffer=4) as pipe:
        for result in pipe:       # in hand-off order, each as soon as it and all earlier ones are done
            ...
    pipe.timeline                  # what happened when, for ipckit.plots.plot_timeline

How it works. The producer process runs ``produce(*produce_args)`` and sends
each item to main the moment it is yielded. A thread in main (the dispatcher)
waits on every pipe *and* every child's sentinel at once (as
``multiprocessing.connection.wait`` does, with one kept selector). It hands an item to a consumer only when
that consumer is idle (each holds at most one item), keeps the rest in a FIFO,
numbers items in hand-off order, and re-orders the results. A child that raises
becomes :class:`WorkerError`, one that dies becomes :class:`WorkerDied`, in the
caller's loop, and every other child is stopped.

Backpressure. With ``buffer=N`` the producer may only send an item when main
grants it a credit; credits are capped so that at most ``N + consumers`` items
are in the system (buffered, at a consumer, or done but not yet taken by the
caller's loop). The producer then waits instead of memory growing.

Big arrays. A numpy array of at least ``SHARED_MEMORY_THRESHOLD`` bytes, as an
item or a result, travels through a reused shared-memory slot
(:class:`ipckit.shm.SlotPool`, owned by main); only a small reference crosses
the pipes. Inside ``consume`` such an item is a view into its slot, valid
during the call: copy it if you keep it. A result goes back in the item's slot
(no copy at all when ``consume`` returns its input). The caller's loop gets
such a result in its slot, without a copy, on loan: the slot is reused once
the result and every view of it are dropped. While the caller holds
``LENT_AT_MOST`` of them, further results are copied out (with ``pread``, so
the slots' pages do not count in main's memory) and their slots reused at once.
Slots are sized by the first big array; arrays that do not fit a slot, or
arrive when no slot is free, are pickled through the pipe instead;
:attr:`OrderedPipeline.stats` counts both ways. Where ``/dev/shm`` is short
(a container's 64 MiB), the pool takes fewer slots, or none.

Main never blocks on a child that is busy in its own code: its messages to the
producer wait in an outbox until the pipe has room, and the caller's thread
only rings a doorbell. Children ignore Ctrl-C (main stops them in order) and,
under fork on Linux, die with main.
"""
import os
import pickle
import queue
import selectors
import signal
import struct
import sys
import threading
import time
import weakref
from collections import deque, namedtuple
from multiprocessing import parent_process

import numpy as np

from .checks import check_count
from .context import get_context, require_importable, resolve_start_method
from .run import WorkerDied, WorkerError, error_record
from .shm import NotEnoughSharedMemory, SlotPool

__all__ = ["OrderedPipeline", "Timeline", "WorkerError", "WorkerDied", "SHARED_MEMORY_THRESHOLD"]

SHARED_MEMORY_THRESHOLD = 64 * 1024  # bytes; smaller arrays are cheaper to pickle
UNBOUNDED_EXTRA_SLOTS = 4  # slots beyond one per consumer when the buffer is unbounded
GRANTED_AHEAD = 2  # free slots the producer holds, so it never waits for one
LENT_AT_MOST = 4  # results handed to the caller in their slot, without a copy, at one time
STOP_GRACE = 0.5  # seconds a child gets to leave by itself before it is terminated
POLL = 0.25  # seconds between the caller's checks that the dispatcher is alive

Event = namedtuple("Event", "time process event seq")


class Timeline:
    """What happened when: events ``(time, process, event, seq)`` and buffer depth ``(time, depth)``.

    Times are seconds since the pipeline started, on ``time.perf_counter``, which
    is the same clock in every process on Linux and macOS. Events: ``produced``,
    ``sent`` (producer; later than produced when it waited for a credit),
    ``received``, ``buffered``, ``handed``, ``emitted`` (main), ``started``,
    ``finished`` (each consumer).
    """

    def __init__(self, start, enabled=True):
        self.start = start
        self.enabled = enabled
        self._events = []  # plain tuples while running: cheaper than an Event each
        self.depth = [(0.0, 0)]

    def add(self, when, process, event, seq):
        if self.enabled:
            self._events.append((when - self.start, process, event, seq))

    @property
    def events(self):
        return [Event(*row) for row in self._events]

    def add_depth(self, when, depth):
        if self.enabled:
            self.depth.append((when - self.start, depth))

    def of(self, event):
        """The events of one kind, in time order."""
        return sorted(Event(*row) for row in self._events if row[2] == event)

    def processes(self):
        return sorted({row[1] for row in self._events}, key=lambda p: (p != "producer", p != "main", p))


# --- what crosses the pipes -----------------------------------------------------------

_HEADER = struct.Struct("!Q")  # the length of the pickle that follows
_ATOMIC = 4096  # a pipe write up to PIPE_BUF bytes is never split, nor interleaved with another's


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
        view = memoryview(self.frame(message))
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
        with memoryview(self._buffer) as view, view[_HEADER.size:end] as data:
            message = pickle.loads(data)
        del self._buffer[:end]  # cheap: a bytearray drops its front without moving the rest
        return message

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
    """Main has gone: a child stops quietly."""


class _FromMain(_Channel):
    """A child's end of its pipe from main: receive, but never wait for a parent that has died."""

    def __init__(self, conn):
        super().__init__(conn)
        parent = parent_process()
        self._parent = parent.sentinel if parent is not None else None
        self._watch = _Watch([conn] + ([self._parent] if self._parent is not None else []))

    def _ready(self, timeout):
        ready = self._watch.ready(timeout)
        if self._parent in ready:
            raise _Orphaned
        return self.conn in ready

    def waiting(self):
        """True if a message is here or has arrived (``conn.poll(0)`` would build a selector per call)."""
        if not self.has_message() and self._ready(0):
            self._fill_or_orphan()
        return self.has_message()

    def recv(self):
        """The next message; raises _Orphaned if main has gone."""
        while not self.has_message():
            self._ready(None)  # blocks until a message arrives or main dies
            self._fill_or_orphan()
        return self.take()

    def _fill_or_orphan(self):
        try:
            self.fill()
        except (EOFError, ConnectionResetError):
            raise _Orphaned from None


def _is_big_array(value):
    """Plain numpy arrays of numbers go through slots (a subclass would lose its type there)."""
    return type(value) is np.ndarray and value.dtype.kind in "biufc" and value.nbytes >= SHARED_MEMORY_THRESHOLD


def _fits(pool, array):
    return pool is not None and array.nbytes <= pool.slot_bytes


def _become_a_worker(close_fds):
    """Set a child up: leave Ctrl-C to main, close main's ends of pipes inherited by fork.

    Under fork a child also inherits its parent's ends of its own pipes; holding
    them, it would never see end-of-file from a parent that died. On Linux it
    also asks to be killed with its parent, since under fork its siblings keep
    the parent's sentinel open.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Jupyter's interrupt: main stops the children in order
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    if close_fds and sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if parent_process() is not None and not parent_process().is_alive():
            raise _Orphaned


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


# --- the children ---------------------------------------------------------------------


def _report(channel, exc):
    """Send an exception to main; if main has already gone, there is no one left to tell."""
    try:
        channel.send(error_record(exc))
    except OSError:
        pass


def _run_producer(produce, args, out, control, bounded, close_fds):
    out = _Channel(out)
    pool = None
    try:
        _become_a_worker(close_fds)
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
        for item in produce(*args):
            produced = time.perf_counter()
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
            if big and slots and _fits(pool, item):
                payload, slotted = pool.write(slots.popleft(), item), True
            else:
                payload, slotted = item, False
            out.send(("item", sent, produced, time.perf_counter(), payload, slotted))
            sent += 1
        out.send(("done", sent))
    except _Orphaned:
        pass
    except BaseException as exc:
        _report(out, exc)
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


def _run_consumer(consume, conn, close_fds):
    from_main = _Channel(conn)  # both ways: a duplex pipe
    pool = None
    try:
        _become_a_worker(close_fds)
        from_main = _FromMain(conn)
        while True:
            message = from_main.recv()
            if message[0] == "stop":
                return
            _, seq, payload, slotted, new_pool = message
            if new_pool is not None:
                pool = new_pool
            started = time.perf_counter()
            if slotted:
                with pool.view(payload) as item:
                    result, result_slotted = _pack_result(consume(item), pool, payload, item)
                    del item
            else:
                result, result_slotted = consume(payload), False
            from_main.send(("result", seq, started, time.perf_counter(), result, result_slotted))
    except _Orphaned:
        pass
    except BaseException as exc:
        _report(from_main, exc)
    finally:
        if pool is not None:
            pool.close()


# --- main -----------------------------------------------------------------------------


class _Consumer:
    def __init__(self, name, process, conn):
        self.name, self.process, self.conn = name, process, conn
        self.channel = _Channel(conn)
        self.seq = None  # the item it holds; None when idle
        self.has_pool = False


class _Failure:
    """Carries an exception from the dispatcher thread to the caller's loop."""

    def __init__(self, error):
        self.error = error


_END = object()


def _check_worker(func, name, method):
    if not callable(func):
        raise TypeError(f"{name} must be a function defined in a module, not {type(func).__name__} {func!r}")
    require_importable(func, method, role=name)


def _stop_all(processes, pool_box, lock, grace=STOP_GRACE):
    """Let the children leave within ``grace`` seconds, then terminate, then kill; free the slots.

    Safe from any thread and more than once (the lock makes two callers take turns).
    """
    with lock:
        deadline = time.monotonic() + grace
        for process in processes:
            if process.pid is not None:
                process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.pid is not None and process.is_alive():
                process.terminate()
        for process in processes:
            if process.pid is not None:
                process.join(1.0)
                if process.is_alive():
                    process.kill()
                    process.join(1.0)
        for pool in pool_box:
            pool.close()  # never raises, even while the caller still holds lent results
        pool_box.clear()


class OrderedPipeline:
    """Run ``produce`` in one process and ``consume`` in ``consumers`` others; yield results in order.

    See the module docstring for how it works. Use it in a ``with`` block (or
    call :meth:`close`): leaving the block, early or not, stops every child and
    frees all shared memory. ``timeline=False`` records nothing, for endless
    streams (the timeline keeps every event of the run).
    """

    def __init__(self, produce, consume, produce_args=(), consumers=1, buffer=None, start_method=None, timeline=True):
        method = resolve_start_method(start_method)
        _check_worker(produce, "produce", method)
        _check_worker(consume, "consume", method)
        if isinstance(produce_args, (str, bytes)) or not isinstance(produce_args, (tuple, list)):
            raise TypeError(f"produce_args must be a tuple of arguments for produce, not {produce_args!r}")
        self.consumers = check_count(consumers, "consumers")
        self.buffer = None if buffer is None else check_count(buffer, "buffer")
        self.start_method = method
        self.stats = {"items": 0, "via shared memory": 0, "pickled": 0}
        self.timeline = Timeline(time.perf_counter(), enabled=bool(timeline))
        self._out = queue.SimpleQueue()  # results for the caller, in order (C-implemented: cheap per item)
        self._closed = False  # close() has begun: the caller's loop may not go on
        self._finished = False  # every result (or the failure) has reached the caller's loop
        self._taken = 0  # results the caller's loop took; written by its thread only
        self._returned = queue.SimpleQueue()  # slots of lent results the caller has dropped
        self._lock = threading.RLock()  # guards the wake-up pipe's closing; re-entrant for finalizers
        self._stop_lock = threading.Lock()
        self._pool = None
        self._pool_box = []  # the slot pool, once made; a list so the finalizer sees it
        self._producer = None
        self._workers = []
        self._wake_read, self._wake_write = os.pipe()  # a doorbell from the caller's thread to the dispatcher
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        try:
            self._start_children(get_context(method), produce, tuple(produce_args), consume)
            self._dispatcher = threading.Thread(target=self._dispatch, name="ipckit-pipeline", daemon=True)
            self._dispatcher.start()
        except BaseException:
            self.close()
            raise
        # An abandoned pipeline still runs to its end (the dispatcher thread holds it); this stops
        # its children at the latest when the interpreter exits.
        self._finalizer = weakref.finalize(self, _stop_all, self._processes(), self._pool_box, self._stop_lock)

    # -- starting and stopping ---------------------------------------------------------

    def _start_children(self, ctx, produce, args, consume):
        forked = self.start_method == "fork"
        for index in range(self.consumers):
            main_end, child_end = ctx.Pipe()
            inherited = (main_end.fileno(),) if forked else ()
            process = ctx.Process(
                target=_run_consumer, args=(consume, child_end, inherited), name=f"consumer-{index}"
            )
            self._workers.append(_Consumer(process.name, process, main_end))
            try:
                process.start()
            finally:
                child_end.close()
        items_in, items_out = ctx.Pipe(duplex=False)
        control_in, control_out = ctx.Pipe(duplex=False)
        self._items, self._control = items_in, control_out
        inherited = (items_in.fileno(), control_out.fileno()) if forked else ()
        bounded = self.buffer is not None
        self._producer = ctx.Process(
            target=_run_producer, args=(produce, args, items_out, control_in, bounded, inherited), name="producer"
        )
        try:
            self._producer.start()
        finally:
            items_out.close()
            control_in.close()

    def _processes(self):
        return ([self._producer] if self._producer is not None else []) + [w.process for w in self._workers]

    def _ring(self):
        """Wake the dispatcher: one byte, never blocking (a full pipe has rung already)."""
        with self._lock:
            if self._wake_write is not None:
                try:
                    os.write(self._wake_write, b"!")
                except (BlockingIOError, BrokenPipeError):
                    pass

    def close(self):
        """Stop every child (at once if they are still working), free shared memory. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._ring()
        dispatcher = getattr(self, "_dispatcher", None)
        if dispatcher is not None:
            dispatcher.join(2.0)
        _stop_all(self._processes(), self._pool_box, self._stop_lock, grace=STOP_GRACE if self._finished else 0.0)
        if dispatcher is not None and dispatcher.is_alive():
            dispatcher.join(2.0)  # it was writing to a child that has now gone
        if dispatcher is None or not dispatcher.is_alive():  # never close what the dispatcher still uses
            with self._lock:
                for fd in (self._wake_read, self._wake_write):
                    os.close(fd)
                self._wake_read = self._wake_write = None
            for conn in [w.conn for w in self._workers] + [getattr(self, "_items", None), getattr(self, "_control", None)]:
                if conn is not None:
                    conn.close()
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()

    @property
    def pids(self):
        """Process name -> PID of every child, e.g. to watch them, or to kill one in a demo."""
        return {process.name: process.pid for process in self._processes()}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _give_back(self, slot):
        """Called when a lent result and all its views are gone (any thread, maybe inside the GC)."""
        self._returned.put(slot)
        self._ring()

    # -- the caller's loop -------------------------------------------------------------

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            if self._finished:
                raise StopIteration
            if self._closed:
                raise ValueError("this pipeline is closed; make a new one to run again")
            try:
                kind, seq, value = self._out.get(timeout=POLL)
            except queue.Empty:
                if not self._dispatcher.is_alive() and self._out.empty():
                    raise RuntimeError("the pipeline's dispatcher thread stopped unexpectedly") from None
                continue
            if kind is _END:
                self._finished = True
                raise StopIteration
            if kind is _Failure:
                self._finished = True
                raise value.error
            self.timeline.add(time.perf_counter(), "main", "emitted", seq)
            if self.buffer is not None:
                self._taken += 1  # frees a credit for the producer
                self._ring()
            return value

    # -- the dispatcher thread ---------------------------------------------------------

    def _dispatch(self):
        try:
            finished = _Dispatcher(self).run()
        except BaseException as exc:  # a worker failed or died, or a bug here: stop the rest, tell the caller
            _stop_all(self._processes(), self._pool_box, self._stop_lock, grace=0.0)
            self._out.put((_Failure, None, _Failure(exc)))
            return
        if finished:  # every result is out: stop the children and free the slots, with or without `with`
            _stop_all(self._processes(), self._pool_box, self._stop_lock)
            self._out.put((_END, None, None))


class _Dispatcher:
    """Main's side of the pipeline, run in one thread: every decision about items, consumers and credits.

    State: ``fifo`` holds (seq, payload, slotted) waiting for an idle consumer;
    ``done`` holds results that finished before an earlier one; each consumer's
    ``seq`` is the item it holds (None when idle); ``slot_of`` maps an item to
    the slot it occupies until its result is out of that slot.
    """

    def __init__(self, pipeline):
        self.p = pipeline
        self.timeline = pipeline.timeline
        self.fifo = deque()
        self.done = {}
        self.next_out = 0  # the seq of the next result the caller gets
        self.total = None  # how many items there are, once the producer says "done"
        self.producer_alive = True
        self.received = 0  # items received from the producer
        self.allowed = 0  # items the producer may send in all (bounded buffer only)
        self.emitted = 0  # results put in the caller's queue
        self.granted_slots = set()
        self.slot_of = {}
        self.lent = 0  # results the caller holds in their slots
        self.lend_limit = 0
        bound = pipeline.buffer
        self.capacity = None if bound is None else bound + pipeline.consumers

    # -- the loop ----------------------------------------------------------------------

    def run(self):
        """Return True when every result is out, False when the caller closed the pipeline first."""
        p = self.p
        self.items, self.control = _Channel(p._items), _Outbox(p._control)
        roles = {p._items: "items", p._producer.sentinel: "producer", p._wake_read: "wake"}
        for worker in p._workers:
            roles[worker.conn] = worker
            roles[worker.process.sentinel] = worker
        watch = _Watch(roles)
        try:
            while self.total is None or self.next_out < self.total:
                self.allow_more()
                watch.want_write(p._control, bool(self.control.waiting))
                for handle in watch.ready():
                    role = roles.get(handle)
                    if handle is p._control:
                        self.control.flush()
                    elif role is None:
                        continue  # forgotten earlier in this round
                    elif role == "wake":
                        if not self.on_wake():
                            return False
                    elif role == "items":
                        for message in self.receive(self.items, p._producer):
                            if self.on_producer_message(message):
                                del roles[handle]
                                watch.forget(handle)
                    elif role == "producer" or handle is role.process.sentinel:
                        del roles[handle]
                        watch.forget(handle)
                        self.on_exit(role)
                    else:
                        self.on_consumer_ready(role)
                self.emit_in_order()
        finally:
            watch.close()
        for worker in p._workers:  # let the consumers leave by themselves
            try:
                worker.channel.send(("stop",))
            except OSError:
                pass
        return True

    @staticmethod
    def receive(channel, process):
        """Read what ``process`` has sent; a worker's error record becomes WorkerError, EOF WorkerDied."""
        try:
            arrived = list(channel.messages())
        except (EOFError, ConnectionResetError):
            process.join(1.0)
            raise WorkerDied(process.name, process.exitcode) from None
        for message in arrived:
            if message[0] == "error":
                raise WorkerError(process.name, *message[1:])
            yield message

    # -- events ------------------------------------------------------------------------

    def on_wake(self):
        """The caller took results, dropped lent ones, or closed the pipeline (then return False)."""
        try:
            os.read(self.p._wake_read, 1 << 16)  # empty the doorbell; what rang is in the fields below
        except BlockingIOError:
            pass
        if self.p._closed:
            return False
        while True:
            try:
                slot = self.p._returned.get_nowait()
            except queue.Empty:
                return True
            self.lent -= 1
            self.p._pool.release(slot)
            self.grant_slots()

    def on_producer_message(self, message):
        """Handle one item, a request for slots, or the end of the stream (then return True: the pipe is done)."""
        if message[0] == "done":
            self.total, self.producer_alive = message[1], False
            return True
        if message[0] == "slots?":
            self.make_pool(message[1])
            self.grant_slots()
        else:
            self.on_item(*message[1:])
        return False

    def on_exit(self, role):
        """A child's sentinel fired. Usually end-of-file on its pipe has already said it died; this
        catches a death while another process still holds that pipe's other end (fork inheritance)."""
        if role == "producer":
            self.producer_alive = False
            name, process, channel, expected = "producer", self.p._producer, self.items, self.total is not None
        else:
            name, process, channel, expected = role.name, role.process, role.channel, False
        if not expected and not channel.has_message() and not channel.conn.poll(0):
            process.join(1.0)
            raise WorkerDied(name, process.exitcode)

    def on_item(self, seq, produced, sent, payload, slotted):
        now = time.perf_counter()
        t, p = self.timeline, self.p
        idle = next((w for w in p._workers if w.seq is None), None)
        if idle is not None and not self.fifo:
            self.hand(idle, seq, payload, slotted)  # first: a consumer is waiting; the bookkeeping can wait
        else:
            self.fifo.append((seq, payload, slotted))
            t.add(now, "main", "buffered", seq)
            t.add_depth(now, len(self.fifo))
        self.received += 1
        t.add(produced, "producer", "produced", seq)
        t.add(sent, "producer", "sent", seq)
        t.add(now, "main", "received", seq)
        p.stats["items"] += 1
        if slotted:
            self.granted_slots.discard(payload.slot)
            self.slot_of[seq] = payload.slot
            p.stats["via shared memory"] += 1
        elif _is_big_array(payload):
            p.stats["pickled"] += 1  # bigger than a slot, or no slot was free
        self.grant_slots()

    def on_consumer_ready(self, worker):
        """A consumer sent its result, so it is idle: hand it the next item first (until then it
        waits, and that wait is the pipeline's own cost per item), then file the result."""
        results = list(self.receive(worker.channel, worker.process))
        if not results:
            return  # part of a big result: the rest is on its way
        worker.seq = None
        if self.fifo:
            self.hand(worker, *self.fifo.popleft())
            self.timeline.add_depth(time.perf_counter(), len(self.fifo))
        for message in results:
            self.on_result(worker, *message[1:])

    def on_result(self, worker, seq, started, finished, result, slotted):
        self.timeline.add(started, worker.name, "started", seq)
        self.timeline.add(finished, worker.name, "finished", seq)
        pool, slot = self.p._pool, self.slot_of.pop(seq, None)
        if slotted and self.lent < self.lend_limit:  # the result lies in the item's slot: lend it, no copy
            self.done[seq] = pool.lend(result, self.p._give_back)
            self.lent += 1
            return
        if slotted:  # the caller holds enough already: copy it out (pread: main maps no slot pages)
            result = pool.copy_out(result)
        self.done[seq] = result
        if slot is not None:
            pool.release(slot)
            self.grant_slots()

    def emit_in_order(self):
        while self.next_out in self.done:
            self.p._out.put(("result", self.next_out, self.done.pop(self.next_out)))
            self.next_out += 1
            self.emitted += 1

    # -- actions -----------------------------------------------------------------------

    def hand(self, worker, seq, payload, slotted):
        send_pool = None
        if slotted and not worker.has_pool:
            send_pool, worker.has_pool = self.p._pool, True
        now = time.perf_counter()  # before sending: the consumer may start at once
        try:
            worker.channel.send(("item", seq, payload, slotted, send_pool))
        except OSError:  # the consumer died while we were sending
            worker.process.join(1.0)
            raise WorkerDied(worker.name, worker.process.exitcode) from None
        worker.seq = seq
        self.timeline.add(now, "main", "handed", seq)
        self.timeline.add(now, worker.name, "handed", seq)

    def allow_more(self):
        """Bounded buffer: let the producer send as many items as leave at most ``capacity`` in the system."""
        if self.capacity is None or not self.producer_alive:
            return
        busy = sum(w.seq is not None for w in self.p._workers)
        held = len(self.fifo) + busy + len(self.done) + (self.emitted - self.p._taken)
        allowed = self.received + self.capacity - held
        if allowed > self.allowed:
            self.allowed = allowed
            self.control.post(("allow", allowed))  # the total so far, so a newer one replaces a waiting one

    def make_pool(self, slot_bytes):
        """Slots for every item the system may hold, those granted ahead, and those lent; fewer if
        /dev/shm is short (then nothing is lent); none at all if not even two fit (all pickled)."""
        working = (self.capacity or self.p.consumers + UNBOUNDED_EXTRA_SLOTS) + GRANTED_AHEAD
        slots = working + LENT_AT_MOST
        pool = None
        while pool is None and slots >= 2:
            try:
                pool = SlotPool(slots, slot_bytes)
            except NotEnoughSharedMemory:
                slots //= 2
        self.p._pool = pool
        if pool is not None:
            self.p._pool_box.append(pool)
            self.lend_limit = max(0, pool.slots - working)
        self.control.post(("pool", pool))

    def grant_slots(self):
        pool = self.p._pool
        if pool is None or not self.producer_alive:
            return
        while len(self.granted_slots) < GRANTED_AHEAD and pool.free_slots:
            slot = pool.acquire()
            self.granted_slots.add(slot)
            self.control.post(("slot", slot))
