"""Lesson 01's workers and its exercise check, under every start method."""
import time
from pathlib import Path

import numpy as np
import pytest

import ipckit
from ipckit.lessons import values

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
WRONG = Path(__file__).resolve().parent / "exercises" / "wrong"


def _run_all(ctx, target, arg_tuples, timeout=30):
    children = [ctx.Process(target=target, args=args) for args in arg_tuples]
    try:
        for child in children:
            child.start()
        for child in children:
            child.join(timeout)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(5)
    return [child.exitcode for child in children]


def test_a_child_doubles_a_value_and_an_array(start_method):
    ctx = ipckit.get_context(start_method)
    number, numbers = ctx.Value("d", 10.0), ctx.Array("i", [1, 2, 3])
    assert _run_all(ctx, values.double_all, [(number, numbers)]) == [0]
    assert (number.value, numbers[:]) == (20.0, [2, 4, 6])


def _count(ctx, processes, times, use_lock):
    counter, together = ctx.Value("q", 0), ctx.Barrier(processes)
    codes = _run_all(ctx, values.add_many, [(counter, together, times, use_lock)] * processes)
    assert codes == [0] * processes
    return counter.value


def test_the_lock_keeps_every_increment(start_method):
    assert _count(ipckit.get_context(start_method), 3, 5_000, True) == 15_000


def test_without_the_lock_updates_are_lost():
    # the race is real but not certain in one try; it shows up within a few
    assert any(_count(ipckit.get_context("fork"), 4, 20_000, False) < 80_000 for _ in range(5))


def test_children_fill_disjoint_slices_of_a_rawarray(start_method):
    ctx = ipckit.get_context(start_method)
    shared = ctx.RawArray("d", 7)
    assert _run_all(ctx, values.fill_my_part, [(shared, part, 3) for part in range(3)]) == [0, 0, 0]
    assert np.frombuffer(shared, dtype=np.float64).tolist() == [0, 0, 1, 1, 2, 2, 2]


def test_an_event_stops_workers_that_report_progress(start_method):
    ctx = ipckit.get_context(start_method)
    ready, stop = ctx.Barrier(3), ctx.Event()
    progress = [ctx.RawValue("q", 0) for _ in range(2)]
    workers = [ctx.Process(target=values.count_until_stopped, args=(ready, stop, mine)) for mine in progress]
    try:
        for worker in workers:
            worker.start()
        ready.wait(30)
        time.sleep(0.3)  # let them work a moment
        stop.set()
        for worker in workers:
            worker.join(10)
        assert [worker.exitcode for worker in workers] == [0, 0]
        assert sum(mine.value for mine in progress) > 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join(5)


def _write_answer(folder, source_path):
    first, _, rest = source_path.read_text().partition("\n")
    assert first == "%%writefile exercise_counter.py"
    (folder / "exercise_counter.py").write_text(rest)


@pytest.mark.parametrize("answer, right", [(SOLUTIONS / "01_value_and_array.py", True),
                                           (WRONG / "01_value_and_array__own_lock.py", False)],
                         ids=["solution", "own_lock"])
def test_the_check_runs_the_learners_add_in_children(start_method, answer, right, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ipckit.ENV_VAR, start_method)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    _write_answer(tmp_path, answer)
    assert values.check_counter("exercise_counter") is right
    assert capsys.readouterr().out.startswith("Right" if right else "Wrong")
