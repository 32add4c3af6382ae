"""Lesson 08, the ordered pipeline opened up: what its children run, and the check of its exercise.

The lesson writes the seed's loop (producer -> main -> idle consumer, results in
hand-off order) in a cell; the producer and the consumer it starts are here,
short stdlib code the lesson shows with ``ipckit.show``. So are the tasks it
gives ``ProcessPoolExecutor.map`` for comparison, and ``Ticket``, an item that
notes when it leaves main, to see how far ahead the executor hands out work.
"""
import os
import threading
import time

from ..context import get_context
from .checking import Wrong, exercise_check

DONE = None  # what the producer sends after its last item
STOP = None  # what main sends a consumer when there is no more work


# --- the loop's children ----------------------------------------------------------------


def produce(conn, count, interval=0.01, idle_timeout=60):
    """Send the items 0 .. count-1 to main, one every ``interval`` seconds, then DONE; leave when main sends STOP.

    Like a consumer, it stays until main says STOP (or closes its end, or idle_timeout s pass):
    so a child that ends before main has said STOP has died.
    """
    with conn:
        for item in range(count):
            time.sleep(interval)
            if conn.poll():  # STOP (or main closed its end) before the last item: no more are wanted
                return
            conn.send(item)
        conn.send(DONE)
        conn.poll(idle_timeout)


def consume(conn, work, idle_timeout=60):
    """Receive (seq, item), send back (seq, work(item)), until STOP, until main closes its end, or after idle_timeout s of silence."""
    with conn:
        while conn.poll(idle_timeout):
            try:
                message = conn.recv()
            except EOFError:
                return  # main closed its end
            if message is STOP:
                return
            seq, item = message
            conn.send((seq, work(item)))


def square_slowly(item, seconds=0.05):
    """The work: ``item * item`` after ``seconds``, four times as long for every fourth item, so results finish out of order."""
    time.sleep(seconds * (4 if item % 4 == 0 else 1))
    return item * item


def square_or_die(item, bad, seconds=0.05):
    """Like ``square_slowly``, but item ``bad`` ends its process without a word (exit code 3), a little later than the others."""
    if item == bad:
        time.sleep(6 * seconds)
        os._exit(3)
    return square_slowly(item, seconds)


# --- ProcessPoolExecutor.map, looked at ---------------------------------------------------


class Ticket:
    """An item that notes, in the process that pickles it, when it was pickled: when it left for a worker."""

    sent = []  # (number, time.perf_counter()) of every ticket pickled in this process

    def __init__(self, number):
        self.number = number

    def __getstate__(self):
        Ticket.sent.append((self.number, time.perf_counter()))
        return {"number": self.number}


def square_ticket(ticket):
    """The same work on a ticket; returns (result, when it finished) (``perf_counter`` is one clock for all processes)."""
    return square_slowly(ticket.number), time.perf_counter()


# --- the exercise: the results of several workers, in order ---------------------------------

HOLD = 3.0  # seconds a check worker waits for the learner's code to move on before it gives up
NOTICE = 2.0  # seconds the learner's code may take to notice a dead worker
HELD = "held up"  # the value a check worker sends instead of a result when its wait timed out
SPINNING = 0.15  # a waiting loop that uses more than this share of a core is polling, not blocking


def send_in_turn(conn, steps, events, hold=HOLD):
    """Follow ``steps`` in order: ("send", seq) sends (seq, seq * seq); ("wait", name[, seconds]) and ("set", name) use
    ``events[name]``; ("pause", seconds) sleeps; ("exit", code) ends the process at once. A result sent after a wait
    that timed out (after ``hold`` seconds unless the step says) carries HELD instead of its value."""
    held = False
    for action, argument, *seconds in steps:
        if action == "send":
            conn.send((argument, HELD if held else argument * argument))
        elif action == "wait":
            held = not events[argument].wait(*seconds or [hold]) or held
        elif action == "set":
            events[argument].set()
        elif action == "pause":
            time.sleep(argument)
        else:
            os._exit(argument)


# Two workers, eight results. worker-1 sends 1, 4, 5, 6 first; worker-0 then pauses (the learner's code waits, with
# both workers running), sends 0, 2, 3, and sends 7 only once the learner's code has yielded its first value (a
# function that waits for every result never does).
IN_TURN = [
    [("wait", "early_sent"), ("pause", 0.5), ("send", 0), ("send", 2), ("send", 3), ("wait", "first_out"), ("send", 7), ("wait", "finished", 60)],
    [("send", 1), ("send", 4), ("send", 5), ("send", 6), ("set", "early_sent"), ("wait", "finished", 60)],
]
# worker-0 sends 0 and dies once worker-1 has sent its three results: 2 and 4 never come.
ONE_DIES = [
    [("send", 0), ("wait", "early_sent"), ("exit", 3)],
    [("send", 1), ("send", 3), ("send", 5), ("set", "early_sent"), ("wait", "finished", 60)],
]
_EVENTS = ("early_sent", "first_out", "finished")


