"""The ordered pipeline's dispatcher: the thread in main that routes frames between the children.

It reads frame headers only. An item's bytes go from the producer to an idle
consumer as they came (no unpickling, no packing again); a result's bytes go,
in hand-off order, to the caller's thread, which unpickles them. So each
event costs the dispatcher a read, a few field reads and a write, and a
consumer that sends its result gets its next item before anything else is
done. The bookkeeping is constant time per event: a FIFO of waiting hand-offs,
a FIFO of consumers with room (one entry per item a consumer may still take),
a dict of results that finished before an earlier one.

Credits do not pass through here: the caller's thread writes them straight to
the producer (see :class:`ipckit.pipeline_children._Credits`). Slots do: the
dispatcher makes the pool when the first big array comes, gives every free
slot to the producer, and gives a slot back to it once the consumer, or the
caller's thread, is done with it.
"""
import os
import pickle
import select
import time
from collections import deque
from typing import NamedTuple

from .errors import WorkerDied, WorkerTimeout, child_error
from .pipeline_wire import (
    BATCH,
    BIG_PICKLED,
    DONE,
    ERROR,
    IN_SLOT,
    ITEM,
    POOL,
    SLOT,
    STOP,
    WAITED,
    WANT_POOL,
    WANT_SLOT,
    Reader,
    frame,
)
from .pipeline_wire import RESULT as RESULT_FRAME
from .shm import NotEnoughSharedMemory, SlotPool

RESULT, END, FAILED, CLOSED = "result", "end", "failed", "closed"  # kinds of what the caller's loop receives


class ToCaller(NamedTuple):
    """What the dispatcher hands the caller's loop, in lists (one per round of the dispatcher).

    A RESULT carries the result's pickle (``body``) with its hand-off number,
    how many items it answers and its flags; END, FAILED (with ``error``) and
    CLOSED say how the run ended.
    """

    kind: str
    seq: int = 0
    count: int = 0
    flags: int = 0
    body: object = None
    process: str = ""
    error: BaseException | None = None
ON_THEIR_WAY = 2  # slots beyond those the consumers hold: items on their way to a consumer
UNBOUNDED_EXTRA_SLOTS = 4  # the same when the buffer is unbounded
LENT_AT_MOST = 4  # results handed to the caller in their slot, without a copy, at one time
STOP_GRACE = 0.5  # seconds a child gets to leave by itself before it is terminated
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR
_WRITABLE = select.POLLOUT


class _Stop(Exception):
    """Raised in the dispatcher to end the run with ``error`` for the caller (built, never raised itself)."""

    def __init__(self, error):
        self.error = error


class _Outbox:
    """Main's writes to one child: they never block main.

    A child busy in its own code reads nothing, so a blocking write of a frame
    that does not fit in the pipe would stop main, and with it every other
    child. What does not fit waits here and goes out when the pipe has room
    (main then polls for "writable" too).
    """

    def __init__(self, fd, poller, reading):
        self.fd, self.poller, self.reading = fd, poller, reading  # reading: main also reads this fd
        os.set_blocking(fd, False)
        self.waiting = deque()
        self.closed = False

    def send(self, data):
        """Write ``data`` or queue it; OSError if the child has gone."""
        if self.closed:
            return
        if not self.waiting:
            try:
                written = os.write(self.fd, data)
            except BlockingIOError:
                written = 0
            if written == len(data):
                return
            data = memoryview(data)[written:]
            self._want_write(True)
        self.waiting.append(data)

    def flush(self):
        """The pipe has room: write what fits. OSError if the child has gone."""
        waiting = self.waiting
        while waiting:
            try:
                written = os.write(self.fd, waiting[0])
            except BlockingIOError:
                return
            if written < len(waiting[0]):
                waiting[0] = memoryview(waiting[0])[written:]
                return
            waiting.popleft()
        self._want_write(False)

    def _want_write(self, wanted):
        events = (_READABLE if self.reading else 0) | (_WRITABLE if wanted else 0)
        if self.reading:
            self.poller.modify(self.fd, events)
        elif wanted:
            self.poller.register(self.fd, events)
        else:
            self.poller.unregister(self.fd)


def _died(process, name=None):
    process.join(1.0)
    return _Stop(WorkerDied(name or process.name, process.exitcode))


def _has_data(fd):
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return False


