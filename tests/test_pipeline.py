import functools
import os
import signal
import sys
import threading
import time

import numpy as np
import psutil
import pytest

from ipckit import plots
from ipckit.lessons import faults, workloads
from ipckit.pipeline import OrderedPipeline, WorkerDied, WorkerError
from ipckit.run import RemoteTraceback


def _children():
    return [p for p in psutil.Process().children(recursive=True) if "multiprocessing" not in " ".join(p.cmdline())]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("consumers", [1, 2, 3, 4])
def test_ten_thousand_items_in_exact_order(start_method, consumers):
    consume = functools.partial(workloads.jittery, max_seconds=0.0005)
    with OrderedPipeline(workloads.numbers, consume, (10_000,), consumers=consumers, start_method=start_method,
                         timeline=True) as pipe:
        results = list(pipe)
    assert results == list(range(10_000))  # nothing lost, nothing duplicated, order exact
    finishers = {e.process for e in pipe.timeline.of("finished")}
    assert len(finishers) == consumers  # every consumer did some of the work


def test_results_come_in_hand_off_order_though_consumers_finish_out_of_order():
    consume = functools.partial(workloads.jittery, max_seconds=0.05, share=1.0)
    with OrderedPipeline(workloads.numbers, consume, (30,), consumers=3, start_method="fork", timeline=True) as pipe:
        assert list(pipe) == list(range(30))
    finished = [e.seq for e in pipe.timeline.of("finished")]
    assert finished != sorted(finished)  # with random delays the finishing order is mixed
    assert [e.seq for e in pipe.timeline.of("emitted")] == list(range(30))


def test_timeline_records_every_step():
    consume = functools.partial(workloads.slow_square, seconds=0.02)
    with OrderedPipeline(workloads.numbers, consume, (10,), consumers=1, buffer=None, start_method="fork",
                         timeline=True) as pipe:
        assert list(pipe) == [n * n for n in range(10)]
    kinds = {e.event for e in pipe.timeline.events}
    assert {"produced", "sent", "received", "buffered", "handed", "started", "finished", "emitted"} <= kinds
    assert max(depth for _, depth in pipe.timeline.depth) >= 5  # a fast producer fills the unbounded buffer
    for seq in range(10):
        times = {(e.process, e.event): e.time for e in pipe.timeline.events if e.seq == seq}
        assert times[("producer", "produced")] <= times[("main", "received")] <= times[("main", "handed")]
        assert times[("main", "handed")] <= times[("consumer-0", "started")] <= times[("consumer-0", "finished")]
    figure = plots.plot_timeline(pipe.timeline)
    assert [ax.get_ylabel() for ax in figure.axes][-1] == "buffer"


def test_bounded_buffer_makes_the_producer_wait(start_method):
    consume = functools.partial(workloads.slow_square, seconds=0.02)
    with OrderedPipeline(workloads.numbers, consume, (15,), buffer=2, start_method=start_method, timeline=True) as pipe:
        assert list(pipe) == [n * n for n in range(15)]
    assert max(depth for _, depth in pipe.timeline.depth) <= 2
    waits = [s.time - p.time for p, s in zip(pipe.timeline.of("produced"), pipe.timeline.of("sent"), strict=True)]
    assert max(waits) > 0.01  # the producer held items back instead of sending them


