"""Lesson 03, Queue: what its children run, and the check of its exercise.

Each worker is short stdlib code that the lesson shows with ``ipckit.show``
right where a cell starts it in a child process.
"""
import os
import queue
import time

from ..context import get_context
from .checking import Wrong, exercise_check, learner_function, learner_module

STOP = None  # the sentinel: "no more items"


# --- 1. producer and consumer ---------------------------------------------------------


def produce(items, count):
    """Put the numbers 0 .. count-1, then STOP, so the consumer knows the stream has ended."""
    for number in range(count):
        items.put(number)
    items.put(STOP)


def consume(items, results, timeout):
    """Sum numbers until STOP; get(timeout=...) turns a producer that died into queue.Empty, not a hang."""
    count, total = 0, 0
    while (item := items.get(timeout=timeout)) is not STOP:
        count += 1
        total += item
    results.put((count, total))


# --- 2. how to wait -------------------------------------------------------------------


def wait_blocking(items, report, ready, timeout):
    """Wait for one item with a blocking get: the process sleeps until the item arrives."""
    ready.set()
    cpu_start, wall_start = time.thread_time(), time.perf_counter()
    put_at = items.get(timeout=timeout)  # the item is the moment the parent put it
    got_at = time.perf_counter()
    report.put({"got_after_put_s": got_at - put_at, "waited_s": got_at - wall_start,
                "cpu_s": time.thread_time() - cpu_start})


def wait_polling(items, report, ready, timeout):
    """The seed's loop, bounded by a deadline so it cannot run for ever: do not copy it."""
    ready.set()
    cpu_start, wall_start = time.thread_time(), time.perf_counter()
    while True:
        try:
            put_at = items.get(block=False)
            break
        except queue.Empty:  # nothing yet: ask again at once
            if time.perf_counter() - wall_start > timeout:
                raise TimeoutError(f"no item within {timeout} s") from None
    got_at = time.perf_counter()
    report.put({"got_after_put_s": got_at - put_at, "waited_s": got_at - wall_start,
                "cpu_s": time.thread_time() - cpu_start})


# --- 3. join before drain -------------------------------------------------------------


def put_big_item(items, nbytes):
    """Put one item bigger than a pipe holds: this child cannot exit until someone reads it."""
    items.put(b"x" * nbytes)


# --- 4. JoinableQueue -----------------------------------------------------------------


def square_tasks(tasks, results, timeout):
    """Square each task until STOP, calling task_done() once per get(), even when a task fails."""
    while True:
        task = tasks.get(timeout=timeout)
        try:
            if task is STOP:
                return
            results.put((task, task * task))
        finally:
            tasks.task_done()  # tasks.join() in the parent waits until every put() has its task_done()


# --- the exercise: a consumer that stops on STOP and gives up on a dead producer -----

CHECK_ITEMS = 100
GIVE_UP_AFTER = 1.0  # the timeout the check gives the learner's consume
PAUSE = 0.6  # the finishing producer pauses this long twice: a quiet queue is not yet the end, and the
# whole stream lasts longer than GIVE_UP_AFTER, so only a timeout for each item (not one for the call) passes
HUNG_AFTER = 3.0  # seconds past that timeout after which the consumer counts as hung
SPINNING = 0.15  # a waiting loop that uses more than this share of a core is polling, not blocking
EMPTY_ASKS = 3  # gets that did not wait and found nothing: a loop that makes more is polling


