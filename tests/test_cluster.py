"""Lesson 10's dask helpers: nothing listens beyond 127.0.0.1, everything closes on every path, and the
ordered stream keeps order, bounds what is in flight and passes errors on with their own type."""
import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from pathlib import Path

import dask
import psutil
import pytest
from distributed import KilledWorker

from ipckit.lessons import cluster, workloads
from ipckit.lessons.cluster import (
    _CountingClient,
    accepts_connections,
    check_ordered_stream,
    chunks,
    each,
    listening_addresses,
    local_client,
    ordered_stream,
    share_of_ideal,
    steady_rate,
    tasks_on_workers,
)

REPO = Path(__file__).resolve().parent.parent
EXIT_TIMEOUT = 30  # seconds dask's workers get to notice their parent is gone
pytestmark = pytest.mark.timeout(120)


def _gone(pids, timeout=EXIT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while any(psutil.pid_exists(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if psutil.pid_exists(pid)]


def _recorded(count, taken):
    """Yield 0 .. count - 1, appending each to ``taken`` as the stream takes it (to see how lazily it takes)."""
    for item in range(count):
        taken.append(item)
        yield item


def test_the_cluster_listens_on_loopback_only_and_closes_under_every_start_method(start_method):
    with dask.config.set({"distributed.worker.multiprocessing-method": start_method}), local_client() as client:
        address = client.scheduler.address
        worker_pids = list(client.run(os.getpid).values())
        assert address.startswith("tcp://127.0.0.1:")
        assert len(worker_pids) == 2 and os.getpid() not in worker_pids
        assert listening_addresses([os.getpid(), *worker_pids]) == ["127.0.0.1"]
        assert list(ordered_stream(client, workloads.identity, range(20))) == list(range(20))
        assert accepts_connections(address)
    assert not accepts_connections(address)
    assert _gone(worker_pids, timeout=5) == []


def test_the_cluster_closes_when_the_block_raises():
    with pytest.raises(RuntimeError, match="on purpose"):
        with local_client() as client:
            address = client.scheduler.address
            worker_pids = list(client.run(os.getpid).values())
            raise RuntimeError("on purpose")
    assert client.status == "closed"
    assert not accepts_connections(address)
    assert _gone(worker_pids, timeout=5) == []


def test_no_worker_outlives_a_killed_client_process(tmp_path):
    script = tmp_path / "killed_client.py"
    script.write_text(textwrap.dedent("""
        import os, signal
        from ipckit.lessons.cluster import local_client

        if __name__ == "__main__":
            with local_client() as client:
                print(*client.run(os.getpid).values(), flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               TMPDIR=str(tmp_path))  # a killed process cannot remove its scratch folder: keep it in tmp_path
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90, env=env)
    assert done.returncode == -signal.SIGKILL, done.stderr
    worker_pids = [int(pid) for pid in done.stdout.split()]
    assert len(worker_pids) == 2
    survivors = _gone(worker_pids)
    for pid in survivors:  # orphans are no descendants of pytest: the leak guard cannot see them
        psutil.Process(pid).kill()
    assert survivors == [], "dask workers outlived the process that started them"


def test_the_stream_is_ordered_lazy_and_bounded():
    taken = []
    work = functools.partial(workloads.jittery, max_seconds=0.02, share=1.0)
    with local_client() as client:
        counting = _CountingClient(client)
        stream = ordered_stream(counting, work, _recorded(30, taken), in_flight=3)
        first = next(stream)
        taken_at_first = len(taken)
        results = [first, *stream]
    assert results == list(range(30))
    assert 1 < counting.most_in_flight <= 3
    assert taken_at_first < 30, "the producer was drained before the first result"


def test_a_tasks_exception_arrives_as_its_own_type_and_the_rest_is_cancelled():
    with local_client() as client:
        with pytest.raises(ValueError, match="cannot handle item 4") as raised:
            list(ordered_stream(client, functools.partial(workloads.fail_on, bad=4), range(100), in_flight=4))
        assert any(frame.name == "fail_on" for frame in traceback.extract_tb(raised.value.__traceback__))
        assert tasks_on_workers(client) == 0


def test_leaving_the_loop_cancels_what_is_in_flight():
    taken = []
    with local_client() as client:
        stream = ordered_stream(client, functools.partial(workloads.slow_square, seconds=0.05), _recorded(1000, taken),
                                in_flight=4)
        for result in stream:
            if result >= 9:
                break
        stream.close()
        assert tasks_on_workers(client) == 0
    assert len(taken) < 20


def test_a_task_that_kills_its_workers_ends_as_killed_worker():
    with local_client(scheduler_kwargs={"allowed_failures": 0}) as client:
        with pytest.raises(KilledWorker):
            list(ordered_stream(client, functools.partial(workloads.die_on, bad=2), range(6), in_flight=2))
        client.wait_for_workers(2, timeout=30)  # the nanny restarts the dead worker


def test_the_stream_has_a_time_limit():
    with local_client() as client:
        with pytest.raises(TimeoutError, match=r"longer than timeout=0.5 s") as caught:
            list(ordered_stream(client, functools.partial(workloads.slow_square, seconds=5), range(2), timeout=0.5))
    assert type(caught.value) is TimeoutError  # the builtin on every version (dask raises asyncio's)


@pytest.mark.parametrize("call, message", [
    (lambda: next(ordered_stream(None, workloads.identity, [], in_flight=0)), "in_flight must be at least 1"),
    (lambda: next(ordered_stream(None, workloads.identity, [], timeout=0)), "timeout must be a positive"),
    (lambda: local_client(n_workers=0).__enter__(), "n_workers must be at least 1"),
    (lambda: list(chunks(range(3), 0)), "size must be at least 1"),
    (lambda: steady_rate(iter([1])), "a rate needs more than skip=1 results"),
])
def test_bad_arguments_say_what_to_pass(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_chunks_and_each_cover_every_item_once():
    assert list(chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert each(workloads.identity, [1, 2]) == [1, 2]
    results, rate = steady_rate(iter(range(5)))
    assert results == list(range(5)) and rate > 0


def test_the_exercise_check_accepts_the_kits_stream_and_rejects_an_unbounded_one(capsys):
    assert check_ordered_stream(ordered_stream) is True
    assert capsys.readouterr().out.startswith("Right")

    def submit_all(client, func, items, in_flight=2):
        futures = [client.submit(func, item, pure=False) for item in items]
        for future in futures:
            yield future.result(timeout=60)

    assert check_ordered_stream(submit_all) is False
    assert capsys.readouterr().out.startswith("Wrong: 12 tasks were on the cluster at once")


def test_the_exercise_check_says_wrong_to_a_stream_that_never_ends(capsys, monkeypatch):
    monkeypatch.setattr(cluster, "CHECK_SECONDS", 2.0)
    release = threading.Event()

    def stuck(client, func, items, in_flight=2):
        release.wait(60)  # a wait with no end in the learner's code (released below, so no thread is left)
        yield from ()

    try:
        assert check_ordered_stream(stuck) is False
    finally:
        release.set()
    assert capsys.readouterr().out.startswith("Wrong: ordered_stream gave 0 of 12 results and was still running")


def test_share_of_ideal_measures_both_engines_on_checked_results():
    with local_client() as client:
        shares = share_of_ideal(client, 0.02, duration=0.2)
    assert set(shares) == {"dask", "OrderedPipeline"}
    assert all(share > 0 for share in shares.values())
