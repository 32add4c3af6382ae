"""The ordered pipeline: producer -> main -> idle consumers, results in hand-off order.

::

    with OrderedPipeline(produce, consume, consumers=2, buffer=4) as pipe:
        for result in pipe:       # in hand-off order, each as soon as it and all earlier ones are done
            ...
    pipe.timeline                  # what happened when, for ipckit.plots.plot_timeline

How it works. The producer process runs ``produce(*produce_args)`` and sends
each item to main the moment it is yielded. A thread in main (the dispatcher)
waits on every pipe *and* every child's sentinel at once
(``multiprocessing.connection.wait``). It hands an item to a consumer only when
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
:attr:`OrderedPipeline.stats` counts both ways.
"""
import os
import pickle
import queue
import selectors
import signal
import struct
import threading
import time
import weakref
from collections import deque, namedtuple
from multiprocessing import parent_process

import numpy as np

from .checks import check_count
from .context import get_context, require_importable, resolve_start_method
from .run import WorkerDied, WorkerError, error_record
from .shm import ArrayRef, SlotPool

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

    def __init__(self, start):
        self.start = start
        self._events = []  # plain tuples while running: cheaper than an Event each
        self.depth = [(0.0, 0)]

    def add(self, when, process, event, seq):
        self._events.append((when - self.start, process, event, seq))

    @property
    def events(self):
        return [Event(*row) for row in self._events]

    def add_depth(self, when, depth):
        self.depth.append((when - self.start, depth))

    def of(self, event):
        """The events of one kind, in time order."""
        return sorted(Event(*row) for row in self._events if row[2] == event)

    def processes(self):
        return sorted({row[1] for row in self._events}, key=lambda p: (p != "producer", p != "main", p))


# --- what crosses the pipes -----------------------------------------------------------


_HEADER = struct.Struct("!Q")  # the length of the pickle that follows
_ATOMIC = 4096  # a pipe write up to PIPE_BUF bytes is never interleaved with another's


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

    def send(self, message):
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) + _HEADER.size <= _ATOMIC:
            os.write(self._fd, _HEADER.pack(len(data)) + data)  # one write, never split (several writers share the wake pipe)
            return
        os.write(self._fd, _HEADER.pack(len(data)))
        view = memoryview(data)
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


def _is_big_array(value):
    return isinstance(value, np.ndarray) and value.dtype.kind in "biufc" and value.nbytes >= SHARED_MEMORY_THRESHOLD


def _fits(pool, array):
    return pool is not None and array.nbytes <= pool.slot_bytes


def _ignore_interrupts():
    """Children leave Ctrl-C (Jupyter's interrupt) to main, which stops them in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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

    def ready(self, timeout=None):
        return [key.fileobj for key, _ in self._selector.select(timeout)]

    def close(self):
        self._selector.close()


class _FromMain(_Channel):
    """A child's end of its pipe from main: receive, but never wait for a parent that has died."""

    def __init__(self, conn):
        super().__init__(conn)
        parent = parent_process()
        self._watch = _Watch([conn] + ([parent.sentinel] if parent is not None else []))

    def waiting(self):
        """True if a message is here or has arrived (``conn.poll(0)`` would build a selector per call)."""
        if not self.has_message() and self.conn in self._watch.ready(0):
            self.fill()
        return self.has_message()

    def recv(self):
        """The next message, or None if main has gone."""
        while not self.has_message():
            if self.conn not in self._watch.ready():  # blocks until a message arrives or main dies
                return None
            try:
                self.fill()
            except (EOFError, ConnectionResetError):
                return None
        return self.take()


# --- the children ---------------------------------------------------------------------


def _report(channel, exc):
    """Send an exception to main; if main has already gone, there is no one left to tell."""
    try:
        channel.send(error_record(exc))
    except OSError:
        pass


