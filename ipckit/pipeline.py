"""The ordered pipeline: producer -> main -> idle consumers, results in hand-off order.

::

    with OrderedPipeline(produce, consume, consumers=2) as pipe:
        for result in pipe:       # in hand-off order, each as soon as it and all earlier ones are done
            ...

How it works. The producer process runs ``produce(*produce_args)`` and sends
each item to main the moment it is yielded. A thread in main (the dispatcher)
waits on every pipe *and* every child's sentinel at once (as
``multiprocessing.connection.wait`` does, with one kept selector). It hands an
item to a consumer only when that consumer is idle (each holds at most one
item), keeps the rest in a FIFO, numbers items in hand-off order, and
re-orders the results. Main forwards each item still pickled: only the
consumer unpickles it, so a misbehaving item costs a consumer, never main.

Errors keep their type. An exception in ``produce`` or ``consume`` reaches
the caller's loop as itself (``except KeyError`` works), with the child's
traceback as its ``__cause__`` and a note naming the process and the item;
one that cannot travel becomes :class:`WorkerError`; a child that dies becomes
:class:`WorkerDied` (naming the signal); with ``timeout=``, a consumer that
takes longer on one item is stopped and becomes :class:`WorkerTimeout`. In
every case every child is stopped first (see :mod:`ipckit.run`).

Bounded by default. The producer may only send an item when main grants it a
credit; credits are capped so that at most ``buffer + consumers`` items are in
the system (buffered, at a consumer, or done but not yet taken by the caller's
loop), and the producer waits instead of memory growing. ``buffer`` defaults
to 2 x consumers. ``buffer=None`` is unbounded: main then holds every item the
producer is ahead by, so a fast producer of big items can fill main's memory.
The timeline of events is off unless asked for (``timeline=True``), and even
then keeps only the last ``TIMELINE_EVENTS``.

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

Lifecycle, as in ``concurrent.futures.process``. The dispatcher thread holds
the pipeline's machinery but only a weak reference to the
:class:`OrderedPipeline` itself (and so do lent arrays): a pipeline nobody
holds any more (a loop left with ``break`` outside ``with``, then the name
rebound) is garbage-collected, and its dispatcher then stops the children and
frees the slots. :meth:`OrderedPipeline.close` may be called again and again,
from any thread, and finishes its work even when Ctrl-C interrupts it. Children
ignore Ctrl-C (main stops them in order), and die with main however main ends
and whichever thread started them: each watches a *lifeline*, a pipe whose only
write end main holds (closed in every other process main forks), and leaves at
once when it reads end-of-file.

Main never blocks on a child that is busy in its own code: its messages to the
producer wait in an outbox until the pipe has room, and the caller's thread
only rings a doorbell (when it closes, drops a lent array, or takes the result
that makes room for a waiting producer; not once per result).
"""
import atexit
import functools
import multiprocessing.util  # noqa: F401  (its exit hook joins children: it must be registered before ours)
import os
import pickle
import queue
import threading
import time
import weakref
from collections import deque, namedtuple

from .checks import check_count, check_timeout
from .context import get_context, require_importable, resolve_start_method
from .pipeline_children import (
    _LIVE,
    SHARED_MEMORY_THRESHOLD,
    _Channel,
    _end_lifeline,
    _new_lifeline,
    _Outbox,
    _run_consumer,
    _run_producer,
    _Watch,
)
from .run import WorkerDied, WorkerError, WorkerTimeout, add_note, child_error
from .shm import NotEnoughSharedMemory, SlotPool

__all__ = [
    "SHARED_MEMORY_THRESHOLD",
    "TIMELINE_EVENTS",
    "OrderedPipeline",
    "Timeline",
    "WorkerDied",
    "WorkerError",
    "WorkerTimeout",
]
UNBOUNDED_EXTRA_SLOTS = 4  # slots beyond one per consumer when the buffer is unbounded
GRANTED_AHEAD = 2  # free slots the producer holds, so it never waits for one
LENT_AT_MOST = 4  # results handed to the caller in their slot, without a copy, at one time
STOP_GRACE = 0.5  # seconds a child gets to leave by itself before it is terminated
POLL = 0.25  # seconds between the caller's checks that the dispatcher is alive
TIMELINE_EVENTS = 100_000  # the most events a timeline keeps; the oldest go first

Event = namedtuple("Event", "time process event seq")


