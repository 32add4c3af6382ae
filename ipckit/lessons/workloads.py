"""Producers and consumers for the ordered pipeline: lessons 08 and 10, the tests and the benchmarks.

Producers are generator functions; consumers take one item and return a result.
Give a consumer its settings with ``functools.partial`` (a partial of a module
function travels to a child like the function itself).
"""
import os
import random
import time

import numpy as np

from ..checks import check_count


def numbers(count):
    """Yield 0, 1, ..., count - 1 as fast as possible."""
    yield from range(check_count(count, "count", minimum=0))


def irregular(count, mean_interval=0.05, seed=0):
    """Yield 0 .. count - 1, each after a random pause averaging ``mean_interval`` seconds."""
    pauses = random.Random(seed)
    for number in range(check_count(count, "count", minimum=0)):
        time.sleep(pauses.expovariate(1 / mean_interval) if mean_interval > 0 else 0)
        yield number


def same_array(count, nbytes):
    """Yield one float64 array of ``nbytes`` bytes ``count`` times (made once, as a stream of frames would be)."""
    frame = np.arange(check_count(nbytes, "nbytes", minimum=8) // 8, dtype=np.float64)
    for number in range(check_count(count, "count", minimum=0)):
        frame[0] = number  # each item differs, so a mix-up would show
        yield frame


def numbers_then_fail(count):
    """Yield ``count`` numbers, then raise: a producer that breaks mid-stream."""
    yield from range(count)
    raise RuntimeError(f"the producer broke after {count} items")


def identity(item):
    """Return the item unchanged: measures the pipeline's own cost."""
    return item


def slow_square(item, seconds=0.1):
    """Sleep ``seconds`` (a stand-in for real work), then return the item squared."""
    time.sleep(seconds)
    return item * item


def jittery(item, max_seconds=0.001, share=0.1):
    """Return the item; on about ``share`` of the items (chosen by the item), pause up to ``max_seconds`` first."""
    draw = random.Random(item)
    if draw.random() < share:
        time.sleep(draw.random() * max_seconds)
    return item


def fail_on(item, bad=3):
    """Return the item, but raise ValueError on ``bad``: a consumer with a bug."""
    if item == bad:
        raise ValueError(f"cannot handle item {item}")
    return item


def die_on(item, bad=3, delay=0.0):
    """Return the item, but end the process without a word on ``bad`` (like a crash or the OOM killer)."""
    if item == bad:
        time.sleep(delay)
        os._exit(9)
    return item


def pause(item, seconds=0.02):
    """Return the item unchanged after ``seconds``: a slow consumer that keeps arrays as they are."""
    time.sleep(seconds)
    return item


def checksum(item):
    """A number from an array (its sum): a consumer whose result is much smaller than its item."""
    return float(item.sum())


def numbers_then_wait(count, go, more=3, timeout=30.0):
    """Yield 0 .. count - 1, then wait until ``go`` (a multiprocessing Event) is set, then yield ``more`` numbers.

    The caller sets ``go`` once it has the first ``count`` results: if they
    waited for more items (a batch waiting to fill), they never come, and this
    producer raises TimeoutError instead of waiting for ever.
    """
    yield from range(count)
    if not go.wait(timeout):
        raise TimeoutError(f"the first {count} items did not reach the caller within {timeout} s")
    yield from range(count, count + more)


def reused_list(count):
    """Yield one list ``count`` times, changed after each yield: ``[n, n * n]`` for item n.

    A producer that reuses a buffer: whoever keeps the object rather than what
    it held at the yield sees later items' values.
    """
    item = [0, 0]
    for number in range(count):
        item[0], item[1] = number, number * number
        yield item


def second_half(array):
    """The second half of an array, as a view of it: a result that lies inside its item's memory."""
    return array[len(array) // 2:]
