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
from multiprocessing.connection import Connection

from ..context import get_context
from .checking import CountedConnection, Wrong, exercise_check

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
    """Receive (seq, item), send back (seq, work(item)); leave on STOP, on end-of-file, or after idle_timeout s."""
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
    """``item * item`` after ``seconds``, four times as long on every fourth item: results finish out of order."""
    time.sleep(seconds * (4 if item % 4 == 0 else 1))
    return item * item


def square_or_die(item, bad, seconds=0.05):
    """Like ``square_slowly``, but item ``bad`` ends its process without a word (exit code 3), a little later."""
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
    """The same work on a ticket; returns (result, when it finished): ``perf_counter``, one clock for all processes."""
    return square_slowly(ticket.number), time.perf_counter()


# --- the exercise: the results of several workers, in order ---------------------------------

HOLD = 2.0  # seconds a check worker waits for the learner's code to move on before it gives up
NOTICE = 1.5  # seconds the learner's code may take to notice a dead worker
QUIET = 0.5  # the timeout the check gives in_order while every worker is alive and sends nothing
LOOKS = 4  # times in_order may look at each pipe during that quiet time; a loop that looks more often is polling
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
# function that waits for every result never does). Then both stay alive and send nothing more (the quiet test).
IN_TURN = [
    [("wait", "early_sent"), ("pause", 0.5), ("send", 0), ("send", 2), ("send", 3), ("wait", "first_out"), ("send", 7),
     ("wait", "finished", 60)],
    [("send", 1), ("send", 4), ("send", 5), ("send", 6), ("set", "early_sent"), ("wait", "finished", 60)],
]
# Three workers; the one in the middle (worker-1) sends 0 and dies once worker-0 has sent 1 and 3: 2 and 4 never
# come. (In the middle, so that code watching only the first or only the last sentinel misses the death.)
ONE_DIES = [
    [("send", 1), ("send", 3), ("set", "early_sent"), ("wait", "finished", 60)],
    [("send", 0), ("wait", "early_sent"), ("exit", 3)],
    [("send", 5), ("wait", "finished", 60)],
]
_EVENTS = ("early_sent", "first_out", "finished")


class _Call:
    """One call of the learner's ``in_order``, iterated in a thread of its own: its values, outcome and times."""

    def __init__(self, in_order, conns, processes, count, timeout, first_out):
        self.values, self.outcome, self.cpu_s, self.wall_s = [], None, 0.0, 0.0
        args = (in_order, conns, processes, count, timeout, first_out)
        self.thread = threading.Thread(target=self._iterate, args=args, daemon=True, name="learner-code")
        self.thread.start()

    def _iterate(self, in_order, conns, processes, count, timeout, first_out):
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        try:
            for value in in_order(list(conns), list(processes), count, timeout):
                self.values.append(value)
                first_out.set()
            self.outcome = ("returned", None)
        except Exception as exc:
            self.outcome = ("raised", exc)
        finally:
            self.cpu_s, self.wall_s = time.thread_time() - cpu_start, time.perf_counter() - wall_start


class _Run:
    """Check workers that follow ``scripts``, each with a pipe to main, and calls of the learner's code over them."""

    def __init__(self, ctx, scripts):
        self.events = {name: ctx.Event() for name in _EVENTS}
        self.conns, self.kept, self.workers = [], [], []
        for number, steps in enumerate(scripts):
            conn, worker_end = ctx.Pipe(duplex=False)
            if type(conn) is Connection:
                conn.__class__ = CountedConnection  # main's end never travels to a child, so its class may differ
            worker = ctx.Process(target=send_in_turn, args=(worker_end, steps, self.events), name=f"worker-{number}",
                                 daemon=True)
            self.conns.append(conn)
            # kept open here: a dead worker's pipe never reports end-of-file, only its sentinel tells
            self.kept.append(worker_end)
            self.workers.append(worker)

    def call(self, in_order, count, timeout):
        """Start the learner's ``in_order`` over this run's pipes and workers, in a thread; return the _Call."""
        for conn in self.conns:
            conn.looks = 0
        return _Call(in_order, self.conns, self.workers, count, timeout, self.events["first_out"])

    def looks(self):
        """The most times the learner's code looked at one pipe since the last call started."""
        return max(getattr(conn, "looks", 0) for conn in self.conns)

    def __enter__(self):
        try:
            for worker in self.workers:
                worker.start()
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
        for conn in self.conns:
            conn.close()
        self.events = {}  # the learner's exception may keep this object in a reference cycle: free the semaphores now


def _raised_by_learner(call):
    """Re-raise NotImplementedError (the skeleton) as it is; turn any other exception into Wrong."""
    kind, value = call.outcome
    if kind == "raised":
        if isinstance(value, NotImplementedError):
            raise value
        raise Wrong(f"in_order raised {type(value).__name__}: {value}, though every worker was alive and sending")


