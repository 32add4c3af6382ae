"""The pipeline's opt-ins for speed: ``prefetch`` (a consumer holds items ahead) and ``chunksize`` (batches).

Each keeps what the strict hand-off promises: results in exact order, errors of
their own type naming the item, deaths and timeouts noticed, every child gone
on every path; and each does what it says (a consumer holds 1 + prefetch
items, no item waits for a batch to fill).
"""
import functools
import gc
import os
import signal
import time
import weakref

import numpy as np
import psutil
import pytest
from helpers import gone, wait_until

from ipckit.context import get_context
from ipckit.lessons import faults, workloads
from ipckit.pipeline import OrderedPipeline, WorkerDied, WorkerTimeout

MiB = 2**20
OPTIONS = {
    "prefetch=1": dict(prefetch=1),
    "prefetch=2, chunksize=8": dict(prefetch=2, chunksize=8),
    "chunksize=16": dict(chunksize=16),
}


# --- order ------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("options", list(OPTIONS.values()), ids=list(OPTIONS))
def test_results_keep_exact_order(start_method, options):
    consume = functools.partial(workloads.jittery, max_seconds=0.0005)
    with OrderedPipeline(workloads.numbers, consume, (3000,), consumers=3, start_method=start_method, timeline=True,
                         **options) as pipe:
        assert list(pipe) == list(range(3000))
    assert {e.process for e in pipe.timeline.of("finished")} == {"consumer-0", "consumer-1", "consumer-2"}
    assert pipe.stats["items"] == 3000


def test_unbounded_with_both_options_keeps_order():
    with OrderedPipeline(workloads.numbers, workloads.identity, (5000,), consumers=2, buffer=None, prefetch=3,
                         chunksize=32, start_method="fork") as pipe:
        assert list(pipe) == list(range(5000))


# --- what each option does ------------------------------------------------------------


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_consumer_holds_one_item_or_one_plus_prefetch(prefetch):
    consume = functools.partial(workloads.slow_square, seconds=0.02)
    with OrderedPipeline(workloads.numbers, consume, (12,), prefetch=prefetch, start_method="fork",
                         timeline=True) as pipe:
        assert list(pipe) == [n * n for n in range(12)]
    held = max(count for _, count in pipe.timeline.held("consumer-0"))
    assert held == 1 + prefetch  # the timeline shows items waiting at the consumer, never more than allowed


def test_chunks_are_full_when_the_producer_is_fast():
    with OrderedPipeline(workloads.numbers, workloads.identity, (6400,), chunksize=64, start_method="fork") as pipe:
        assert list(pipe) == list(range(6400))
    assert pipe.stats["hand-offs"] < 6400 / 8  # most items travelled in batches


@pytest.mark.timeout(60)
def test_no_item_waits_for_a_batch_to_fill(start_method):
    go = get_context(start_method).Event()
    with OrderedPipeline(workloads.numbers_then_wait, workloads.identity, (3, go), chunksize=64,
                         start_method=start_method) as pipe:
        first = [next(pipe) for _ in range(3)]  # the producer now waits for us, with 3 items sent
        go.set()
        assert first + list(pipe) == list(range(6))


def test_a_batch_keeps_each_item_as_it_was_yielded():
    with OrderedPipeline(workloads.reused_list, workloads.identity, (500,), chunksize=64, start_method="fork") as pipe:
        assert list(pipe) == [[n, n * n] for n in range(500)]


def test_big_arrays_in_a_chunked_stream_travel_alone_through_slots(start_method):
    with OrderedPipeline(workloads.same_array, workloads.identity, (10, MiB), chunksize=4,
                         start_method=start_method) as pipe:
        assert [float(a[0]) for a in pipe] == list(range(10))
    assert pipe.stats["via shared memory"] == 10 and pipe.stats["hand-offs"] == 10


def test_the_credit_window_counts_hand_offs():
    with OrderedPipeline(workloads.numbers, workloads.identity, (200,), chunksize=4, buffer=2, timeline=True,
                         start_method="fork") as pipe:
        for _ in pipe:
            time.sleep(0.001)  # the caller's loop is the slowest part
    capacity = pipe.buffer + pipe.consumers  # hand-offs: batches of up to 4 items here
    taken = sorted(e.time for e in pipe.timeline.of("emitted"))
    sent = sorted(e.time for e in pipe.timeline.of("sent"))
    assert len(sent) < 200  # batches
    assert all(taken[n - capacity] <= sent[n] for n in range(capacity, len(sent)))


