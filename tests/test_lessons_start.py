"""Lesson 00's workers and its exercise check, under every start method."""
import contextlib
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import gone

import ipckit
from ipckit.lessons import start

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
WRONG = Path(__file__).resolve().parent / "exercises" / "wrong"


def _started(ctx, target, *args):
    process = ctx.Process(target=target, args=args)
    process.start()
    return process


def _stop(process):
    if process.is_alive():
        process.kill()
    process.join(5)


def test_race_reports_every_worker_inside_its_run(start_method):
    runs = start.race(workers=2, steps=200_000, start_method=start_method)
    assert list(runs) == ["1 thread", "2 threads", "2 processes"]
    assert [len(run["intervals"]) for run in runs.values()] == [1, 2, 2]
    for run in runs.values():  # times are not asserted (the machine is shared); their order is
        assert all(0 <= begin < end <= run["wall_s"] for begin, end in run["intervals"])


def test_a_child_changes_only_its_own_copy_of_a_global(start_method):
    ctx = ipckit.get_context(start_method)
    start.NOTES[:] = ["written by the parent"]
    replies = ctx.Queue()
    child = _started(ctx, start.append_note, "appended by the child", replies)
    try:
        child_sees = replies.get(timeout=30)
    finally:
        child.join(30)
        start.NOTES.clear()
    inherited = ["written by the parent"] if start_method == "fork" else []
    assert child_sees == inherited + ["appended by the child"]
    assert child.exitcode == 0


@pytest.mark.parametrize(
    "target, args, exitcode",
    [(start.nap, (0,), 0), (start.exit_with, (3,), 3), (start.fail, (), 1), (start.square, (3,), 0)],
)
def test_exit_codes(start_method, target, args, exitcode):
    child = _started(ipckit.get_context(start_method), target, *args)
    child.join(30)
    assert child.exitcode == exitcode


def test_sigterm_ignored_sigkill_not(start_method):
    ctx = ipckit.get_context(start_method)
    ready = ctx.Event()
    child = _started(ctx, start.ignore_sigterm, ready, 30)
    try:
        assert ready.wait(30)
        child.terminate()
        child.join(0.5)
        assert child.is_alive(), "the child ignores SIGTERM: terminate() must not end it"
        child.kill()
        child.join(5)
        assert child.exitcode == -signal.SIGKILL
    finally:
        _stop(child)


@pytest.mark.parametrize("ask", [True, False], ids=["event", "terminate"])
def test_a_graceful_stop_cleans_up_terminate_does_not(start_method, ask):
    ctx = ipckit.get_context(start_method)
    stop, replies = ctx.Event(), ctx.Queue()
    worker = _started(ctx, start.work_until_stopped, stop, replies)
    try:
        assert replies.get(timeout=30) == "working"
        stop.set() if ask else worker.terminate()
        worker.join(10)
        assert worker.exitcode == (0 if ask else -signal.SIGTERM)
        if ask:
            assert replies.get(timeout=5) == "cleaned up"
        else:
            with pytest.raises(queue.Empty):
                replies.get(timeout=0.5)
    finally:
        _stop(worker)


def _stop_worker_from(path):
    namespace = {}
    exec(path.read_text(), namespace)
    return namespace["stop_worker"]


def test_the_check_accepts_the_solution(start_method, monkeypatch, capsys):
    monkeypatch.setenv(ipckit.ENV_VAR, start_method)
    assert start.check_stop_worker(_stop_worker_from(SOLUTIONS / "00_start_here.py")) is True
    assert capsys.readouterr().out.startswith("Right")


def test_the_check_refuses_a_worker_left_running(monkeypatch, capsys):
    monkeypatch.setenv(ipckit.ENV_VAR, "fork")
    assert start.check_stop_worker(_stop_worker_from(WRONG / "00_start_here__no_kill.py")) is False
    assert "still running" in capsys.readouterr().out


def test_call_with_deadline_returns_raises_or_gives_up():
    import time

    from ipckit.lessons.checking import call_with_deadline

    assert call_with_deadline(pow, (2, 10), 5) == (True, 1024)
    assert call_with_deadline(time.sleep, (1,), 0.05) == (False, None)
    with pytest.raises(KeyError):
        call_with_deadline({}.__getitem__, ("missing",), 5)


_KILLED_PARENT = '''
import multiprocessing, os, signal, sys, time

def nap(seconds):
    time.sleep(seconds)

if __name__ == "__main__":
    child = multiprocessing.get_context(sys.argv[1]).Process(target=nap, args=(60,), daemon=True)
    child.start()
    print(child.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no exit handler runs: nobody stops the daemon
'''


@pytest.mark.timeout(60)
def test_a_killed_parent_leaves_its_daemon_child_running(start_method, tmp_path):
    """Lesson 00's claim: daemon children are stopped by the parent's exit handler, which SIGKILL skips."""
    script = tmp_path / "killed_parent.py"
    script.write_text(_KILLED_PARENT)
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as stdout, err.open("w") as stderr:  # files, not pipes: the orphan keeps them open
        parent = subprocess.Popen([sys.executable, str(script), start_method], stdout=stdout, stderr=stderr)
        returncode = parent.wait(timeout=30)
    assert returncode == -signal.SIGKILL, err.read_text()
    pid = int(out.read_text())
    try:
        time.sleep(0.5)  # long enough for anything that would end it with its parent (none should)
        assert not gone(pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