def produce_with_a_pause(items, count):
    """Put the numbers 0 .. count-1 with a pause after each third, then STOP: the stream goes quiet before it ends."""
    for number in range(count):
        if number in (count // 3, 2 * count // 3):
            time.sleep(PAUSE)
        items.put(number)
    items.put(STOP)


def produce_then_die(items, count):
    """Put ``count`` numbers, make sure they reach the pipe, then die without sending STOP."""
    for number in range(count):
        items.put(number)
    items.close()
    items.join_thread()  # the feeder thread has written every item
    os._exit(3)


class _WatchedQueue:
    """The queue as the learner's consume sees it: counts the gets that did not wait and found nothing."""

    def __init__(self, items):
        self._items = items
        self.empty_asks = 0

    def get(self, block=True, timeout=None):
        try:
            return self._items.get(block, timeout)
        except queue.Empty:
            if not block or (timeout is not None and timeout < 0.01):  # asked without (really) waiting
                self.empty_asks += 1
            raise

    def get_nowait(self):
        return self.get(False)

    def __getattr__(self, name):
        return getattr(self._items, name)


def run_consumer(consume, items, report, timeout):
    """Child: run the learner's consume; report what it did, how long it took, the CPU it used, its vain gets."""
    watched = _WatchedQueue(items)
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    try:
        outcome = ("returned", consume(watched, timeout))
    except Exception as exc:
        outcome = ("raised", type(exc).__name__, str(exc))
    report.put((outcome, time.perf_counter() - wall_start, time.process_time() - cpu_start, watched.empty_asks))


def _run_against(ctx, consume, producer, count, timeout):
    """Start a producer and the learner's consumer on one queue; return the consumer's report, or None if it hung."""
    items, report = ctx.Queue(), ctx.Queue()
    children = [
        ctx.Process(target=producer, args=(items, count), daemon=True),
        ctx.Process(target=run_consumer, args=(consume, items, report, timeout), daemon=True),
    ]
    for child in children:
        child.start()
    try:
        return report.get(timeout=timeout + HUNG_AFTER)
    except queue.Empty:
        children[1].terminate()  # the consumer hung: stop it now
        return None
    finally:
        for child in children:
            child.join(timeout=1)
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
        items.close()
        report.close()


def _not_yet(outcome):
    if outcome[0] == "raised" and outcome[1] == "NotImplementedError":
        raise NotImplementedError(outcome[2] or "complete consume() in the exercise cell, run it, then this cell.")


@exercise_check
def check_consumer(module="exercise_queue", start_method=None):
    """Run the learner's ``consume`` in a child against a producer that finishes, then against one that dies."""
    consume = learner_function(learner_module(module), "consume")
    ctx = get_context(start_method)

    finished = _run_against(ctx, consume, produce_with_a_pause, CHECK_ITEMS, GIVE_UP_AFTER)
    if finished is None:
        raise Wrong(
            f"consume() was still running {GIVE_UP_AFTER + HUNG_AFTER:.0f} s after the producer put "
            f"{CHECK_ITEMS} numbers and STOP: stop the loop when the item is STOP."
        )
    outcome = finished[0]
    _not_yet(outcome)
    if outcome[0] == "raised":
        raise Wrong(
            f"with a producer that paused twice for {PAUSE} s, then finished, consume() raised {outcome[1]}: "
            f"{outcome[2]}. It should wait for each item up to the timeout ({GIVE_UP_AFTER} s; the timeout is for "
            "one item, not for the whole stream) and return the items it got once STOP arrives; an empty queue is "
            "not the end."
        )
    got = outcome[1]
    if got != list(range(CHECK_ITEMS)):
        short = not isinstance(got, list) or len(got) < 6
        shown = repr(got) if short else f"a list of {len(got)} items ending {got[-3:]}"
        raise Wrong(
            f"with a producer that put 0..{CHECK_ITEMS - 1} then STOP, consume() returned {shown}; "
            f"expected the list [0, 1, ..., {CHECK_ITEMS - 1}] (STOP itself is not an item)."
        )

    died = _run_against(ctx, consume, produce_then_die, 5, GIVE_UP_AFTER)
    if died is None:
        raise Wrong(
            f"the producer died after 5 numbers without sending STOP, and consume() was still waiting "
            f"{GIVE_UP_AFTER + HUNG_AFTER:.0f} s later: wait with items.get(timeout=timeout), so a dead producer "
            "ends the wait."
        )
    outcome, wall_s, cpu_s, empty_asks = died
    if wall_s > 0.5 and cpu_s > SPINNING * wall_s:
        raise Wrong(
            f"while it waited for a producer that had died, consume() kept {cpu_s / wall_s:.0%} of a core busy: "
            "it polls. Let get(timeout=timeout) block instead of asking again and again."
        )
    if empty_asks > EMPTY_ASKS:
        raise Wrong(
            f"while it waited for a producer that had died, consume() asked the queue {empty_asks} times without "
            "waiting and found nothing: it polls (a nap between the asks only makes it slower to notice an item). "
            "Let get(timeout=timeout) block: it wakes the moment an item arrives, or raises queue.Empty."
        )
    if outcome[0] == "returned":
        raise Wrong(
            f"the producer died after 5 numbers without sending STOP, and consume() returned {outcome[1]!r} "
            "as if the stream had ended. Only STOP means the end: when no item arrives within the timeout, "
            "raise TimeoutError."
        )
    if outcome[1] not in ("TimeoutError", "Empty"):
        raise Wrong(
            f"the producer died without sending STOP, and consume() raised {outcome[1]}: {outcome[2]}. "
            "Raise TimeoutError when no item arrives within the timeout."
        )
    if wall_s < 0.8 * GIVE_UP_AFTER:
        raise Wrong(
            f"consume(items, timeout={GIVE_UP_AFTER}) gave up {wall_s:.2f} s after it started, before "
            f"{GIVE_UP_AFTER} s without an item had passed: a producer may just be slow. Wait with "
            "items.get(timeout=timeout), and give up only when that raises queue.Empty."
        )
    return (
        f"consume() returned all {CHECK_ITEMS} numbers when STOP came, and gave up with {outcome[1]} "
        f"{wall_s:.1f} s after starting when the producer died, using {cpu_s / wall_s:.0%} of a core while it waited."
    )