def _run_producer(produce, args, out, control, bounded):
    _ignore_interrupts()
    credits, slots, pool = 0, deque(), None
    from_main, out = _FromMain(control), _Channel(out)

    def take(message):
        nonlocal credits, pool
        kind, value = message
        if kind == "credit":
            credits += value
        elif kind == "slot":
            slots.append(value)
        elif kind == "pool":
            pool = value

    try:
        seq = 0
        for item in produce(*args):
            produced = time.perf_counter()
            while from_main.waiting():
                take(from_main.take())
            while bounded and credits == 0:  # backpressure: wait for main to make room
                message = from_main.recv()
                if message is None:
                    return
                take(message)
            if _is_big_array(item) and pool is None:  # the first big array: ask main for slots of its size
                out.send(("slots?", item.nbytes))
                while pool is None or not slots:
                    message = from_main.recv()
                    if message is None:
                        return
                    take(message)
            while bounded and _is_big_array(item) and _fits(pool, item) and not slots:
                message = from_main.recv()  # a credit means room; its slot is on the way
                if message is None:
                    return
                take(message)
            if _is_big_array(item) and slots and _fits(pool, item):
                payload = pool.write(slots.popleft(), item)
            else:
                payload = item
            credits -= 1
            out.send(("item", seq, produced, time.perf_counter(), payload))
            seq += 1
        out.send(("done", seq))
    except BaseException as exc:
        _report(out, exc)
    finally:
        if pool is not None:
            pool.close()


def _pack_result(result, pool, ref, item_view):
    """Put a big array result back in the item's slot; anything else travels pickled."""
    if ref is None or not _is_big_array(result) or result.nbytes > pool.slot_bytes:
        return result
    if (
        item_view is not None
        and result.shape == item_view.shape
        and result.dtype == item_view.dtype
        and result.__array_interface__["data"][0] == item_view.__array_interface__["data"][0]
        and result.strides == item_view.strides
    ):
        return ref  # consume returned its input: the result is already in the slot
    return pool.write(ref.slot, result)  # numpy copes with a result that overlaps the slot


def _run_consumer(consume, conn):
    _ignore_interrupts()
    pool = None
    from_main = _FromMain(conn)  # both ways: a duplex pipe
    try:
        while True:
            message = from_main.recv()
            if message is None or message[0] == "stop":
                return
            _, seq, payload, new_pool = message
            if new_pool is not None:
                pool = new_pool
            started = time.perf_counter()
            if isinstance(payload, ArrayRef):
                with pool.view(payload) as item:
                    result = _pack_result(consume(item), pool, payload, item)
                    del item
            else:
                result = consume(payload)
            from_main.send(("result", seq, started, time.perf_counter(), result))
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