class Timeline:
    """What happened when: events ``(time, process, event, seq)`` and buffer depth ``(time, depth)``.

    Times are seconds since the pipeline started, on ``time.perf_counter``, which
    is the same clock in every process on Linux and macOS. Events: ``produced``,
    ``sent`` (producer; later than produced when it waited for a credit),
    ``received``, ``buffered``, ``handed``, ``emitted`` (main), ``started``,
    ``finished`` (each consumer). A ring: it keeps the last ``keep`` events
    and depths, so an endless stream costs bounded memory.
    """

    def __init__(self, start, enabled=True, keep=None):
        keep = TIMELINE_EVENTS if keep is None else keep
        self.start = start
        self.enabled = enabled
        self._events = deque(maxlen=keep)  # plain tuples while running: cheaper than an Event each
        self.depth = deque([(0.0, 0)], maxlen=keep)

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


# --- main -----------------------------------------------------------------------------


class _Consumer:
    def __init__(self, name, process, conn):
        self.name, self.process, self.conn = name, process, conn
        self.channel = _Channel(conn)
        self.seq = None  # the item it holds; None when idle
        self.deadline = None  # when it must have finished that item (with a timeout only)
        self.has_pool = False


class _Stop(Exception):
    """Raised in the dispatcher to end the run with ``error`` for the caller (built, never raised itself)."""

    def __init__(self, error):
        self.error = error


_NEVER = float("inf")
_RESULT, _END, _FAILED, _CLOSED = "result", "end", "failed", "closed"  # kinds of what the caller's loop receives


def _check_worker(func, name, method):
    if not callable(func):
        raise TypeError(f"{name} must be a function defined in a module, not {type(func).__name__} {func!r}")
    require_importable(func, method, role=name)


def _stop_processes(processes, grace):
    """Let the children leave within ``grace`` seconds, then terminate, then kill."""
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


def _give_back(core_ref, slot):
    """A lent result and all its views are gone (any thread, maybe inside the GC); weak, so a loan keeps nothing alive."""
    core = core_ref()
    if core is not None:
        core.returned.put(slot)
        core.ring()