class _Dispatcher:
    """Main's side of the pipeline, run in one thread: every decision about items, consumers and slots.

    State: ``fifo`` holds (seq, count, slot, frame) hand-offs waiting for a
    consumer; ``free`` holds a consumer once for every item it may still take
    (1 + prefetch when it holds none); each consumer's ``held`` lists the
    (seq, count, slot) it holds, oldest first; ``done`` holds results that finished before an earlier
    one.
    """

    def __init__(self, core):
        self.core = core
        self.timeline = core.timeline
        self.timed = core.timeline.enabled
        self.fifo = deque()
        self.free = deque()
        self.done = {}
        self.deliver = []  # results in order, for the caller's queue at the end of this round
        self.timeout = core.timeout
        self.next_out = 0  # the first item of the next hand-off the caller gets
        self.total = None  # how many items there are, once the producer says "done"
        self.poller = select.poll()
        self.handlers = {}  # fd -> (method, argument)

    def watch(self, fd, method, argument=None):
        self.poller.register(fd, _READABLE)
        self.handlers[fd] = (method, argument)

    def forget(self, fd):
        if self.handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    # -- the loop ----------------------------------------------------------------------

    def run(self):
        """Return True when every result is out, False when the pipeline was closed or dropped first."""
        core = self.core
        self.items = Reader(core.items.fileno())
        self.producer_open = True
        self.producer_sent = select.poll()  # to look for items on the way, without waiting
        self.producer_sent.register(core.items.fileno(), _READABLE)
        self.control = _Outbox(core.control.fileno(), self.poller, reading=False)
        self.handlers[self.control.fd] = (self.on_control_writable, None)
        self.watch(core.items.fileno(), self.on_producer)
        self.watch(core.producer.sentinel, self.on_exit, "producer")
        self.watch(core.wake_read, self.on_wake)
        for worker in core.workers:
            worker.fd = worker.conn.fileno()
            worker.reader = Reader(worker.fd)
            self.watch(worker.fd, self.on_consumer, worker)
            worker.outbox = _Outbox(worker.fd, self.poller, reading=True)
            self.watch(worker.process.sentinel, self.on_exit, worker)
        for _ in range(1 + core.prefetch):  # round robin: every consumer gets one before any gets two
            self.free.extend(core.workers)
        poll, handlers, returned = self.poller.poll, self.handlers, core.returned
        deliver, put = self.deliver, core.out.put
        timeout = core.timeout
        while self.total is None or self.next_out < self.total:
            for fd, events in poll(None if timeout is None else self.until_deadline()):
                handler = handlers.get(fd)
                if handler is not None and handler[0](handler[1], events) is False:
                    return False
            if deliver:  # last, just before this thread waits again: the caller's thread wakes to a free GIL
                put(deliver)  # all of this round's results at once
                deliver = self.deliver = []
            if timeout is not None:
                self.check_deadlines()
            if not returned.empty():
                self.take_returned()
        for worker in core.workers:  # let the consumers leave by themselves
            try:
                worker.outbox.send(frame(STOP))
            except OSError:
                pass
        return True

    # -- events ------------------------------------------------------------------------

    def on_wake(self, _, events):
        """The caller closed or dropped the pipeline (then return False), or gave back a slot the producer wants."""
        core = self.core
        try:
            os.read(core.wake_read, 1 << 16)  # empty the doorbell; what rang is in the fields below
        except BlockingIOError:
            pass
        if core.closing or core.owner() is None:
            return False
        self.take_returned()
        return True

    def on_control_writable(self, _, events):
        try:
            self.control.flush()
        except OSError:  # the producer has finished or died: nothing more to tell it
            self.control.closed = True
            self.control.waiting.clear()
            self.control._want_write(False)

    def on_producer(self, _, events):
        """Items, batches, requests for slots, the end of the stream, or an error."""
        try:
            frames = self.items.read()
        except (EOFError, ConnectionResetError):
            self.producer_open = False
            self.forget(self.core.items.fileno())
            if self.total is None:
                raise _died(self.core.producer, "producer") from None
            return
        core, timed, stats = self.core, self.timed, self.core.stats
        for entry in frames:
            kind, flags, count, slot, seq = entry.kind, entry.flags, entry.count, entry.slot, entry.seq
            if kind == ITEM or kind == BATCH:
                stats["items"] += count
                stats["hand-offs"] += 1
                core.received += 1
                if slot >= 0:
                    stats["via shared memory"] += 1
                elif flags & BIG_PICKLED:
                    stats["pickled"] += 1
                if flags & WAITED:
                    stats["waited for a slot"] += 1
                if timed:
                    now = time.perf_counter()
                    self.timeline.add(entry.t1, "producer", "produced", seq)
                    self.timeline.add(entry.t2, "producer", "sent", seq)
                    self.timeline.add(now, "main", "received", seq)
                if self.free and not self.fifo:
                    self.hand(self.free.popleft(), seq, count, slot, entry.raw)
                else:
                    self.fifo.append((seq, count, slot, entry.raw))
                    if timed:
                        self.timeline.add(now, "main", "buffered", seq)
                        self.timeline.add_depth(now, len(self.fifo))
            elif kind == DONE:
                self.total = seq
            elif kind == WANT_SLOT:
                core.slot_wanted = True  # the caller's thread rings when it gives one back
                self.take_returned()
            elif kind == WANT_POOL:
                self.make_pool(seq)
            elif kind == ERROR:
                raise _Stop(child_error("producer", pickle.loads(entry.body)))

    def on_consumer(self, worker, events):
        """Results (the consumer has room again: hand it the next item first), or an error."""
        if events & _WRITABLE:
            try:
                worker.outbox.flush()
            except OSError:
                raise self.last_words(worker) from None
            if not events & _READABLE:
                return
        try:
            frames = worker.reader.read()
        except BlockingIOError:
            return
        except (EOFError, ConnectionResetError):
            raise _died(worker.process) from None
        held, free, done = worker.held, self.free, []
        for entry in frames:
            if entry.kind == RESULT_FRAME:
                done.append((held.popleft()[2], entry))  # results come back in the order of hand-off
                free.append(worker)
            elif entry.kind == ERROR:  # the results it finished before the error still reach the caller
                for slot, result in done:
                    self.on_result(worker, slot, result)
                raise _Stop(child_error(worker.name, pickle.loads(entry.body)))
        fifo = self.fifo
        if free and not fifo and self.producer_open and self.producer_sent.poll(0):  # one came since we woke
            self.on_producer(None, 0)
        if fifo and free:  # the consumer waits for this: the bookkeeping can wait for it
            later = {}
            while fifo and free:
                self.hand(free.popleft(), *fifo.popleft(), later)
            for receiver, data in later.items():  # one write for all that go to one consumer
                self.send(receiver, data[0] if len(data) == 1 else b"".join(data))
            if self.timed:
                self.timeline.add_depth(time.perf_counter(), len(fifo))
        if self.timeout is not None:
            worker.deadline = time.monotonic() + self.timeout * held[0][1] if held else None
        for slot, entry in done:
            self.on_result(worker, slot, entry)

    def on_result(self, worker, slot, entry):
        """File a result: to the caller's queue if it is the next in order, else until its turn."""
        flags, count, seq = entry.flags, entry.count, entry.seq
        if self.timed:
            self.timeline.add(entry.t1, worker.name, "started", seq)
            self.timeline.add(entry.t2, worker.name, "finished", seq)
        if slot >= 0 and not flags & IN_SLOT:  # the result travelled pickled: the slot is free at once
            self.give_slot(slot)
        result = ToCaller(RESULT, seq, count, flags, entry.body, worker.name)
        if seq != self.next_out:
            self.done[seq] = result
            return
        deliver, done = self.deliver, self.done
        deliver.append(result)
        self.next_out += count
        while done and self.next_out in done:
            result = done.pop(self.next_out)
            deliver.append(result)
            self.next_out += result.count

    def on_exit(self, role, events):
        """A child's sentinel fired. Usually end-of-file on its pipe has already said it died; this
        catches a death while another process still holds that pipe's other end (fork inheritance)."""
        core = self.core
        if role == "producer":
            process, fd, name, expected = core.producer, core.items.fileno(), "producer", self.total is not None
            self.forget(process.sentinel)
        else:
            process, fd, name, expected = role.process, role.fd, role.name, False
            self.forget(process.sentinel)
        if not expected and not _has_data(fd):
            raise _died(process, name)

    # -- actions -----------------------------------------------------------------------

    def hand(self, worker, seq, count, slot, data, later=None):
        """Send a hand-off to ``worker`` now, or add it to ``later`` (worker -> frames) to send with others."""
        if slot >= 0 and not worker.has_pool:
            worker.has_pool = True
            data = frame(POOL, body=pickle.dumps(self.core.pool, pickle.HIGHEST_PROTOCOL)) + bytes(data)
        now = time.perf_counter() if self.timed else 0.0  # before sending: the consumer may start at once
        if later is not None:
            later.setdefault(worker, []).append(data)
        else:
            self.send(worker, data)
        worker.held.append((seq, count, slot))
        if self.timeout is not None and len(worker.held) == 1:
            worker.deadline = time.monotonic() + self.timeout * count
        if self.timed:
            self.timeline.add(now, "main", "handed", seq)
            self.timeline.add(now, worker.name, "handed", seq)

    def send(self, worker, data):
        try:
            worker.outbox.send(data)
        except OSError:  # the consumer has gone: say why, if it said
            raise self.last_words(worker) from None

    @staticmethod
    def last_words(worker):
        """A consumer that main could not write to has gone: its error, if it sent one before it left, else its death.

        (With prefetch, a consumer that raises may still have room for an
        item, and main may write to it before reading its error.)
        """
        try:
            while True:
                for entry in worker.reader.read():
                    if entry.kind == ERROR:
                        return _Stop(child_error(worker.name, pickle.loads(entry.body)))
        except (OSError, EOFError):
            pass
        return _died(worker.process)

    def make_pool(self, slot_bytes):
        """Slots for what the consumers may hold and a few on their way, for the results the caller may
        keep, plus one; fewer if /dev/shm is short (then nothing is lent); none at all if not even two fit
        (then big arrays are pickled). Not one per credit: a wide window for small items must not cost
        shared memory, so when every slot is in use the producer waits for one.
        Every slot goes to the producer at once: it takes one for each big item."""
        core = self.core
        working = core.consumers * (1 + core.prefetch) + (ON_THEIR_WAY if core.capacity else UNBOUNDED_EXTRA_SLOTS)
        if core.capacity:
            working = min(working, core.capacity)
        slots = working + LENT_AT_MOST + 1
        pool = None
        while pool is None and slots >= 2:
            try:
                pool = SlotPool(slots, slot_bytes)
            except NotEnoughSharedMemory:
                slots //= 2
        core.pool = pool
        if pool is not None:
            core.lend_limit = max(0, pool.slots - working - 1)
        self.control.send(frame(POOL, body=pickle.dumps(pool, pickle.HIGHEST_PROTOCOL)))
        if pool is not None:
            for _ in range(pool.slots):
                self.give_slot(pool.acquire())

    def give_slot(self, slot):
        """The producer may write its next big item into ``slot``."""
        self.core.slot_wanted = False
        try:
            self.control.send(frame(SLOT, slot=slot))
        except OSError:  # the producer has finished or died
            self.control.closed = True

    def take_returned(self):
        returned = self.core.returned
        while not returned.empty():
            self.give_slot(returned.get())

    def until_deadline(self):
        """Milliseconds until the earliest busy consumer's deadline (None when none is busy)."""
        deadlines = [worker.deadline for worker in self.core.workers if worker.held]
        return max(0.0, (min(deadlines) - time.monotonic()) * 1000) if deadlines else None

    def check_deadlines(self):
        """A consumer past its deadline is killed at once (it may be stuck for good), and the run ends."""
        now = time.monotonic()
        for worker in self.core.workers:
            if worker.held and worker.deadline <= now:
                worker.process.kill()
                worker.process.join(1.0)
                raise _Stop(WorkerTimeout(worker.name, self.core.timeout, worker.held[0][0]))


def dispatch(core):
    """The dispatcher thread: run, then stop the children, tell the caller how it ended, close the pipes."""
    outcome, dispatcher = ToCaller(CLOSED), None
    try:
        try:
            dispatcher = _Dispatcher(core)
            if dispatcher.run():
                outcome = ToCaller(END)
        except _Stop as stop:
            outcome = ToCaller(FAILED, error=stop.error)
        except BaseException as exc:  # a bug here: stop the children, tell the caller
            outcome = ToCaller(FAILED, error=exc)
        core.stop_children(STOP_GRACE if outcome.kind is END else 0.0)
        if outcome.kind is CLOSED:
            core.close_pool()  # closed or dropped: no one will take the results still queued
    finally:
        finished = dispatcher.deliver if dispatcher is not None and outcome.kind is FAILED else []
        core.out.put([*finished, outcome])  # after a failure, the results in order before it come first
        core.release()
