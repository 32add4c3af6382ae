"""Lesson 01's workers: shared numbers (Value, Array, RawValue, RawArray) and an Event, changed by children.

A shared object reaches a child as an argument of ``Process(...)``; every
function here is what such a child runs, plus the check of the lesson's exercise.
"""
import importlib
import time

import numpy as np

from ..context import get_context
from .checking import Wrong, call_with_deadline, exercise_check, learner_function, learner_module, run_children

START_TIMEOUT = 30.0  # seconds a child waits for the others before it gives up


def double_all(number, numbers):
    """Double a shared Value and every item of a shared Array, in place."""
    with number.get_lock():
        number.value *= 2
    with numbers.get_lock():
        for i in range(len(numbers)):
            numbers[i] *= 2


def add_many(counter, together, times, use_lock):
    """Add 1 to a shared counter ``times`` times, once every child has arrived at the Barrier ``together``."""
    together.wait(START_TIMEOUT)  # all children count at the same moment, or nothing collides
    for _ in range(times):
        if use_lock:
            with counter.get_lock():
                counter.value += 1
        else:
            counter.value += 1  # a read, then a write: another process can write in between


def fill_my_part(shared, part, parts):
    """Write ``part`` into this child's own slice of a shared RawArray of doubles, through a numpy view."""
    values = np.frombuffer(shared, dtype=np.float64)  # a view of the shared memory, no copy
    start, stop = part * len(values) // parts, (part + 1) * len(values) // parts
    values[start:stop] = part  # no other child writes here: no lock needed


def count_until_stopped(ready, stop, progress):
    """Count rounds of work into this worker's own RawValue until the Event ``stop`` is set.

    ``ready`` is a Barrier the parent waits on too: past it, every worker is counting.
    """
    ready.wait(START_TIMEOUT)
    while not stop.is_set():
        sum(range(1_000))  # one small round of work
        progress.value += 1  # this worker is the only writer of ``progress``


# --- Exercise: a counter that loses no updates ---------------------------------------

EXERCISE_MODULE = "exercise_counter"


def run_learner_add(module_name, counter, together, seconds, times, calls):
    """Child side of the check: call the learner's add(counter, times) again and again for ``seconds``.

    ``calls`` (this child's own RawValue) counts the calls, so the parent knows the
    right total. Calls over a long enough time collide with the other children's,
    even on one core, whether add() loops without the lock or adds ``times`` at once
    without it.
    """
    add = importlib.import_module(module_name).add
    together.wait(START_TIMEOUT)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        add(counter, times)
        calls.value += 1


@exercise_check
def check_counter(module_name=EXERCISE_MODULE, processes=4, seconds=0.5, times=1_000, timeout=10.0):
    """Run the learner's ``add(counter, times)`` in ``processes`` children at once, for ``seconds``; no update lost."""
    add = learner_function(learner_module(module_name), "add")
    ctx = get_context()
    probe = ctx.Value("q", 0)
    # in this process first: a skeleton raises NotImplementedError here, an error shows its line
    if not call_with_deadline(add, (probe, 10), timeout)[0]:
        raise Wrong(f"add(counter, 10) did not return within {timeout:.0f} s in this process")
    left = probe.get_obj().value  # read without the lock: an add() that never releases it must not block the check
    if left != 10:
        raise Wrong(f"one process calling add(counter, 10) on a counter at 0 left it at {left}, not 10")
    if not probe.get_lock().acquire(False):  # add() ran in another thread: it still holds the lock
        raise Wrong("add(counter, 10) returned but still holds counter.get_lock(), so every other process "
                    "would wait for ever: use `with counter.get_lock():`, which releases it")
    probe.get_lock().release()
    counter, together = ctx.Value("q", 0), ctx.Barrier(processes)
    calls = [ctx.RawValue("q", 0) for _ in range(processes)]
    children = [ctx.Process(target=run_learner_add, args=(module_name, counter, together, seconds, times, mine))
                for mine in calls]
    run_children(children, timeout, "add()", "does add() release every lock it takes? (use `with counter.get_lock():`)",
                 " (run the exercise cell's add in the notebook to see the error)")
    made = sum(mine.value for mine in calls)
    expected = made * times
    done = f"{processes} processes at once made {made:,} calls of add(counter, {times})"
    if counter.value != expected:
        lost = expected - counter.value
        raise Wrong(f"{done}: the counter says {counter.value:,}, not {expected:,}; {lost:,} were lost. Every "
                    "`counter.value += ...` must happen while this process holds counter.get_lock(), the one lock "
                    "all processes share")
    return f"{done}: the counter says {counter.value:,}, no update lost."