class _Core:
    """The pipeline's machinery: children, pipes, slots, queues. Shared by the caller's thread and the dispatcher.

    It never refers to the :class:`OrderedPipeline` (only through the weak
    reference ``owner``), so a pipeline nobody holds can be collected while
    its dispatcher still runs; the dispatcher then stops everything.
    """

    def __init__(self, consumers, buffer, timeout, timeline):
        self.consumers, self.buffer, self.timeout, self.timeline = consumers, buffer, timeout, timeline
        self.stats = {"items": 0, "via shared memory": 0, "pickled": 0}
        self.out = queue.SimpleQueue()  # (kind, seq, value) for the caller, in order (C-implemented: cheap per item)
        self.returned = queue.SimpleQueue()  # slots of lent results the caller has dropped
        self.taken = 0  # results the caller's loop took; written by its thread only
        self.wake_at = _NEVER  # ring when ``taken`` reaches this: the dispatcher waits for it to grant credits
        self.closing = False  # close() has begun, or the pipeline was dropped: stop
        self.closed = False  # close() has done all its work
        self.finished = False  # every result (or the failure) has reached the caller's loop
        self.lock = threading.RLock()  # guards the pipes' closing; re-entrant for finalizers
        self.stop_lock = threading.Lock()
        self.pool = None
        self.producer = None
        self.workers = []
        self.items = self.control = None
        self.lifeline = None
        self.thread = None
        self.owner = None
        self.give_back = functools.partial(_give_back, weakref.ref(self))
        self.wake_read, self.wake_write = os.pipe()  # a doorbell from other threads to the dispatcher
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)

    # -- starting --------------------------------------------------------------------------

    def start(self, ctx, produce, args, consume):
        """Start the consumers, the producer, then the dispatcher thread."""
        self.lifeline, lifeline_in = _new_lifeline()
        forked = ctx.get_start_method() == "fork"
        timed = self.timeline.enabled
        try:
            for index in range(self.consumers):
                main_end, child_end = ctx.Pipe()
                inherited = (main_end.fileno(),) if forked else ()
                process = ctx.Process(
                    target=_run_consumer, args=(consume, child_end, lifeline_in, timed, inherited), name=f"consumer-{index}"
                )
                self.workers.append(_Consumer(process.name, process, main_end))
                try:
                    process.start()
                finally:
                    child_end.close()
            items_in, items_out = ctx.Pipe(duplex=False)
            control_in, control_out = ctx.Pipe(duplex=False)
            self.items, self.control = items_in, control_out
            inherited = (items_in.fileno(), control_out.fileno()) if forked else ()
            bounded = self.buffer is not None
            self.producer = ctx.Process(
                target=_run_producer,
                args=(produce, args, items_out, control_in, lifeline_in, bounded, timed, inherited),
                name="producer",
            )
            try:
                self.producer.start()
            finally:
                items_out.close()
                control_in.close()
        finally:
            lifeline_in.close()  # the children have their own copies
        self.thread = threading.Thread(target=_dispatch, args=(self,), name="ipckit-pipeline", daemon=True)
        self.thread.start()

    def processes(self):
        return ([self.producer] if self.producer is not None else []) + [w.process for w in self.workers]

    # -- from other threads ------------------------------------------------------------

    def ring(self):
        """Wake the dispatcher: one byte, never blocking (a full pipe has rung already)."""
        with self.lock:
            if self.wake_write is not None:
                try:
                    os.write(self.wake_write, b"!")
                except (BlockingIOError, BrokenPipeError):
                    pass

    def abandon(self, _owner_ref=None):
        """The OrderedPipeline was garbage-collected: tell the dispatcher to stop (never block inside the GC)."""
        self.closing = True
        self.ring()

    # -- stopping ----------------------------------------------------------------------

    def stop_children(self, grace):
        """Stop every child and free the slots. Safe from any thread and again and again."""
        with self.stop_lock:
            _stop_processes(self.processes(), grace)
            if self.pool is not None:
                self.pool.close()  # never raises, even while the caller still holds lent results

    def release(self):
        """Close main's ends of every pipe, the lifeline included. Only once the dispatcher no longer uses them."""
        with self.lock:
            fds, self.wake_read, self.wake_write = (self.wake_read, self.wake_write), None, None
            lifeline, self.lifeline = self.lifeline, None
            for fd in fds:
                if fd is not None:
                    os.close(fd)
            if lifeline is not None:
                _end_lifeline(lifeline)
            for conn in [w.conn for w in self.workers] + [self.items, self.control]:
                if conn is not None:
                    conn.close()

    def close(self):
        """Stop every child, free the shared memory, close the pipes; finish even when Ctrl-C interrupts.

        Every step may run again, so an interrupt restarts the remaining work,
        and is raised again once all of it is done.
        """
        interrupted = None
        while not self.closed:
            try:
                self._close_once()
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted

    def _close_once(self):
        self.closing = True
        self.ring()
        thread = self.thread
        other = thread is not None and thread is not threading.current_thread()
        if other:
            thread.join(2.0)  # it stops the children and closes the pipes itself
        self.stop_children(grace=0.0)
        if other and thread.is_alive():
            thread.join(2.0)  # it was writing to a child that has now gone
        if thread is None or not thread.is_alive():  # never close what the dispatcher still uses
            self.release()
        self.closed = True


@atexit.register
def _close_at_exit():
    """At interpreter exit, stop what is still running (before multiprocessing joins its children)."""
    for core in list(_LIVE):
        core.close()


def _dispatch(core):
    """The dispatcher thread: run, then stop the children, tell the caller how it ended, close the pipes."""
    outcome = (_CLOSED, None, None)
    try:
        try:
            if _Dispatcher(core).run():
                outcome = (_END, None, None)
        except _Stop as stop:
            outcome = (_FAILED, None, stop.error)
        except BaseException as exc:  # a bug here: stop the children, tell the caller
            outcome = (_FAILED, None, exc)
        core.stop_children(STOP_GRACE if outcome[0] is _END else 0.0)
    finally:
        core.out.put(outcome)
        core.release()


def _unpickling_failed(exc, process, seq):
    """A result main cannot unpickle: the error keeps its type, with a note; an exit becomes UnpicklingError."""
    where = f"while main unpickled the result of item {seq} from {process}"
    if isinstance(exc, Exception):
        add_note(exc, f"raised {where}")
        return exc
    error = pickle.UnpicklingError(f"{type(exc).__name__}{exc.args!r} was raised {where}; unpickling must not exit")
    error.__cause__ = exc
    return error