def test_big_arrays_travel_through_shared_memory_slots(start_method):
    nbytes = 2**20
    with OrderedPipeline(workloads.same_array, workloads.identity, (12, nbytes), buffer=3,
                         start_method=start_method) as pipe:
        firsts = []
        for array in pipe:
            assert array.shape == (nbytes // 8,) and array.dtype == np.float64
            assert array[1] == 1.0 and array[-1] == nbytes // 8 - 1
            firsts.append(array[0])
    assert firsts == list(range(12))
    assert pipe.stats["via shared memory"] >= 8  # only the first few go pickled, before the slots exist
    assert pipe.stats["items"] == 12


def test_results_that_do_not_alias_the_item_also_come_back():
    def_double = functools.partial(np.multiply, 2.0)  # a ufunc partial returns a new array
    with OrderedPipeline(workloads.same_array, def_double, (5, 2**20), start_method="fork") as pipe:
        assert [float(a[0]) for a in pipe] == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_consumer_exception_reaches_the_loop_as_itself_with_its_traceback(start_method):
    consume = functools.partial(workloads.fail_on, bad=4)
    with pytest.raises(ValueError) as info:
        with OrderedPipeline(workloads.numbers, consume, (50,), consumers=2, start_method=start_method) as pipe:
            for _ in pipe:
                pass
    assert str(info.value) == "cannot handle item 4"
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "workloads.py" in str(cause) and "in fail_on" in str(cause)
    assert str(cause).startswith("raised in consumer-") and "on item 4:" in str(cause)
    if sys.version_info >= (3, 11):
        assert info.value.__notes__[0].endswith("on item 4")
    assert _children() == []


def test_producer_exception_reaches_the_loop_as_itself():
    with pytest.raises(RuntimeError, match="the producer broke after 3 items") as info:
        with OrderedPipeline(workloads.numbers_then_fail, workloads.identity, (3,), start_method="fork") as pipe:
            list(pipe)
    assert type(info.value) is RuntimeError
    assert "raised in producer in produce(), after item 2" in str(info.value.__cause__)


def test_a_key_error_in_a_consumer_is_caught_by_except_key_error():
    try:
        with OrderedPipeline(workloads.numbers, faults.look_up, (5,), start_method="fork") as pipe:
            list(pipe)
    except KeyError as error:
        caught = error
    assert caught.args == (0,)
    assert "KeyError" in str(caught.__cause__)


def test_an_exception_that_cannot_travel_becomes_worker_error(plain_exception_pickling):
    with pytest.raises(WorkerError, match="consumer-0 raised NeedsTwoArguments") as info:
        with OrderedPipeline(workloads.numbers, faults.raise_unrebuildable, (3,), start_method="fork") as pipe:
            list(pipe)
    assert info.value.type_name == "NeedsTwoArguments"
    assert "faults.py" in info.value.remote_traceback


def test_a_system_exit_in_a_consumer_never_ends_the_caller():
    with pytest.raises(WorkerError, match="raised SystemExit: 3") as info:
        with OrderedPipeline(workloads.numbers, faults.exit_with, (3,), start_method="fork") as pipe:
            list(pipe)
    assert "must not end this program" in str(info.value.__cause__)


def test_a_killed_consumer_is_reported_within_a_second(start_method):
    consume = functools.partial(workloads.slow_square, seconds=0.2)
    with pytest.raises(WorkerDied, match="consumer-1") as info:
        with OrderedPipeline(workloads.numbers, consume, (100,), consumers=2, start_method=start_method) as pipe:
            for result in pipe:
                if result == 1:
                    killed_at = time.monotonic()
                    os.kill(pipe.pids["consumer-1"], signal.SIGKILL)
    assert time.monotonic() - killed_at < 1.0
    assert info.value.exitcode == -signal.SIGKILL
    assert info.value.signal == "SIGKILL" and "killed by SIGKILL" in str(info.value)
    assert _children() == []


def test_a_consumer_that_exits_silently_is_reported():
    consume = functools.partial(workloads.die_on, bad=2)
    with pytest.raises(WorkerDied, match=r"consumer-0 died without a result \(exit code 9\)"):
        with OrderedPipeline(workloads.numbers, consume, (10,), start_method="spawn") as pipe:
            list(pipe)


def test_a_killed_producer_is_reported():
    with pytest.raises(WorkerDied, match="producer"):
        with OrderedPipeline(workloads.irregular, workloads.identity, (1000, 0.01), start_method="fork") as pipe:
            for result in pipe:
                if result == 2:
                    os.kill(pipe.pids["producer"], signal.SIGKILL)


def test_break_stops_every_child_quickly(start_method):
    consume = functools.partial(workloads.slow_square, seconds=30)
    pipe = OrderedPipeline(workloads.numbers, consume, (10,), consumers=2, start_method=start_method)
    with pipe:
        time.sleep(0.3)  # the consumers are now deep in a 30 s job
        leaving = time.monotonic()
    assert time.monotonic() - leaving < 2.0
    assert all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
               for pid in pipe.pids.values())


def test_keyboard_interrupt_stops_every_child_quickly(start_method):
    consume = functools.partial(workloads.slow_square, seconds=30)
    interrupt = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        with OrderedPipeline(workloads.numbers, consume, (10,), start_method=start_method) as pipe:
            interrupt.start()
            try:
                list(pipe)
            finally:
                interrupted = time.monotonic()
    assert time.monotonic() - interrupted < 2.0
    assert _children() == []


def test_exception_in_the_loop_body_stops_everything():
    with pytest.raises(ZeroDivisionError):
        with OrderedPipeline(workloads.numbers, workloads.identity, (1000,), start_method="fork") as pipe:
            for result in pipe:
                1 / (result - 5)
    assert _children() == []


