"""Lesson 11's tasks behave in real pools as the lesson says, under every start method, and its check can say wrong."""
import collections
import functools
import gc
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from ipckit.lessons import pools

SOLUTION = Path(__file__).resolve().parent.parent / "notebooks" / "solutions" / "11_pools.py"
WRONG = Path(__file__).resolve().parent / "exercises" / "wrong"


@pytest.fixture
def ctx(start_method):
    return multiprocessing.get_context(start_method)


def test_tasks_run_in_workers_and_come_back_in_order(ctx):
    task = functools.partial(pools.busy_square, micros=50)
    with ctx.Pool(processes=2) as pool:
        assert pool.map_async(pools.square, range(10)).get(timeout=30) == [n * n for n in range(10)]
        assert pool.map_async(task, range(20), chunksize=5).get(timeout=30) == [n * n for n in range(20)]
        items = [(0, 0.3), (1, 0.0), (2, 0.0)]
        in_order = pool.imap(pools.square_after, items)
        assert [in_order.next(timeout=30) for _ in items] == [0, 1, 4]
        as_done = pool.imap_unordered(pools.square_after, items)
        assert sorted(as_done.next(timeout=30) for _ in items) == [0, 1, 4]
        pids = {pid for _, pid in pool.map_async(pools.worker_pid, range(4)).get(timeout=30)}
    assert os.getpid() not in pids


def test_the_initializer_runs_once_per_worker(ctx):
    with ctx.Pool(processes=2, initializer=pools.load_table, initargs=(50,)) as pool:
        answers = pool.map_async(pools.look_up, range(50), chunksize=1).get(timeout=30)
    assert [value for value, _, _ in answers] == [n * n for n in range(50)]
    assert {loads for _, _, loads in answers} == {1}


def test_maxtasksperchild_renews_the_workers(ctx):
    with ctx.Pool(processes=2, maxtasksperchild=2) as pool:
        done = pool.map_async(pools.worker_pid, range(8), chunksize=1).get(timeout=60)
    tasks_per_worker = collections.Counter(pid for _, pid in done)
    assert [n for n, _ in done] == list(range(8))
    assert max(tasks_per_worker.values()) == 2 and len(tasks_per_worker) >= 4


def test_a_tasks_exception_keeps_its_type_and_the_worker_lives_on(ctx):
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as executor:
        with pytest.raises(KeyError, match="durian") as caught:
            executor.submit(pools.price_of, "durian").result(timeout=30)
        assert "KeyError: 'durian'" in caught.value.__cause__.tb
        assert executor.submit(pools.price_of, "pear").result(timeout=30) == 4  # the price list in price_of
    with ctx.Pool(processes=1) as pool, pytest.raises(KeyError, match="durian"):
        pool.map_async(pools.price_of, ["apple", "durian"]).get(timeout=30)


def test_a_killed_worker_breaks_the_executor(ctx):
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as executor:
        futures = [executor.submit(pools.killed_on, n) for n in range(6)]
        with pytest.raises(BrokenProcessPool):
            for future in as_completed(futures, timeout=30):
                future.result()
        with pytest.raises(BrokenProcessPool):
            executor.submit(pools.square, 2)


def test_a_killed_worker_leaves_pool_waiting_until_the_timeout(ctx):
    pool = ctx.Pool(processes=2)
    try:
        with pytest.raises(multiprocessing.TimeoutError):
            pool.map_async(pools.killed_on, range(6)).get(timeout=1)
    finally:
        pool.terminate()
        pool.join()
    del pool
    gc.collect()  # a Pool's semaphores go when the object is collected


@pytest.fixture
def learner_folder(tmp_path, monkeypatch):
    """A folder standing for notebooks/, where an exercise cell writes exercise_pools.py."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("exercise_pools", None)


def write_answer(folder, source, start_method="spawn"):
    first, _, body = source.partition("\n")
    assert first == "%%writefile exercise_pools.py"
    (folder / "exercise_pools.py").write_text(body.replace('get_context("spawn")', f'get_context("{start_method}")'))


def test_the_check_passes_the_solution(learner_folder, start_method, capsys):
    write_answer(learner_folder, SOLUTION.read_text(), start_method)
    assert pools.check_run_all() is True
    assert capsys.readouterr().out.startswith("Right: ")


@pytest.mark.parametrize(
    "label, says",
    [
        ("completion_order", "in the order the tasks finished"),
        ("first_error_escapes", "escaped run_all"),
        ("in_this_process", "ran in this process"),
    ],  # tests/test_exercises.py runs every wrong answer; these check that the verdict says why
)
def test_the_check_says_what_is_wrong(learner_folder, label, says, capsys):
    write_answer(learner_folder, (WRONG / f"11_pools__{label}.py").read_text())
    assert pools.check_run_all() is False
    out = capsys.readouterr().out
    assert out.startswith("Wrong: ") and says in out


def test_the_check_asks_for_the_exercise_cell_first(learner_folder, capsys):
    assert pools.check_run_all() is False
    assert capsys.readouterr().out.startswith("Not yet: run the exercise cell first")