class _Dispatcher:
    """Main's side of the pipeline, run in one thread: every decision about items, consumers and credits.

    State: ``fifo`` holds (seq, blob, slot) waiting for an idle consumer;
    ``done`` holds results that finished before an earlier one; each consumer's
    ``seq`` is the item it holds (None when idle); ``slot_of`` maps an item to
    the slot it occupies until its result is out of that slot.
    """

    def __init__(self, core):
        self.core = core
        self.timeline = core.timeline
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
        self.capacity = None if core.buffer is None else core.buffer + core.consumers
        self.step = max(1, (self.capacity or 0) // 2)  # credits go out in steps this big

    # -- the loop ----------------------------------------------------------------------

    def run(self):
        """Return True when every result is out, False when the pipeline was closed or dropped first."""
        core = self.core
        self.items, self.control = _Channel(core.items), _Outbox(core.control)
        roles = {core.items: "items", core.producer.sentinel: "producer", core.wake_read: "wake"}
        for worker in core.workers:
            roles[worker.conn] = worker
            roles[worker.process.sentinel] = worker
        watch = _Watch(roles)
        try:
            while self.total is None or self.next_out < self.total:
                self.allow_more()
                watch.want_write(core.control, bool(self.control.waiting))
                for handle in watch.ready(self.until_deadline()):
                    role = roles.get(handle)
                    if handle is core.control:
                        self.control.flush()
                    elif role is None:
                        continue  # forgotten earlier in this round
                    elif role == "wake":
                        if not self.on_wake():
                            return False
                    elif role == "items":
                        for message in self.receive(self.items, core.producer):
                            if self.on_producer_message(message):
                                del roles[handle]
                                watch.forget(handle)
                    elif role == "producer" or handle is role.process.sentinel:
                        del roles[handle]
                        watch.forget(handle)
                        self.on_exit(role)
                    else:
                        self.on_consumer_ready(role)
                if core.timeout is not None:
                    self.check_deadlines()
                self.emit_in_order()
        finally:
            watch.close()
        for worker in core.workers:  # let the consumers leave by themselves
            try:
                worker.channel.send(("stop",))
            except OSError:
                pass
        return True

    @staticmethod
    def receive(channel, process, seq=None):
        """Read what ``process`` has sent; its error record, its death, or a result that will not unpickle end the run."""
        try:
            arrived = list(channel.messages())
        except (EOFError, ConnectionResetError):
            process.join(1.0)
            raise _Stop(WorkerDied(process.name, process.exitcode)) from None
        except BaseException as exc:  # only a result can fail here: main unpickles nothing else of the user's
            raise _Stop(_unpickling_failed(exc, process.name, seq)) from None
        for message in arrived:
            if message[0] == "error":
                raise _Stop(child_error(process.name, message))
            yield message

    # -- events ------------------------------------------------------------------------

    def on_wake(self):
        """The caller took results, dropped lent ones, or closed or dropped the pipeline (then return False)."""
        core = self.core
        try:
            os.read(core.wake_read, 1 << 16)  # empty the doorbell; what rang is in the fields below
        except BlockingIOError:
            pass
        if core.closing or core.owner() is None:
            return False
        while True:
            try:
                slot = core.returned.get_nowait()
            except queue.Empty:
                return True
            self.lent -= 1
            core.pool.release(slot)
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
            name, process, channel, expected = "producer", self.core.producer, self.items, self.total is not None
        else:
            name, process, channel, expected = role.name, role.process, role.channel, False
        if not expected and not channel.has_message() and not channel.conn.poll(0):
            process.join(1.0)
            raise _Stop(WorkerDied(name, process.exitcode))

    def on_item(self, seq, produced, sent, blob, slot, pickled_big):
        core, t = self.core, self.timeline
        now = time.perf_counter() if t.enabled else 0.0
        idle = next((w for w in core.workers if w.seq is None), None)
        if idle is not None and not self.fifo:
            self.hand(idle, seq, blob, slot)  # first: a consumer is waiting; the bookkeeping can wait
        else:
            self.fifo.append((seq, blob, slot))
            if t.enabled:
                t.add(now, "main", "buffered", seq)
                t.add_depth(now, len(self.fifo))
        self.received += 1
        if t.enabled:
            t.add(produced, "producer", "produced", seq)
            t.add(sent, "producer", "sent", seq)
            t.add(now, "main", "received", seq)
        core.stats["items"] += 1
        if slot is not None:
            self.granted_slots.discard(slot)
            self.slot_of[seq] = slot
            core.stats["via shared memory"] += 1
        elif pickled_big:
            core.stats["pickled"] += 1  # bigger than a slot, or no slot was free
        self.grant_slots()

    def on_consumer_ready(self, worker):
        """A consumer sent its result, so it is idle: hand it the next item first (until then it
        waits, and that wait is the pipeline's own cost per item), then file the result."""
        results = list(self.receive(worker.channel, worker.process, worker.seq))
        if not results:
            return  # part of a big result: the rest is on its way
        worker.seq = None
        if self.fifo:
            self.hand(worker, *self.fifo.popleft())
            if self.timeline.enabled:
                self.timeline.add_depth(time.perf_counter(), len(self.fifo))
        for message in results:
            self.on_result(worker, *message[1:])

    def on_result(self, worker, seq, started, finished, result, slotted):
        if self.timeline.enabled:
            self.timeline.add(started, worker.name, "started", seq)
            self.timeline.add(finished, worker.name, "finished", seq)
        core = self.core
        pool, slot = core.pool, self.slot_of.pop(seq, None)
        if slotted and self.lent < self.lend_limit:  # the result lies in the item's slot: lend it, no copy
            self.done[seq] = pool.lend(result, core.give_back)
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
            self.core.out.put((_RESULT, self.next_out, self.done.pop(self.next_out)))
            self.next_out += 1
            self.emitted += 1

    def until_deadline(self):
        """Seconds until the earliest busy consumer's deadline (None without a timeout, or when none is busy)."""
        if self.core.timeout is None:
            return None
        deadlines = [w.deadline for w in self.core.workers if w.seq is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def check_deadlines(self):
        """A consumer past its deadline is killed at once (it may be stuck for good), and the run ends."""
        now = time.monotonic()
        for worker in self.core.workers:
            if worker.seq is not None and worker.deadline <= now:
                worker.process.kill()
                worker.process.join(1.0)
                raise _Stop(WorkerTimeout(worker.name, self.core.timeout, worker.seq))

    # -- actions -----------------------------------------------------------------------

    def hand(self, worker, seq, blob, slot):
        core = self.core
        send_pool = None
        if slot is not None and not worker.has_pool:
            send_pool, worker.has_pool = core.pool, True
        now = time.perf_counter() if self.timeline.enabled else 0.0  # before sending: the consumer may start at once
        try:
            worker.channel.send(("item", seq, blob, slot, send_pool))
        except OSError:  # the consumer died while we were sending
            worker.process.join(1.0)
            raise _Stop(WorkerDied(worker.name, worker.process.exitcode)) from None
        worker.seq = seq
        if core.timeout is not None:
            worker.deadline = time.monotonic() + core.timeout
        if self.timeline.enabled:
            self.timeline.add(now, "main", "handed", seq)
            self.timeline.add(now, worker.name, "handed", seq)

    def allow_more(self):
        """Bounded buffer: let the producer send as many items as leave at most ``capacity`` in the system.

        Results the caller's loop has not taken yet count too. Allowances go out
        in steps of half the capacity, so that messages and wake-ups come in
        batches. Items at a consumer or in main move on with an event the
        dispatcher sees; a result the caller takes does not. So while the
        producer has used every credit, ``wake_at`` names the take that makes a
        step of room, and the caller's thread rings then, and only then
        (``wake_at`` is set before ``taken`` is read, so no take is missed).
        """
        if self.capacity is None or not self.producer_alive:
            return
        core = self.core
        in_main = len(self.fifo) + sum(w.seq is not None for w in core.workers) + len(self.done)
        if self.received >= self.allowed:  # the producer has used every credit: it waits, or soon will
            core.wake_at = self.emitted + in_main - self.capacity + self.step
        else:
            core.wake_at = _NEVER
        held = in_main + self.emitted - core.taken
        allowed = self.received + self.capacity - held
        if allowed >= self.allowed + self.step:
            self.allowed = allowed
            self.control.post(("allow", allowed))  # the total so far, so a newer one replaces a waiting one

    def make_pool(self, slot_bytes):
        """Slots for every item the system may hold, those granted ahead, and those lent; fewer if
        /dev/shm is short (then nothing is lent); none at all if not even two fit (all pickled)."""
        core = self.core
        working = (self.capacity or core.consumers + UNBOUNDED_EXTRA_SLOTS) + GRANTED_AHEAD
        slots = working + LENT_AT_MOST
        pool = None
        while pool is None and slots >= 2:
            try:
                pool = SlotPool(slots, slot_bytes)
            except NotEnoughSharedMemory:
                slots //= 2
        core.pool = pool
        if pool is not None:
            self.lend_limit = max(0, pool.slots - working)
        self.control.post(("pool", pool))

    def grant_slots(self):
        pool = self.core.pool
        if pool is None or not self.producer_alive:
            return
        while len(self.granted_slots) < GRANTED_AHEAD and pool.free_slots:
            slot = pool.acquire()
            self.granted_slots.add(slot)
            self.control.post(("slot", slot))


_AUTO = "auto"
_CLOSED_MESSAGE = (
    "this pipeline was closed (close(), the end of its `with` block, or close() from another thread) "
    "before its last result; make a new one to run again"
)


class OrderedPipeline:
    """Run ``produce`` in one process and ``consume`` in ``consumers`` others; yield results in order.

    See the module docstring for how it works. Use it in a ``with`` block (or
    call :meth:`close`): leaving the block, early or not, stops every child and
    frees all shared memory.

    - ``buffer``: how many items main may hold beyond one per consumer;
      ``"auto"`` (the default) is 2 x consumers. ``None`` is unbounded: the
      producer never waits, and main holds every item it is ahead by (memory
      grows with the stream while consumers are slower).
    - ``timeline``: record every event for :func:`ipckit.plots.plot_timeline`
      (off by default; when on, the last ``TIMELINE_EVENTS`` are kept).
    - ``timeout``: seconds a consumer may take on one item; a slower one is
      stopped and the loop raises :class:`WorkerTimeout` (default: no limit).
    """

    def __init__(self, produce, consume, produce_args=(), consumers=1, buffer=_AUTO, start_method=None,
                 timeline=False, timeout=None):
        method = resolve_start_method(start_method)
        _check_worker(produce, "produce", method)
        _check_worker(consume, "consume", method)
        if isinstance(produce_args, (str, bytes)) or not isinstance(produce_args, (tuple, list)):
            raise TypeError(f"produce_args must be a tuple of arguments for produce, not {produce_args!r}")
        self.consumers = check_count(consumers, "consumers")
        if isinstance(buffer, str) and buffer == _AUTO:
            self.buffer = 2 * self.consumers
        elif buffer is None:
            self.buffer = None
        elif isinstance(buffer, str):
            raise TypeError(f"buffer must be a whole number, 'auto' (2 x consumers) or None (unbounded), not {buffer!r}")
        else:
            self.buffer = check_count(buffer, "buffer")
        self.timeout = None if timeout is None else check_timeout(timeout)
        self.start_method = method
        core = self._core = _Core(self.consumers, self.buffer, self.timeout, Timeline(time.perf_counter(), bool(timeline)))
        self.stats, self.timeline = core.stats, core.timeline
        core.owner = weakref.ref(self, core.abandon)  # the only reference the machinery keeps to this object
        _LIVE.add(core)
        try:
            core.start(get_context(method), produce, tuple(produce_args), consume)
        except BaseException:
            core.close()
            raise

    def close(self):
        """Stop every child (at once if they are still working), free shared memory. Safe to call again,
        from any thread; an interrupt during it is raised again once the work is done."""
        self._core.close()

    @property
    def pids(self):
        """Process name -> PID of every child, e.g. to watch them, or to kill one in a demo."""
        return {process.name: process.pid for process in self._core.processes()}

    @property
    def _pool(self):
        return self._core.pool

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        return self

    def __next__(self):
        core = self._core
        while True:
            if core.finished:
                raise StopIteration
            if core.closing:
                raise ValueError(_CLOSED_MESSAGE)
            try:
                kind, seq, value = core.out.get(timeout=POLL)
            except queue.Empty:
                if not core.thread.is_alive() and core.out.empty():
                    raise RuntimeError("the pipeline's dispatcher thread ended without a word (a bug in ipckit)") from None
                continue
            if kind is _RESULT:
                if core.timeline.enabled:
                    core.timeline.add(time.perf_counter(), "main", "emitted", seq)
                core.taken += 1  # frees a credit for the producer
                if core.taken >= core.wake_at:
                    core.wake_at = _NEVER
                    core.ring()
                return value
            if kind is _CLOSED:
                raise ValueError(_CLOSED_MESSAGE)
            core.finished = True
            if kind is _FAILED:
                raise value
            raise StopIteration
