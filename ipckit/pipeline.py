"""The ordered pipeline: producer -> main -> idle consumers, results in hand-off order.

::

    with OrderedPipeline(produce, consume, consumers=2) as pipe:
        for result in pipe:       # in hand-off order, each as soon as it and all earlier ones are done
            ...

How it works. The producer process runs ``produce(*produce_args)`` and sends
each item to main the moment it is yielded. A thread in main (the dispatcher)
waits on every pipe *and* every child's sentinel at once (one kept
``select.poll``). It hands an item to a consumer only when that consumer is
idle (each holds at most one item: the *strict* hand-off), keeps the rest in a
FIFO, numbers items in hand-off order, and puts the results in order for the
caller's loop. The dispatcher reads only the frames' headers: an item's
pickle goes from the producer to a consumer unopened, and a result's pickle is
opened by the caller's own thread, so the dispatcher is free for the next
hand-off at once.

Two opt-ins trade the strict hand-off for speed with many cheap items:

- ``prefetch=k``: a consumer may hold up to ``1 + k`` items, so it never waits
  for main between two of them (the timeline shows them waiting at the
  consumer: :meth:`Timeline.held`). The costs: items wait at a consumer rather
  than in main, a consumer that dies or times out loses those too, and the
  results of items a consumer got together go back together (a quick one's
  result waits up to ``HOLD_RESULTS_AT_MOST`` plus the item it is then on).
- ``chunksize=k``: items travel producer -> main -> consumer in batches of up
  to ``k``. The producer sends whatever it has ready as soon as it may send, so
  no item waits for a batch to fill; results still reach the loop one by one,
  in order. A big array (see below) travels alone.

Which to use: the strict hand-off (the default) when a consumer must not hold
work it could lose, or when items are expensive (then the hand-off's cost
disappears in the work, and an idle consumer always gets the next item);
``prefetch`` and ``chunksize`` for many cheap items, where the hand-offs
themselves are the cost. For cheap work on big arrays (``a * 2``), one process
doing everything itself beats every multi-process option: copying an array
into shared memory costs about what the work does
(``ipckit.pipeline_speed.big_array_rates`` measures it).

Errors keep their type. An exception in ``produce`` or ``consume`` reaches
the caller's loop as itself (``except KeyError`` works), with the child's
traceback as its ``__cause__`` and a note naming the process and the item;
one that cannot travel becomes :class:`WorkerError`; a child that dies becomes
:class:`WorkerDied` (naming the signal); with ``timeout=``, a consumer that
takes longer on one item is stopped and becomes :class:`WorkerTimeout`. In
every case every child is stopped first (see :mod:`ipckit.run`).

Bounded by default. At most ``buffer + consumers x (1 + prefetch)`` hand-offs
(items, or batches with ``chunksize``) are in the system at once: sent, in
main, at a consumer, or done but not yet taken by the caller's loop. The
caller's thread gives the producer a credit (a byte on a pipe) for each
hand-off its loop has taken, and the producer waits when it has none, so
memory does not grow. ``buffer`` defaults to 2 x consumers x (1 + prefetch)
(twice that with ``chunksize``); ``buffer=None`` is unbounded: main then holds every item the producer is
ahead by, so a fast producer can fill main's memory. The timeline of events
is off unless asked for (``timeline=True``), and even then keeps only the last
``TIMELINE_EVENTS``.

Big arrays. A numpy array of at least ``SHARED_MEMORY_THRESHOLD`` bytes, as an
item or as the result of such an item, travels through a reused
shared-memory slot (:class:`ipckit.shm.SlotPool`, owned by main); only a
small reference crosses the pipes. The pool is sized by the first big array,
for what the consumers may hold, a few on their way and the results the
caller may keep (not by the credit window); when every slot is in use the
producer waits for one (counted in :attr:`OrderedPipeline.stats` as
``"waited for a slot"``) rather than pickle.
Only an array bigger than a slot, or one made when ``/dev/shm`` has no room
for even two slots, is pickled (``"pickled"``). Inside ``consume`` such an item
is a writable view into its slot, valid during the call: copy it if you keep
it. **Compute in place** for the fastest path: ``np.multiply(a, 2, out=a);
return a`` (or any contiguous part of ``a``) sends the result back with no
copy at all; any other array result is copied into the item's slot once. The
caller's loop gets such a result in its slot, without a copy, on loan: the
slot is reused once the result and every view of it are dropped. While the
caller holds ``LENT_AT_MOST`` of them, further results are copied out by the
caller's thread (with ``pread``, so the slots' pages do not count in main's
memory) and their slots reused at once.

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

Main never blocks on a child that is busy in its own code: what it writes to
a child waits in an outbox until the pipe has room, and the caller's thread
rings the dispatcher's doorbell only when it closes, or when it gives back a
slot the producer is waiting for.
"""
import atexit
import functools
import multiprocessing.util  # noqa: F401  (its exit hook joins children: it must be registered before ours)
import numbers
import os
import pickle
import queue
import threading
import time
import weakref
from collections import deque, namedtuple