def test_finished_pipeline_cleans_up_without_with():
    pipe = OrderedPipeline(workloads.numbers, workloads.identity, (5,), start_method="fork")
    assert list(pipe) == [0, 1, 2, 3, 4]
    assert list(pipe) == []  # exhausted, like any iterator
    deadline = time.monotonic() + 2
    while _children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _children() == []
    pipe.close()


def _cell_function(item):
    return item


BAD = [
    ("lambda consume", dict(consume=lambda x: x), TypeError, "importable module"),
    ("produce not callable", dict(produce=[1, 2, 3]), TypeError, "produce must be a function"),
    ("zero consumers", dict(consumers=0), ValueError, "consumers must be at least 1"),
    ("zero buffer", dict(buffer=0), ValueError, "buffer must be at least 1"),
    ("fractional buffer", dict(buffer=1.5), TypeError, "buffer must be a whole number"),
    ("buffer as a word", dict(buffer="big"), TypeError, r"'auto' \(2 x consumers\) or None \(unbounded\)"),
    ("infinite timeout", dict(timeout=float("inf")), ValueError, "timeout must be a finite number"),
    ("zero timeout", dict(timeout=0), ValueError, "timeout must be a positive number"),
    ("args not a tuple", dict(produce_args=5), TypeError, "produce_args must be a tuple"),
    ("unknown start method", dict(start_method="thread"), ValueError, "valid start methods"),
]


@pytest.mark.parametrize("change, kind, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_fails_before_any_process_starts(change, kind, message):
    arguments = dict(produce=workloads.numbers, consume=workloads.identity, produce_args=(3,), start_method="spawn")
    arguments.update(change)
    before = len(_children())
    with pytest.raises(kind, match=message):
        OrderedPipeline(**arguments)
    assert len(_children()) == before


def test_notebook_cell_function_is_refused_under_spawn(monkeypatch):
    import sys

    monkeypatch.setattr(_cell_function, "__module__", "__main__")
    monkeypatch.setattr(_cell_function, "__qualname__", "_cell_function")
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)
    with pytest.raises(TypeError, match="notebook cell"):
        OrderedPipeline(workloads.numbers, _cell_function, (3,), start_method="spawn")


def test_kept_big_results_stay_valid_after_the_pipeline_ends(start_method):
    nbytes = 2**20
    with OrderedPipeline(workloads.same_array, workloads.identity, (8, nbytes), buffer=2,
                         start_method=start_method) as pipe:
        kept = list(pipe)  # more than are lent at once: the rest are copied out
    assert [float(array[0]) for array in kept] == list(range(8))
    assert all(array[-1] == nbytes // 8 - 1 for array in kept)
    assert pipe.stats["via shared memory"] == 8


def test_a_small_result_from_a_big_item_frees_its_slot(start_method):
    nbytes = 2**20
    with OrderedPipeline(workloads.same_array, workloads.checksum, (30, nbytes), consumers=2, buffer=2,
                         start_method=start_method) as pipe:
        sums = list(pipe)  # a leaked slot per item would stall the producer after a few
    values = nbytes // 8
    assert sums == [float(values * (values - 1) // 2 + n) for n in range(30)]
    assert pipe.stats["via shared memory"] == 30


def test_too_little_shared_memory_means_fewer_slots_or_none(monkeypatch):
    from ipckit import shm

    nbytes = 2**20
    for free, expect_slots in ((3 * nbytes, True), (nbytes // 2, False)):
        with monkeypatch.context() as patch:
            patch.setattr(shm, "free_bytes", lambda path=shm.SHM_DIR, free=free: free)
            with OrderedPipeline(workloads.same_array, workloads.identity, (12, nbytes), buffer=4,
                                 start_method="fork") as pipe:
                assert [float(a[0]) for a in pipe] == list(range(12))
        assert (pipe.stats["via shared memory"] > 0) is expect_slots
        assert pipe.stats["via shared memory"] + pipe.stats["pickled"] == 12


def test_next_after_close_is_an_error():
    with OrderedPipeline(workloads.numbers, workloads.identity, (100,), buffer=5, start_method="fork") as pipe:
        next(pipe)
    with pytest.raises(ValueError, match="closed"):
        next(pipe)


def test_the_timeline_is_off_by_default():
    with OrderedPipeline(workloads.numbers, workloads.identity, (50,), start_method="fork") as pipe:
        assert list(pipe) == list(range(50))
    assert pipe.timeline.events == [] and list(pipe.timeline.depth) == [(0.0, 0)]
