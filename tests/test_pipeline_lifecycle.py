"""The ordered pipeline's lifecycle: dropped, closed twice, interrupted, orphaned, timed out, run long."""
import functools
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import numpy as np
import psutil
import pytest
from helpers import gone, wait_until

from ipckit import pipeline
from ipckit.lessons import faults, workloads
from ipckit.pipeline import OrderedPipeline, WorkerTimeout

MiB = 2**20


def _shm():
    return set(os.listdir("/dev/shm"))


# --- a pipeline nobody holds ----------------------------------------------------------


def test_a_dropped_pipeline_stops_its_children_and_frees_its_slots(start_method):
    shm_before = _shm()
    slow = functools.partial(workloads.pause, seconds=0.05)
    pipe = OrderedPipeline(workloads.same_array, slow, (100, MiB), consumers=2, start_method=start_method)
    for number, array in enumerate(pipe):  # no `with`: the notebook cell that breaks out and moves on  # noqa: B007
        if number == 2:
            break
    kept = array  # a lent result: its finalizer must not keep the pipeline alive
    del array
    pids = list(pipe.pids.values())
    assert _shm() - shm_before  # the slot pool exists
    dropped = weakref.ref(pipe)
    pipe = OrderedPipeline(workloads.numbers, workloads.identity, (3,), start_method="fork")  # the name is rebound
    gc.collect()
    assert dropped() is None  # nothing else held it: not the dispatcher, not the lent array
    assert wait_until(lambda: all(gone(pid) for pid in pids), 2.0)
    assert list(pipe) == [0, 1, 2]
    pipe.close()
    assert wait_until(lambda: not (_shm() - shm_before), 2.0)
    assert kept[0] == 2.0 and kept[-1] == MiB // 8 - 1  # the loan itself stays valid


# --- close() ----------------------------------------------------------------------------