from .checks import check_count, check_timeout
from .context import get_context, require_importable, resolve_start_method
from .errors import WorkerDied, WorkerError, WorkerTimeout, add_note
from .pipeline_children import _LIVE, HOLD_RESULTS_AT_MOST, SHARED_MEMORY_THRESHOLD, end_lifeline, new_lifeline
from .pipeline_dispatch import CLOSED, FAILED, LENT_AT_MOST, RESULT, dispatch
from .pipeline_wire import IN_SLOT, LIST, MAX_CHUNKSIZE
from .watch import require_posix_pipes, stop

__all__ = [
    "HOLD_RESULTS_AT_MOST",
    "LENT_AT_MOST",
    "SHARED_MEMORY_THRESHOLD",
    "TIMELINE_EVENTS",
    "OrderedPipeline",
    "Timeline",
    "WorkerDied",
    "WorkerError",
    "WorkerTimeout",
]
POLL = 0.25  # seconds between the caller's checks that the dispatcher is alive
TIMELINE_EVENTS = 100_000  # the most events a timeline keeps; the oldest go first

Event = namedtuple("Event", "time process event seq")


class Timeline:
    """What happened when: events ``(time, process, event, seq)`` and buffer depth ``(time, depth)``.

    Times are seconds since the pipeline started, on ``time.perf_counter``, which
    is the same clock in every process on Linux and macOS. Events: ``produced``,
    ``sent`` (producer; later than produced when it waited for a credit),
    ``received``, ``buffered``, ``handed``, ``emitted`` (main), ``handed``,
    ``started``, ``finished`` (each consumer). With ``chunksize`` an event is
    about a whole batch, and ``seq`` is the number of its first item. A ring:
    it keeps the last ``keep`` events and depths, so an endless stream costs
    bounded memory.
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

    def held(self, process):
        """``(time, items held)`` for one consumer: up by one at each hand-off, down at each finish.

        It never passes 1 in the strict hand-off, and reaches ``1 + prefetch``
        when a consumer is handed items ahead.
        """
        changes = sorted(
            (row[0], 1 if row[2] == "handed" else -1)
            for row in self._events
            if row[1] == process and row[2] in ("handed", "finished")
        )
        held, steps = 0, [(0.0, 0)]
        for when, change in changes:
            held += change
            steps.append((when, held))
        return steps


# --- main -----------------------------------------------------------------------------


def _check_worker(func, name, method):
    if not callable(func):
        raise TypeError(f"{name} must be a function defined in a module, not {type(func).__name__} {func!r}")
    require_importable(func, method, role=name)


def _give_back(core_ref, slot):
    """A lent result and all its views are gone (any thread, maybe inside the GC).

    It holds the machinery weakly, so a loan keeps nothing alive."""
    core = core_ref()
    if core is not None:
        with core.loan_lock:
            core.lent -= 1
        core.return_slot(slot)


class _Consumer:
    def __init__(self, name, process, conn):
        self.name, self.process, self.conn = name, process, conn
        self.held = deque()  # (seq, count, slot) of each hand-off it holds, oldest first
        self.deadline = None  # when it must have finished the oldest (with a timeout only)
        self.has_pool = False


class _Core:
    """The pipeline's machinery: children, pipes, slots, queues. Shared by the caller's thread and the dispatcher.

    It never refers to the :class:`OrderedPipeline` (only through the weak
    reference ``owner``), so a pipeline nobody holds can be collected while
    its dispatcher still runs; the dispatcher then stops everything.
    """

    def __init__(self, consumers, buffer, prefetch, chunksize, timeout, timeline):
        self.consumers, self.prefetch, self.chunksize = consumers, prefetch, chunksize
        self.timeout, self.timeline = timeout, timeline
        self.capacity = None if buffer is None else buffer + consumers * (1 + prefetch)  # hand-offs in the system
        self.stats = {"items": 0, "hand-offs": 0, "via shared memory": 0, "pickled": 0, "waited for a slot": 0}
        self.out = queue.SimpleQueue()  # lists of pipeline_dispatch.ToCaller for the caller, in order
        self.returned = queue.SimpleQueue()  # slots the caller's thread has finished with
        self.slot_wanted = False  # the producer waits for a slot: ring when one comes back
        self.closing = False  # close() has begun, or the pipeline was dropped: stop
        self.closed = False  # close() has done all its work
        self.finished = False  # every result (or the failure) has reached the caller's loop
        self.lock = threading.RLock()  # guards the pipes' closing; re-entrant for finalizers
        self.stop_lock = threading.Lock()
        self.loan_lock = threading.Lock()
        self.pool = None
        self.lent = 0  # results the caller holds in their slots
        self.lend_limit = 0
        self.producer = None
        self.workers = []
        self.items = self.control = None
        self.credit_fd = None  # main's end of the producer's credit pipe (caller's thread only)
        self.received = 0  # hand-offs the dispatcher has received (written by it only)
        self.taken = 0  # hand-offs whose results the caller's loop has taken (written by its thread only)
        self.step = max(1, (self.capacity or 0) // 2)  # credits go out in steps this big (and before any wait)
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
        from .pipeline_children import _run_consumer, _run_producer

        self.lifeline, lifeline_in = new_lifeline()
        forked = ctx.get_start_method() == "fork"
        timed = self.timeline.enabled
        try:
            for index in range(self.consumers):
                main_end, child_end = ctx.Pipe()
                inherited = (main_end.fileno(),) if forked else ()
                process = ctx.Process(
                    target=_run_consumer, name=f"consumer-{index}",
                    args=(consume, child_end, lifeline_in, timed, self.timeout is None, inherited),
                )
                self.workers.append(_Consumer(process.name, process, main_end))
                try:
                    process.start()
                finally:
                    child_end.close()
            items_in, items_out = ctx.Pipe(duplex=False)
            control_in, control_out = ctx.Pipe(duplex=False)
            self.items, self.control = items_in, control_out
            credits_in = credits_out = None
            if self.capacity is not None:
                credits_in, credits_out = ctx.Pipe(duplex=False)
                self.credit_fd = os.dup(credits_out.fileno())
                credits_out.close()
                os.set_blocking(self.credit_fd, False)
            mine = [items_in.fileno(), control_out.fileno()] + ([self.credit_fd] if self.credit_fd is not None else [])
            self.producer = ctx.Process(
                target=_run_producer,
                args=(produce, args, items_out, control_in, credits_in, lifeline_in, self.capacity, self.chunksize,
                      timed, tuple(mine) if forked else ()),
                name="producer",
            )
            try:
                self.producer.start()
            finally:
                for conn in (items_out, control_in, credits_in):
                    if conn is not None:
                        conn.close()
        finally:
            lifeline_in.close()  # the children have their own copies
        self.thread = threading.Thread(target=dispatch, args=(self,), name="ipckit-pipeline", daemon=True)
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

    def return_slot(self, slot):
        """The caller's side is done with a slot (any thread): the dispatcher gives it to the producer again."""
        self.returned.put(slot)
        if self.slot_wanted:
            self.ring()

    # -- the caller's thread -------------------------------------------------------------

    def pay(self, owed):
        """Write ``owed`` credits (one byte each) for the producer; return how many went (caller's thread)."""
        with self.lock:
            if self.credit_fd is None:
                return owed
            try:
                return os.write(self.credit_fd, _CREDITS[: min(owed, len(_CREDITS))])
            except BlockingIOError:  # the producer has a pipe full of credits: plenty for now
                return 0
            except OSError:  # the producer has finished or gone
                return owed

    def receive_array(self, ref):
        """A result in its slot: lent to the caller without a copy, or copied out once enough are lent."""
        pool = self.pool
        with self.loan_lock:
            lend = self.lent < self.lend_limit
            if lend:
                self.lent += 1
        try:
            if lend:
                return pool.lend(ref, self.give_back)
            array = pool.copy_out(ref)
        except ValueError:
            if self.closing:  # closed under the loop, from another thread
                raise ValueError(_CLOSED_MESSAGE) from None
            raise
        self.return_slot(ref.slot)
        return array

    # -- stopping ----------------------------------------------------------------------

    def stop_children(self, grace):
        """Stop every child. Safe from any thread and again and again."""
        with self.stop_lock:
            stop(self.processes(), grace)

    def close_pool(self):
        """Free the slots (never raises, even while the caller still holds lent results)."""
        if self.pool is not None:
            self.pool.close()

    def release(self):
        """Close main's ends of every pipe, the lifeline included. Only once the dispatcher no longer uses them."""
        with self.lock:
            fds = (self.wake_read, self.wake_write, self.credit_fd)
            self.wake_read = self.wake_write = self.credit_fd = None
            lifeline, self.lifeline = self.lifeline, None
            for fd in fds:
                if fd is not None:
                    os.close(fd)
            if lifeline is not None:
                end_lifeline(lifeline)
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
        self.close_pool()
        if other and thread.is_alive():
            thread.join(2.0)  # it was writing to a child that has now gone
        if thread is None or not thread.is_alive():  # never close what the dispatcher still uses
            self.release()
        self.closed = True