class _Run:
    """The learner's ``in_order`` over the pipes of workers that follow ``scripts``, iterated in a thread of its own."""

    def __init__(self, ctx, in_order, scripts, count, timeout):
        self.events = {name: ctx.Event() for name in _EVENTS}
        self.conns, self.kept, self.workers = [], [], []
        for number, steps in enumerate(scripts):
            conn, worker_end = ctx.Pipe(duplex=False)
            worker = ctx.Process(target=send_in_turn, args=(worker_end, steps, self.events), name=f"worker-{number}",
                                 daemon=True)
            self.conns.append(conn)
            self.kept.append(worker_end)  # kept open here: a dead worker's pipe never reports end-of-file, only its sentinel tells
            self.workers.append(worker)
        self.values, self.outcome, self.cpu_s, self.wall_s = [], None, 0.0, 0.0
        self.thread = threading.Thread(target=self._iterate, args=(in_order, count, timeout), daemon=True, name="learner-code")

    def _iterate(self, in_order, count, timeout):
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        try:
            for value in in_order(list(self.conns), list(self.workers), count, timeout):
                self.values.append(value)
                self.events["first_out"].set()
            self.outcome = ("returned", None)
        except Exception as exc:
            self.outcome = ("raised", exc)
        finally:
            self.cpu_s, self.wall_s = time.thread_time() - cpu_start, time.perf_counter() - wall_start

    def __enter__(self):
        try:
            for worker in self.workers:
                worker.start()
            self.thread.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for event in self.events.values():
            event.set()  # whatever the learner's code did, every worker can now run to its end
        for end in self.kept:
            end.close()  # with the workers gone, the pipes now end: learner code still waiting on them wakes up
        for worker in self.workers:
            worker.join(timeout=HOLD + 2)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=2)
        self.thread.join(timeout=1)
        for conn in self.conns:
            conn.close()
        self.events = {}  # the learner's exception may keep this object in a reference cycle: free the semaphores now


def _raised_by_learner(run):
    """Re-raise NotImplementedError (the skeleton) as it is; turn any other exception into Wrong."""
    kind, value = run.outcome
    if kind == "raised":
        if isinstance(value, NotImplementedError):
            raise value
        raise Wrong(f"in_order raised {type(value).__name__}: {value}, though every worker was alive and sending")


def _check_in_turn(ctx, in_order, timeout):
    count, expected = 8, [n * n for n in range(8)]
    with _Run(ctx, in_order, IN_TURN, count, timeout) as run:
        run.thread.join(HOLD + 5)
        if run.thread.is_alive():
            raise Wrong(
                f"in_order was still running {HOLD + 5:.0f} s after it started, with {len(run.values)} values given: "
                f"stop after count={count} results, and wait with wait(..., timeout)."
            )
    _raised_by_learner(run)
    if HELD in run.values:
        raise Wrong(
            "in_order gave its first value only after every result had arrived: yield each value as soon as "
            "it and every earlier one are there (result 7 was sent only once the first value came out)."
        )
    pairs = [v for v in run.values if isinstance(v, tuple)]
    if pairs and len(pairs) == len(run.values):
        raise Wrong(f"in_order gave {run.values[:3]}...: yield the values alone, not (seq, value) pairs.")
    if run.values != expected:
        arrived = [1, 16, 25, 36, 0, 4, 9, 49]
        hint = " That is the order they arrived in: keep early ones in a dict until their turn." if run.values == arrived else ""
        raise Wrong(f"in_order gave {run.values}; the results in seq order are {expected}.{hint}")
    if run.cpu_s > SPINNING * run.wall_s:
        raise Wrong(
            f"in_order kept a core {run.cpu_s / run.wall_s:.0%} busy while it waited: block in "
            "multiprocessing.connection.wait(..., timeout) instead of asking again and again."
        )


def _check_one_dies(ctx, in_order, timeout):
    with _Run(ctx, in_order, ONE_DIES, 6, timeout) as run:
        dead = run.workers[0]
        dead.join(timeout=30)
        run.thread.join(NOTICE)
        if run.thread.is_alive():
            raise Wrong(
                f"worker-0 died (exit code {dead.exitcode}) and in_order was still waiting {NOTICE:.0f} s later, "
                f"with timeout={timeout}: wait on the workers' sentinels as well as on the pipes, and raise when one ends."
            )
    kind, value = run.outcome
    if isinstance(value, NotImplementedError):
        raise value
    if kind == "returned":
        raise Wrong(f"worker-0 died, yet in_order ended without an error after giving {run.values}: raise, so the caller knows.")
    if isinstance(value, TimeoutError):
        raise Wrong("worker-0 died and in_order raised TimeoutError: notice the death itself, with the workers' sentinels.")
    if run.values != [0, 1][: len(run.values)]:
        raise Wrong(f"before worker-0 died, in_order gave {run.values}; only 0 and 1 (the values of results 0 and 1) were due.")
    return type(value).__name__


@exercise_check
def check_in_order(in_order, start_method=None, timeout=10):
    """Run the learner's ``in_order(conns, processes, count, timeout)`` over worker children; say Right, or what is wrong.

    First two live workers send eight results out of order (one only after the
    first value has come out); then one worker dies after sending its first result.
    """
    if not callable(in_order):
        raise Wrong("in_order should be a function in_order(conns, processes, count, timeout); run the exercise cell first.")
    ctx = get_context(start_method)
    _check_in_turn(ctx, in_order, timeout)
    raised = _check_one_dies(ctx, in_order, timeout)
    return (
        "each value came out as soon as its turn came, none waited for later ones, and a dead worker "
        f"was noticed at once ({raised})."
    )