# --- big arrays: never pickled for lack of a slot, computed in place ---------------------


def test_an_unbounded_stream_of_big_arrays_waits_for_slots_rather_than_pickle():
    slow = functools.partial(workloads.pause, seconds=0.005)
    with OrderedPipeline(workloads.same_array, slow, (40, MiB), buffer=None, start_method="fork") as pipe:
        for number, array in enumerate(pipe):
            assert array[0] == number
            time.sleep(0.005)
    assert pipe.stats["pickled"] == 0 and pipe.stats["via shared memory"] == 40
    assert pipe.stats["waited for a slot"] > 0  # the producer was far ahead: it waited for a free slot


@pytest.mark.parametrize("consume", ["in place", "part of the input", "a new array"])
def test_big_results_come_back_right_however_they_were_made(consume):
    from ipckit import pipeline_speed

    works = {
        "in place": pipeline_speed.double_in_place,
        "part of the input": workloads.second_half,  # a view: it lies in the slot already
        "a new array": pipeline_speed.double,
    }
    with OrderedPipeline(pipeline_speed.fresh_arrays, works[consume], (6, 2 * MiB), start_method="fork") as pipe:
        for number, result in enumerate(pipe):
            if consume == "part of the input":
                assert result.shape == (MiB // 8,) and (result == number + 1).all()
            else:
                assert (result == 2 * (number + 1)).all()
    assert pipe.stats["via shared memory"] == 6


# --- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefetch", [0, 7])
def test_results_finished_before_an_error_reach_the_caller(start_method, prefetch):
    """One consumer takes the items in order: every result before the bad item is finished, and delivered."""
    results = []
    with pytest.raises(ValueError, match="cannot handle item 6"):
        with OrderedPipeline(workloads.numbers, functools.partial(workloads.fail_on, bad=6), (50,),
                             start_method=start_method, prefetch=prefetch) as pipe:
            for result in pipe:
                results.append(result)
    assert results == list(range(6))


@pytest.mark.parametrize("options", list(OPTIONS.values()), ids=list(OPTIONS))
def test_a_consumer_error_keeps_its_type_and_names_its_item(start_method, options):
    consume = functools.partial(workloads.fail_on, bad=45)
    results = []
    with pytest.raises(ValueError, match="cannot handle item 45") as info:
        with OrderedPipeline(workloads.numbers, consume, (200,), consumers=2, start_method=start_method,
                             **options) as pipe:
            for result in pipe:
                results.append(result)
    assert results == list(range(len(results))) and len(results) <= 45
    assert "on item 45:" in str(info.value.__cause__)
    assert all(gone(pid) for pid in pipe.pids.values())


def test_a_producer_error_keeps_its_type_and_says_where():
    results = []
    with pytest.raises(RuntimeError, match="broke after 100 items") as info:
        with OrderedPipeline(workloads.numbers_then_fail, workloads.identity, (100,), chunksize=16,
                             start_method="fork") as pipe:
            for result in pipe:
                results.append(result)
    assert results == list(range(len(results)))
    assert "in produce(), after item 99" in str(info.value.__cause__)


def test_an_item_that_will_not_unpickle_in_a_batch_is_named():
    with pytest.raises(faults.InjectedFault) as info:
        with OrderedPipeline(faults.numbers_then_misbehaving, workloads.identity, (5, "unpickle", "error"),
                             chunksize=8, start_method="fork") as pipe:
            list(pipe)
    assert "consumer-0 while unpickling item 5" in str(info.value.__cause__)


def test_a_result_that_will_not_pickle_in_a_batch_is_named():
    consume = functools.partial(faults.misbehaving_result, bad=5, when="pickle", kind="error")
    with pytest.raises(faults.InjectedFault) as info:
        with OrderedPipeline(workloads.numbers, consume, (20,), chunksize=8, start_method="fork") as pipe:
            list(pipe)
    assert "while pickling the result of item 5" in str(info.value.__cause__)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("options", [dict(prefetch=2), dict(chunksize=8, prefetch=1)], ids=["prefetch", "both"])
def test_a_consumer_that_dies_holding_items_is_reported(start_method, options):
    consume = functools.partial(workloads.die_on, bad=30)
    with pytest.raises(WorkerDied, match=r"consumer-\d died without a result \(exit code 9\)"):
        with OrderedPipeline(workloads.numbers, consume, (100,), consumers=2, start_method=start_method,
                             **options) as pipe:
            list(pipe)
    assert all(gone(pid) for pid in pipe.pids.values())


def test_a_killed_consumer_with_prefetch_is_reported_within_a_second():
    consume = functools.partial(workloads.slow_square, seconds=0.05)
    with pytest.raises(WorkerDied, match="consumer-1") as info:
        with OrderedPipeline(workloads.numbers, consume, (200,), consumers=2, prefetch=2, start_method="fork") as pipe:
            for result in pipe:
                if result == 4:
                    killed_at = time.monotonic()
                    os.kill(pipe.pids["consumer-1"], signal.SIGKILL)
    assert time.monotonic() - killed_at < 1.0
    assert info.value.signal == "SIGKILL"


TIMED = [(dict(prefetch=1), "fork"), (dict(chunksize=4), "fork")] + [
    (dict(prefetch=1, chunksize=4), method) for method in ("fork", "spawn", "forkserver")
]


@pytest.mark.parametrize("options, method", TIMED, ids=[f"{'-'.join(o)}-{m}" for o, m in TIMED])
def test_a_consumer_over_its_timeout_is_stopped(options, method):
    consume = functools.partial(faults.stall_on, bad=6)
    with pytest.raises(WorkerTimeout) as info:
        with OrderedPipeline(workloads.numbers, consume, (40,), consumers=2, timeout=0.3, start_method=method,
                             **options) as pipe:
            list(pipe)
    assert info.value.timeout == 0.3 and info.value.process.startswith("consumer-")
    assert info.value.item <= 6  # the item it held longest: the stuck one, or the first of its batch
    assert all(gone(pid) for pid in pipe.pids.values())


# --- leaving early, and a pipeline nobody holds --------------------------------------------


@pytest.mark.parametrize("options", list(OPTIONS.values()), ids=list(OPTIONS))
def test_break_stops_every_child_quickly(start_method, options):
    consume = functools.partial(workloads.slow_square, seconds=0.01)
    with OrderedPipeline(workloads.numbers, consume, (10_000,), consumers=2, start_method=start_method,
                         **options) as pipe:
        for result in pipe:
            if result == 25:
                break
        leaving = time.monotonic()
    assert time.monotonic() - leaving < 2.0
    assert all(gone(pid) for pid in pipe.pids.values())


DROPPED = [(dict(prefetch=2), "fork"), (dict(chunksize=16), "fork")] + [
    (dict(prefetch=2, chunksize=16), method) for method in ("spawn", "forkserver")
]


@pytest.mark.parametrize("options, method", DROPPED, ids=[f"{'-'.join(o)}-{m}" for o, m in DROPPED])
def test_a_dropped_pipeline_stops_its_children(options, method):
    pipe = OrderedPipeline(workloads.numbers, workloads.identity, (100_000,), consumers=2, start_method=method,
                           **options)
    for number in pipe:
        if number == 100:
            break
    pids = list(pipe.pids.values())
    dropped = weakref.ref(pipe)
    del pipe
    gc.collect()
    assert dropped() is None
    assert wait_until(lambda: all(gone(pid) for pid in pids), 2.0)


# --- bad values -----------------------------------------------------------------------------

BAD = [
    ("negative prefetch", dict(prefetch=-1), ValueError, r"prefetch must be at least 0 \(items a consumer may hold"),
    ("fractional prefetch", dict(prefetch=1.5), TypeError, "prefetch must be a whole number"),
    ("prefetch as text", dict(prefetch="2"), TypeError, "prefetch must be a whole number"),
    ("zero chunksize", dict(chunksize=0), ValueError, r"chunksize must be at least 1 \(the most items in one"),
    ("boolean chunksize", dict(chunksize=True), TypeError, "chunksize must be a whole number"),
    ("huge chunksize", dict(chunksize=100_000), ValueError, "chunksize must be at most 65,535"),
]


@pytest.mark.parametrize("change, kind, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_options_fail_before_any_process_starts(change, kind, message):
    before = len(psutil.Process().children(recursive=True))
    with pytest.raises(kind, match=message):
        OrderedPipeline(workloads.numbers, workloads.identity, (3,), start_method="spawn", **change)
    assert len(psutil.Process().children(recursive=True)) == before


def test_numpy_integers_are_whole_numbers_too():
    with OrderedPipeline(workloads.numbers, workloads.identity, (10,), prefetch=np.int64(1), chunksize=np.int32(4),
                         start_method="fork") as pipe:
        assert list(pipe) == list(range(10))
    assert pipe.prefetch == 1 and pipe.chunksize == 4