_CREDITS = b"\x01" * 4096


@atexit.register
def _close_at_exit():
    """At interpreter exit, stop what is still running (before multiprocessing joins its children)."""
    for core in list(_LIVE):
        core.close()


def _unpickling_failed(exc, process, seq):
    """A result main cannot unpickle: the error keeps its type, with a note; an exit becomes UnpicklingError."""
    where = f"while main unpickled the result of item {seq} from {process}"
    if isinstance(exc, Exception):
        add_note(exc, f"raised {where}")
        return exc
    error = pickle.UnpicklingError(f"{type(exc).__name__}{exc.args!r} was raised {where}; unpickling must not exit")
    error.__cause__ = exc
    return error


def _results(core):
    """The caller's side: every result in order, one at a time, unpickled here (off the dispatcher's path).

    The dispatcher puts a list of ``ToCaller`` entries per round; a RESULT's
    ``body`` is the result's pickle (a batch's list of
    results with the LIST flag; an ArrayRef to a result in its slot with
    IN_SLOT). For each hand-off whose results the loop has taken, the producer
    gets a credit; they are written in steps of half the capacity, and before
    this thread waits while fewer than a step are still to come (the producer
    may be waiting for them; with more on their way, this thread will wake for
    them and pay then).
    """
    out, loads, timeline = core.out, pickle.loads, core.timeline
    credits = core.credit_fd is not None
    owed, step = 0, core.step
    while True:
        if core.closing:
            raise ValueError(_CLOSED_MESSAGE)
        if out.empty():
            if owed and core.received - core.taken < step:  # few left to come: the producer must not wait
                owed -= core.pay(owed)
            entries = _wait_for_results(core)
        else:
            entries = out.get()
        for entry in entries:
            if entry.kind is not RESULT:
                core.finished = True
                core.close_pool()  # every result before this one has been lent or copied
                if entry.kind is FAILED:
                    raise entry.error
                if entry.kind is CLOSED:
                    raise ValueError(_CLOSED_MESSAGE)
                return
            if core.closing:
                raise ValueError(_CLOSED_MESSAGE)
            seq, flags, process = entry.seq, entry.flags, entry.process
            try:
                value = loads(entry.body)
            except BaseException as exc:  # the result's own unpickling failed: end the run, keep the error's type
                core.finished = True
                core.close()
                raise _unpickling_failed(exc, process, seq) from None
            if flags & IN_SLOT:
                value = core.receive_array(value)
            if timeline.enabled:
                timeline.add(time.perf_counter(), "main", "emitted", seq)
            if flags & LIST:
                yield from value[:-1]
                value = value[-1]
            core.taken += 1
            if credits:
                owed += 1
                if owed >= step:
                    owed -= core.pay(owed)
            yield value