class OrderedPipeline:
    """Run ``produce`` in one process and ``consume`` in ``consumers`` others; yield results in order.

    See the module docstring for how it works. Use it in a ``with`` block:
    leaving the block, early or not, stops every child and frees all shared memory.
    """

    def __init__(self, produce, consume, produce_args=(), consumers=1, buffer=None, start_method=None):
        method = resolve_start_method(start_method)
        _check_worker(produce, "produce", method)
        _check_worker(consume, "consume", method)
        if isinstance(produce_args, (str, bytes)) or not isinstance(produce_args, (tuple, list)):
            raise TypeError(f"produce_args must be a tuple of arguments for produce, not {produce_args!r}")
        self.consumers = check_count(consumers, "consumers")
        self.buffer = None if buffer is None else check_count(buffer, "buffer")
        self.start_method = method
        self.stats = {"items": 0, "via shared memory": 0, "pickled": 0}
        self.timeline = Timeline(time.perf_counter())
        self._out = queue.SimpleQueue()  # results for the caller, in order (C-implemented: cheap per item)
        self._closed = False
        self._finished = False
        self._pool = None
        self._producer = None
        self._workers = []
        ctx = get_context(method)
        self._wake_reader, self._wake_writer = ctx.Pipe(duplex=False)  # the caller's thread -> dispatcher
        self._wake = _Channel(self._wake_writer)
        self._returned = queue.SimpleQueue()  # slots of lent results the caller has dropped
        self._lock = threading.Lock()
        try:
            self._start_children(ctx, produce, tuple(produce_args), consume)
            self._dispatcher = threading.Thread(target=self._dispatch, name="ipckit-pipeline", daemon=True)
            self._dispatcher.start()
        except BaseException:
            self.close()
            raise
        self._finalizer = weakref.finalize(self, OrderedPipeline._stop_all, self._processes(), self._pool_box)

    # -- starting and stopping ---------------------------------------------------------

    def _start_children(self, ctx, produce, args, consume):
        self._pool_box = []  # the slot pool, once made; a list so the finalizer sees it
        for index in range(self.consumers):
            main_end, child_end = ctx.Pipe()
            process = ctx.Process(target=_run_consumer, args=(consume, child_end), name=f"consumer-{index}")
            self._workers.append(_Consumer(process.name, process, main_end))
            try:
                process.start()
            finally:
                child_end.close()
        items_in, items_out = ctx.Pipe(duplex=False)
        control_in, control_out = ctx.Pipe(duplex=False)
        self._producer = ctx.Process(
            target=_run_producer, args=(produce, args, items_out, control_in, self.buffer is not None), name="producer"
        )
        self._items, self._control = items_in, control_out
        try:
            self._producer.start()
        finally:
            items_out.close()
            control_in.close()

    def _processes(self):
        return ([self._producer] if self._producer is not None else []) + [w.process for w in self._workers]

    @staticmethod
    def _stop_all(processes, pool_box, grace=STOP_GRACE):
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
            pool.close()
        pool_box.clear()

    def close(self):
        """Stop every child (at once if they are still working), free shared memory. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._wake.send("close")
        except OSError:
            pass
        dispatcher = getattr(self, "_dispatcher", None)
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join(2.0)
        grace = STOP_GRACE if self._finished else 0.0
        self._stop_all(self._processes(), getattr(self, "_pool_box", []), grace=grace)
        for conn in [w.conn for w in self._workers] + [
            getattr(self, "_items", None),
            getattr(self, "_control", None),
            self._wake_reader,
            self._wake_writer,
        ]:
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
        if not self._closed:
            self._returned.put(slot)
            try:
                self._wake.send("returned")  # one small write: atomic on a pipe
            except OSError:
                pass  # closed meanwhile: the pool goes with the pipeline

    # -- the caller's loop -------------------------------------------------------------

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            if self._finished:
                raise StopIteration
            if self._closed and self._out.empty():
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
                try:
                    self._wake.send("taken")  # frees a credit for the producer
                except OSError:
                    pass
            return value

    # -- the dispatcher thread ---------------------------------------------------------

    def _dispatch(self):
        try:
            finished = _Dispatcher(self).run()
        except BaseException as exc:  # a worker failed or died, or a bug here: stop the rest, tell the caller
            self._stop_all(self._processes(), [], grace=0.0)  # the slots are freed by close()
            self._out.put((_Failure, None, _Failure(exc)))
            return
        if finished:  # every result is out: stop the children and free the slots, with or without `with`
            self._stop_all(self._processes(), self._pool_box, grace=STOP_GRACE)
            self._out.put((_END, None, None))


class _Dispatcher:
    """Main's side of the pipeline, run in one thread: every decision about items, consumers and credits.

    State: ``fifo`` holds (seq, payload) waiting for an idle consumer; ``done``
    holds results that finished before an earlier one; each consumer's ``seq``
    is the item it holds (None when idle).
    """

    def __init__(self, pipeline):
        self.p = pipeline
        self.timeline = pipeline.timeline
        self.fifo = deque()
        self.done = {}
        self.next_out = 0  # the seq of the next result the caller gets
        self.total = None  # how many items there are, once the producer says "done"
        self.producer_alive = True
        self.granted = 0  # credits granted and not yet used
        self.emitted = 0  # results put in the caller's queue
        self.taken = 0  # results the caller's loop has taken
        self.granted_slots = set()
        self.lent = 0  # results the caller holds in their slots
        bound = pipeline.buffer
        self.capacity = None if bound is None else bound + pipeline.consumers

    # -- the loop ----------------------------------------------------------------------

    def run(self):
        """Return True when every result is out, False when the caller closed the pipeline first."""
        p = self.p
        self.items, self.control, wake = _Channel(p._items), _Channel(p._control), _Channel(p._wake_reader)
        roles = {p._items: "items", p._producer.sentinel: "producer", p._wake_reader: "wake"}
        for worker in p._workers:
            roles[worker.conn] = worker
            roles[worker.process.sentinel] = worker
        watch = _Watch(roles)
        try:
            while self.total is None or self.next_out < self.total:
                self.top_up_credits()
                for handle in watch.ready():
                    role = roles.get(handle)
                    if role is None:
                        continue  # forgotten earlier in this round
                    if role == "wake":
                        if not self.on_wake(wake):
                            return False
                    elif role == "items":
                        for message in self.receive(self.items, p._producer):
                            if self.on_producer_message(message):
                                del roles[handle]
                                watch.forget(handle)
                    elif role != "producer" and handle is role.conn:
                        self.on_consumer_ready(role)
                    else:  # a child ended: whatever it sent first is read as usual, then EOF says it died
                        del roles[handle]
                        watch.forget(handle)
                        self.on_exit(role)
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

    def on_wake(self, wake):
        """The caller took results (each frees a credit), gave lent slots back, or closed (return False)."""
        for message in wake.messages():
            if message == "close":
                return False
            if message == "taken":
                self.taken += 1
            else:  # "returned": the caller dropped a lent result
                self.lent -= 1
                self.p._pool.release(self.p._returned.get_nowait())
                self.grant_slots()
        return True

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
        """A child's sentinel fired. Without an unread message from it, it died mid-work."""
        if role == "producer":
            self.producer_alive = False
            name, process, channel, expected = "producer", self.p._producer, self.items, self.total is not None
        else:
            name, process, channel, expected = role.name, role.process, role.channel, False
        if not expected and not channel.has_message() and not channel.conn.poll(0):
            process.join(1.0)
            raise WorkerDied(name, process.exitcode)

    def on_item(self, seq, produced, sent, payload):
        now = time.perf_counter()
        t, p = self.timeline, self.p
        idle = next((w for w in p._workers if w.seq is None), None)
        if idle is not None and not self.fifo:
            self.hand(idle, seq, payload)  # first: a consumer is waiting; the bookkeeping can wait
        else:
            self.fifo.append((seq, payload))
            t.add(now, "main", "buffered", seq)
            t.add_depth(now, len(self.fifo))
        self.granted -= 1
        t.add(produced, "producer", "produced", seq)
        t.add(sent, "producer", "sent", seq)
        t.add(now, "main", "received", seq)
        p.stats["items"] += 1
        if isinstance(payload, ArrayRef):
            self.granted_slots.discard(payload.slot)
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
            next_seq, payload = self.fifo.popleft()
            self.hand(worker, next_seq, payload)
            self.timeline.add_depth(time.perf_counter(), len(self.fifo))
        for message in results:
            self.on_result(worker, *message[1:])

    def on_result(self, worker, seq, started, finished, result):
        t, pool = self.timeline, self.p._pool
        t.add(started, worker.name, "started", seq)
        t.add(finished, worker.name, "finished", seq)
        if isinstance(result, ArrayRef) and self.lent < LENT_AT_MOST:
            self.done[seq] = pool.lend(result, self.p._give_back)  # no copy: the slot returns when dropped
            self.lent += 1
        elif isinstance(result, ArrayRef):  # the caller holds several already: copy, free the slot now
            self.done[seq] = pool.copy_out(result)  # read without mapping the slot in main
            pool.release(result.slot)
            self.grant_slots()
        else:
            self.done[seq] = result

    def emit_in_order(self):
        while self.next_out in self.done:
            self.p._out.put(("result", self.next_out, self.done.pop(self.next_out)))
            self.next_out += 1
            self.emitted += 1

    # -- actions -----------------------------------------------------------------------

    def hand(self, worker, seq, payload):
        send_pool = None
        if isinstance(payload, ArrayRef) and not worker.has_pool:
            send_pool, worker.has_pool = self.p._pool, True
        now = time.perf_counter()  # before sending: the consumer may start at once
        try:
            worker.channel.send(("item", seq, payload, send_pool))
        except OSError:  # the consumer died while we were sending
            worker.process.join(1.0)
            raise WorkerDied(worker.name, worker.process.exitcode) from None
        worker.seq = seq
        self.timeline.add(now, "main", "handed", seq)
        self.timeline.add(now, worker.name, "handed", seq)

    def tell_producer(self, message):
        """Send a credit, a slot or the pool to the producer; if it has just finished, it needs none."""
        try:
            self.control.send(message)
        except OSError:
            self.producer_alive = False  # its "done" (or its death) is still to be read from the items pipe

    def in_system(self):
        """Items granted, buffered, at a consumer, or done and not yet taken by the caller."""
        busy = sum(w.seq is not None for w in self.p._workers)
        return self.granted + len(self.fifo) + busy + len(self.done) + (self.emitted - self.taken)

    def top_up_credits(self):
        if self.capacity is None or not self.producer_alive:
            return
        room = self.capacity - self.in_system()
        if room > 0:
            self.tell_producer(("credit", room))
            self.granted += room

    def make_pool(self, slot_bytes):
        # room for every item the system may hold, plus the slots granted ahead to the producer
        slots = (self.capacity or self.p.consumers + UNBOUNDED_EXTRA_SLOTS) + GRANTED_AHEAD + LENT_AT_MOST
        pool = SlotPool(slots, slot_bytes)
        self.p._pool = pool
        self.p._pool_box.append(pool)
        self.tell_producer(("pool", pool))

    def grant_slots(self):
        pool = self.p._pool
        if pool is None or not self.producer_alive:
            return
        while len(self.granted_slots) < GRANTED_AHEAD and pool.free_slots:
            slot = pool.acquire()
            self.granted_slots.add(slot)
            self.tell_producer(("slot", slot))
