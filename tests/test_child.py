"""LineChild: a child program talked to line by line, whose close never waits longer than its timeout."""
import os
import subprocess
import sys
import time

import psutil
import pytest
from helpers import gone, wait_until

from ipckit import child


def test_long_running_child_answers_line_by_line():
    with child.LineChild() as talker:
        assert talker.ask("square 12") == "144"
        assert talker.ask("upper abc") == "ABC"
        assert talker.ask("nonsense").startswith("error")
    assert talker.process.returncode == 0


def test_reply_timeout_does_not_hang():
    with child.LineChild(timeout=5) as talker:
        with pytest.raises(TimeoutError, match="no reply"):
            talker.ask("sleep 1", timeout=0.3)
        with pytest.raises(RuntimeError, match="late reply"):
            talker.ask("square 2")  # would otherwise receive "awake", the reply to the sleep


def test_child_that_exited_gives_a_clear_error():
    with child.LineChild(timeout=5) as talker:
        with pytest.raises(RuntimeError, match="exited"):
            talker.ask("exit 4")
    assert talker.process.returncode == 4


def _kill_if_alive(pid):
    try:
        psutil.Process(pid).kill()
    except psutil.Error:
        pass


@pytest.mark.timeout(60)
def test_close_is_bounded_when_a_grandchild_holds_stdout():
    talker = child.LineChild(timeout=5)
    holder = int(talker.ask("hold-stdout 30").split()[1])  # a program the child started, with the child's stdout
    start = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="a program it started still held its stdout open.*process group"):
            talker.close(timeout=1)  # it used to wait the grandchild's 30 s, for EOF on stdout
        took = time.monotonic() - start
    finally:
        _kill_if_alive(holder)
    assert took < 10
    assert talker.process.returncode == 0  # the child itself had exited normally
    assert wait_until(lambda: gone(holder), 5), "the grandchild survived close()"
    assert talker.process.stdout.closed


@pytest.mark.timeout(60)
def test_without_process_groups_close_says_what_it_could_not_stop(monkeypatch):
    """As on Windows: no killpg, so close() kills the child alone and names what may still run."""
    monkeypatch.setattr(child, "_HAS_GROUPS", False)
    talker = child.LineChild(timeout=5)
    holder = int(talker.ask("hold-stdout 30").split()[1])
    try:
        with pytest.raises(TimeoutError, match="killed the child only: .* has no process groups"):
            talker.close(timeout=0.5)
        assert not wait_until(lambda: gone(holder), 0.2), (
            "without groups, the grandchild is not killed (and the error says so)")
    finally:
        _kill_if_alive(holder)
    talker._reader.join(5)  # the holder is gone: end of file
    talker.process.stdout.close()
    assert talker.process.returncode == 0


@pytest.mark.timeout(60)
def test_close_kills_a_child_that_does_not_exit():
    talker = child.LineChild(timeout=5)
    talker.process.stdin.write("sleep 30\n")
    talker.process.stdin.flush()
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="did not exit within 0.5 s"):
        talker.close(timeout=0.5)
    assert time.monotonic() - start < 10
    assert talker.process.returncode == -9


def test_leaving_the_with_block_on_an_error_keeps_that_error():
    holder = None
    try:
        with pytest.raises(KeyError):
            with child.LineChild(timeout=5) as talker:
                holder = int(talker.ask("hold-stdout 30").split()[1])
                talker.timeout = 0.5  # close() will have to kill the group; its TimeoutError must not replace ours
                raise KeyError("the caller's own error")
        assert talker.process.returncode == 0
        assert wait_until(lambda: gone(holder), 5)
    finally:
        if holder:
            _kill_if_alive(holder)


@pytest.mark.timeout(60)
def test_a_line_child_left_open_does_not_delay_exit(tmp_path):
    """A script that never closes its LineChild exits at once, and the child ends with it (its stdin closes)."""
    script = tmp_path / "leave_open.py"
    script.write_text(
        "from ipckit.child import LineChild\n"
        "talker = LineChild(timeout=5)\n"
        "print(talker.ask('square 3'), talker.process.pid, flush=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    answer, pid = done.stdout.split()
    assert answer == "9"
    assert wait_until(lambda: gone(int(pid)), 5), "the child outlived the script that started it"