def _interrupt_once(function, fired, others_wait=0.0):
    """Wrap ``function``: its first call in the main thread is interrupted by a real SIGINT; calls
    from other threads (the dispatcher) wait ``others_wait`` seconds first, so they cannot do its work."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(others_wait)
        elif not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # KeyboardInterrupt arrives here
        return function(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("where", ["as close begins", "while it stops the children"])
def test_close_finishes_its_work_when_ctrl_c_interrupts_it(monkeypatch, where):
    shm_before = _shm()
    fired = []
    if where == "as close begins":
        monkeypatch.setattr(pipeline._Core, "_close_once", _interrupt_once(pipeline._Core._close_once, fired))
    else:
        monkeypatch.setattr(pipeline, "stop", _interrupt_once(pipeline.stop, fired, 2.5))
    slow = functools.partial(workloads.pause, seconds=30)
    pipe = OrderedPipeline(workloads.same_array, slow, (20, MiB), consumers=2, start_method="fork")
    pids = list(pipe.pids.values())
    assert wait_until(lambda: _shm() - shm_before, 5.0)
    with pytest.raises(KeyboardInterrupt):
        pipe.close()
    assert fired
    # At the moment close() raised, everything was already done: no waiting here.
    assert all(gone(pid) for pid in pids)
    assert not (_shm() - shm_before)
    assert pipe._core.wake_read is None and pipe._core.lifeline is None
    pipe.close()  # again: nothing left to do, no error
    with pytest.raises(ValueError, match="closed"):
        next(pipe)


def test_close_after_an_interrupt_that_got_out_of_it_still_does_the_work(monkeypatch):
    shm_before = _shm()
    slow = functools.partial(workloads.pause, seconds=30)
    pipe = OrderedPipeline(workloads.same_array, slow, (20, MiB), start_method="fork")
    assert wait_until(lambda: _shm() - shm_before, 5.0)

    def interrupted_at_once(core):  # Ctrl-C right after close() began, before it could guard itself
        core.closing = True
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(pipeline._Core, "close", interrupted_at_once)
        with pytest.raises(KeyboardInterrupt):
            pipe.close()
    assert not any(gone(pid) for pid in pipe.pids.values())  # nothing was stopped yet
    pipe.close()
    assert all(gone(pid) for pid in pipe.pids.values())
    assert not (_shm() - shm_before)


def test_close_from_another_thread_ends_the_loop_with_a_clear_error(start_method):
    slow = functools.partial(workloads.slow_square, seconds=30)
    pipe = OrderedPipeline(workloads.numbers, slow, (5,), start_method=start_method)
    closer = threading.Timer(0.5, pipe.close)
    closer.start()
    with pytest.raises(ValueError, match="was closed .* from another thread"):
        for _ in pipe:
            pass
    closer.join()
    assert all(gone(pid) for pid in pipe.pids.values())


# --- children and the thread or process that made them --------------------------------


def test_a_pipeline_made_in_a_thread_that_ends_keeps_its_children(start_method):
    made = {}

    def make_and_start():
        made["pipe"] = OrderedPipeline(workloads.numbers, workloads.slow_square, (8,), consumers=2,
                                       start_method=start_method)
        made["first"] = next(made["pipe"])

    maker = threading.Thread(target=make_and_start)
    maker.start()
    maker.join()
    time.sleep(0.3)  # PR_SET_PDEATHSIG would have killed forked children by now
    with made["pipe"] as pipe:
        assert [made["first"]] + list(pipe) == [n * n for n in range(8)]


ORPHAN_SCRIPT = textwrap.dedent(
    """
    import functools, sys, threading, time
    from ipckit.lessons import workloads
    from ipckit.pipeline import OrderedPipeline

    if __name__ == "__main__":
        made = {}
        def make():
            slow = functools.partial(workloads.slow_square, seconds=60)
            made["pipe"] = OrderedPipeline(workloads.numbers, slow, (10,), consumers=2, start_method=sys.argv[1])
        maker = threading.Thread(target=make)
        maker.start()
        maker.join()
        print(*made["pipe"].pids.values(), flush=True)
        time.sleep(60)
    """
)


@pytest.mark.timeout(60)
def test_children_die_with_main_even_when_a_short_lived_thread_made_them(start_method, tmp_path):
    script = tmp_path / "orphans.py"
    script.write_text(ORPHAN_SCRIPT)
    main = subprocess.Popen([sys.executable, str(script), start_method], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        pids = [int(pid) for pid in main.stdout.readline().split()]
        assert len(pids) == 3
        time.sleep(0.3)
        assert not any(gone(pid) for pid in pids)  # alive after their thread ended
        main.kill()
        main.wait(5)
        assert wait_until(lambda: all(gone(pid) for pid in pids), 2.0)
    finally:
        main.kill()
        main.wait(5)
        main.stdout.close()


# --- a consumer that takes too long ---------------------------------------------------


@pytest.mark.parametrize("stuck", ["asleep", "stopped by SIGSTOP"])
def test_a_consumer_over_its_timeout_is_stopped_and_named(start_method, stuck):
    if stuck == "stopped by SIGSTOP" and start_method != "fork":
        pytest.skip("one start method is enough for the stopped process")
    consume = functools.partial(faults.stall_on, bad=3) if stuck == "asleep" else workloads.pause
    with pytest.raises(WorkerTimeout) as info:
        with OrderedPipeline(workloads.numbers, consume, (10,), consumers=2, timeout=0.5,
                             start_method=start_method) as pipe:
            for result in pipe:
                if result == 2:
                    if stuck != "asleep":
                        os.kill(pipe.pids["consumer-1"], signal.SIGSTOP)
                    last = time.monotonic()
    assert time.monotonic() - last < 0.5 + 1.0
    error = info.value
    assert isinstance(error, TimeoutError) and error.timeout == 0.5
    assert error.process.startswith("consumer-") and error.item >= 3
    assert f"{error.process} did not finish within timeout=0.5 s on item {error.item}" in str(error)
    assert all(gone(pid) for pid in pipe.pids.values())


def test_work_within_the_timeout_is_not_stopped():
    consume = functools.partial(workloads.slow_square, seconds=0.05)
    with OrderedPipeline(workloads.numbers, consume, (10,), consumers=2, timeout=2, start_method="fork") as pipe:
        assert list(pipe) == [n * n for n in range(10)]


# --- bounded by default -----------------------------------------------------------------


def test_the_buffer_is_bounded_by_default():
    consume = functools.partial(workloads.slow_square, seconds=0.02)
    with OrderedPipeline(workloads.numbers, consume, (30,), consumers=2, timeline=True, start_method="fork") as pipe:
        assert list(pipe) == [n * n for n in range(30)]
    assert pipe.buffer == 4
    assert max(depth for _, depth in pipe.timeline.depth) <= 4
    with OrderedPipeline(workloads.numbers, consume, (3,), buffer=None, start_method="fork") as unbounded:
        assert unbounded.buffer is None and list(unbounded) == [0, 1, 4]


@pytest.mark.parametrize("consumers", [1, 2])
def test_a_slow_loop_holds_the_producer_back_and_never_stalls_it(consumers):
    with OrderedPipeline(workloads.numbers, workloads.identity, (40,), consumers=consumers, timeline=True,
                         start_method="fork") as pipe:
        for number in pipe:  # noqa: B007  (the last one is checked below)
            time.sleep(0.01)  # the caller's loop is the slowest part
    assert number == 39
    capacity = pipe.buffer + consumers
    taken = {e.seq: e.time for e in pipe.timeline.of("emitted")}
    sent = {e.seq: e.time for e in pipe.timeline.of("sent")}
    # Item n may leave the producer only once the loop has taken item n - capacity.
    assert all(taken[n - capacity] <= sent[n] for n in range(capacity, 40))


def test_the_timeline_keeps_only_its_last_events(monkeypatch):
    monkeypatch.setattr(pipeline, "TIMELINE_EVENTS", 50)
    with OrderedPipeline(workloads.numbers, workloads.identity, (200,), timeline=True, start_method="fork") as pipe:
        assert list(pipe) == list(range(200))
    events = pipe.timeline.events
    assert len(events) == 50 and len(pipe.timeline.depth) <= 50
    assert max(e.seq for e in events) == 199  # the newest are kept


@pytest.mark.timeout(120)
def test_memory_stays_flat_over_a_long_stream_under_the_defaults():
    me = psutil.Process()
    count, warm_up = 70_000, 10_000
    with OrderedPipeline(workloads.numbers, workloads.identity, (count,), consumers=2, start_method="fork") as pipe:
        for number in pipe:
            if number == warm_up:
                gc.collect()
                base = me.memory_info().rss
        gc.collect()
        growth = me.memory_info().rss - base
    assert number == count - 1
    assert pipe.timeline.events == []
    # Over these 60,000 items the old default timeline alone kept about 1.2 KB each (about 70 MiB).
    assert growth < 4 * MiB, f"main grew by {growth / MiB:.1f} MiB over {count - warm_up:,} items"


def test_lent_arrays_keep_nothing_of_the_pipeline_alive():
    with OrderedPipeline(workloads.same_array, workloads.identity, (3, MiB), start_method="fork") as pipe:
        kept = list(pipe)
    core = weakref.ref(pipe._core)
    del pipe
    gc.collect()
    assert core() is None  # the loans' finalizers hold the machinery only weakly
    assert [float(a[0]) for a in kept] == [0.0, 1.0, 2.0]
    assert all(isinstance(a, np.ndarray) for a in kept)
