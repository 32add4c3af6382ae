import pytest

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


def test_communicate_one_shot():
    assert child.ask_once(["square 3", "echo hi"]) == ["9", "hi"]


def test_pipe_buffer_deadlock_and_communicate():
    report = child.pipe_buffer_deadlock_demo(lines=3_000, wait_seconds=0.5)
    assert report["plain write still blocked after 0.5 s"] is True
    assert report["communicate() replies"] == 3_000


def test_exit_codes_are_what_poll_really_returns():
    codes = [row["poll()"] for row in child.exit_code_table()]
    assert codes == [None, 0, 3, 1, -15, -9]