def _wait_for_results(core):
    """Block until the dispatcher has something for the caller, checking now and then that it still runs."""
    while True:
        try:
            return core.out.get(timeout=POLL)
        except queue.Empty:
            if core.closing:
                raise ValueError(_CLOSED_MESSAGE) from None
            if not core.thread.is_alive() and core.out.empty():
                raise RuntimeError("the pipeline's dispatcher thread ended without a word (a bug in ipckit)") from None


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

    - ``buffer``: how many hand-offs main may hold beyond those at consumers;
      ``"auto"`` (the default) is 2 x consumers x (1 + prefetch), twice that
      with ``chunksize`` (more batches on their way hide the time each takes
      to travel). ``None`` is unbounded: the producer never waits, and main
      holds every item it is ahead by (memory grows with the stream while
      consumers are slower).
    - ``prefetch``: items a consumer may hold beyond the one it works on
      (default 0: the strict hand-off, each consumer holds one item).
    - ``chunksize``: the most items in one hand-off (default 1). Batches form
      from what the producer has ready; none waits to be filled.
    - ``timeline``: record every event for :func:`ipckit.plots.plot_timeline`
      (off by default; when on, the last ``TIMELINE_EVENTS`` are kept).
    - ``timeout``: seconds a consumer may take on one item (a batch of n items
      gets n x timeout); a slower one is stopped and the loop raises
      :class:`WorkerTimeout` (default: no limit).

    ``stats`` counts the ``items``, the ``hand-offs`` (items, or batches), the
    big arrays that went ``via shared memory`` or were ``pickled``, and the
    times the producer ``waited for a slot`` (that one depends on timing).
    """

    def __init__(self, produce, consume, produce_args=(), consumers=1, buffer=_AUTO, start_method=None,
                 timeline=False, timeout=None, prefetch=0, chunksize=1):
        require_posix_pipes("OrderedPipeline (use ProcessPoolExecutor.map for ordered results elsewhere)")
        method = resolve_start_method(start_method)
        _check_worker(produce, "produce", method)
        _check_worker(consume, "consume", method)
        if isinstance(produce_args, (str, bytes)) or not isinstance(produce_args, (tuple, list)):
            raise TypeError(f"produce_args must be a tuple of arguments for produce, not {produce_args!r}")
        self.consumers = check_count(consumers, "consumers")
        self.prefetch = _check_option(prefetch, "prefetch", 0, "items a consumer may hold beyond the one it works on; "
                                      "0 is the strict hand-off")
        self.chunksize = _check_option(chunksize, "chunksize", 1, "the most items in one hand-off; 1 sends each alone")
        if self.chunksize > MAX_CHUNKSIZE:
            raise ValueError(f"chunksize must be at most {MAX_CHUNKSIZE:,}, not {self.chunksize:,}")
        if isinstance(buffer, str) and buffer == _AUTO:
            self.buffer = (2 if self.chunksize == 1 else 4) * self.consumers * (1 + self.prefetch)
        elif buffer is None:
            self.buffer = None
        elif isinstance(buffer, str):
            raise TypeError(
                f"buffer must be a whole number, 'auto' (2 x consumers) or None (unbounded), not {buffer!r} "
                "(with prefetch, 'auto' is 2 x consumers x (1 + prefetch))"
            )
        else:
            self.buffer = check_count(buffer, "buffer")
        self.timeout = None if timeout is None else check_timeout(timeout)
        self.start_method = method
        core = self._core = _Core(self.consumers, self.buffer, self.prefetch, self.chunksize, self.timeout,
                                  Timeline(time.perf_counter(), bool(timeline)))
        self.stats, self.timeline = core.stats, core.timeline
        self._results = _results(core)
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
        return self._live_results()  # a generator: the fast path for `for result in pipe`

    def __next__(self):
        core = self._core
        if core.closing and not core.finished:
            raise ValueError(_CLOSED_MESSAGE)
        return next(self._live_results())

    def _live_results(self):
        """The results generator; a new one, going on where it stopped, if Ctrl-C ended the last one while it waited."""
        if self._results.gi_frame is None and not self._core.finished:
            self._results = _results(self._core)
        return self._results


def _check_option(value, name, minimum, meaning):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number ({meaning}), not {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} ({meaning}), not {value}")
    return int(value)