def _check_in_turn(call, count):
    expected = [n * n for n in range(count)]
    if call.thread.is_alive():
        raise Wrong(
            f"in_order was still running {HOLD + 3:.0f} s after it started, having given {call.values} though all "
            f"{count} results had arrived: after each result, yield every value whose turn has come (a while loop), "
            f"and stop after count={count}."
        )
    _raised_by_learner(call)
    if HELD in call.values:
        raise Wrong(
            "in_order gave its first value only after every result had arrived: yield each value as soon as "
            "it and every earlier one are there (result 7 was sent only once the first value came out)."
        )
    pairs = [v for v in call.values if isinstance(v, tuple)]
    if pairs and len(pairs) == len(call.values):
        raise Wrong(f"in_order gave {call.values[:3]}...: yield the values alone, not (seq, value) pairs.")
    if call.values != expected:
        arrived = [1, 16, 25, 36, 0, 4, 9, 49]
        hint = ""
        if call.values == arrived:
            hint = " That is the order they arrived in: keep early ones in a dict until their turn."
        raise Wrong(f"in_order gave {call.values}; the results in seq order are {expected}.{hint}")
    if call.cpu_s > SPINNING * call.wall_s:
        raise Wrong(
            f"in_order kept a core {call.cpu_s / call.wall_s:.0%} busy while it waited: block in "
            "multiprocessing.connection.wait(..., timeout) instead of asking again and again."
        )


def _check_quiet(call, looks):
    if call.thread.is_alive():
        raise Wrong(
            f"the workers stayed alive but sent nothing, and in_order(..., timeout={QUIET}) was still waiting "
            f"{QUIET + 2.5:.0f} s later: when wait(..., timeout) returns an empty list, nothing happened for "
            "`timeout` seconds: raise TimeoutError."
        )
    kind, value = call.outcome
    if kind == "returned":
        raise Wrong(
            f"the workers stayed alive but sent nothing for {QUIET} s, and in_order ended without an error: "
            "raise TimeoutError, so the caller knows no result is coming."
        )
    if not isinstance(value, TimeoutError):
        raise Wrong(
            f"the workers stayed alive but sent nothing for {QUIET} s, and in_order raised "
            f"{type(value).__name__}: {value}. Raise TimeoutError when nothing happens within the timeout."
        )
    if call.wall_s < 0.8 * QUIET:
        raise Wrong(
            f"in_order(..., timeout={QUIET}) raised TimeoutError {call.wall_s:.2f} s after it started, before "
            f"{QUIET} s without news had passed: give wait() the timeout, and give up only when it returns an "
            "empty list."
        )
    if looks > LOOKS:
        raise Wrong(
            f"while nothing happened for {QUIET} s, in_order looked at each pipe {looks} times: it polls (a nap "
            "between the looks only makes it slower to notice a result). Block in one "
            "wait(pipes + sentinels, timeout=timeout): it wakes the moment something happens, or after the timeout."
        )


def _check_one_dies(call, dead):
    dead.join(timeout=30)
    call.thread.join(NOTICE)
    if call.thread.is_alive():
        raise Wrong(
            f"{dead.name} died (exit code {dead.exitcode}) and in_order was still waiting {NOTICE} s later, with "
            "timeout=10: wait on every worker's sentinel as well as on the pipes, and raise when one ends."
        )
    kind, value = call.outcome
    if isinstance(value, NotImplementedError):
        raise value
    if kind == "returned":
        raise Wrong(f"{dead.name} died, yet in_order ended without an error after giving {call.values}: raise, "
                    "so the caller knows.")
    if isinstance(value, TimeoutError):
        raise Wrong(f"{dead.name} died and in_order raised TimeoutError: notice the death itself, with the "
                    "workers' sentinels.")
    if not isinstance(value, ChildProcessError):
        raise Wrong(f"{dead.name} died and in_order raised {type(value).__name__}: {value}. When a worker's "
                    "sentinel is ready, raise ChildProcessError naming the worker that died.")
    if call.values != [0, 1][: len(call.values)]:
        raise Wrong(f"before {dead.name} died, in_order gave {call.values}; only 0 and 1 (the values of results "
                    "0 and 1) were due.")
    return type(value).__name__


@exercise_check
def check_in_order(in_order, start_method=None, timeout=10):
    """Run the learner's ``in_order(conns, processes, count, timeout)`` over check workers; say Right or what is wrong.

    Two live workers send eight results out of order (one only after the first value
    has come out); then they stay alive and silent, and in_order must give up after
    its timeout without polling; then one of three workers dies after sending its first result.
    """
    if not callable(in_order):
        raise Wrong("in_order should be a function in_order(conns, processes, count, timeout); run the exercise "
                    "cell first.")
    ctx = get_context(start_method)
    with _Run(ctx, IN_TURN) as run:
        call = run.call(in_order, 8, timeout)
        call.thread.join(HOLD + 3)
        _check_in_turn(call, 8)
        quiet = run.call(in_order, 1, QUIET)  # every result is in: the workers now send nothing
        quiet.thread.join(QUIET + 2.5)
        _check_quiet(quiet, run.looks())
    with _Run(ctx, ONE_DIES) as run:
        raised = _check_one_dies(run.call(in_order, 6, timeout), run.workers[1])
    return (
        "each value came out as soon as its turn came, none waited for later ones, silent workers ended the "
        f"wait after the timeout (TimeoutError), and a dead worker was noticed at once ({raised})."
    )
