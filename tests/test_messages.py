import pytest

from ipckit import messages


def test_queue_with_sentinel_delivers_everything(start_method):
    report = messages.queue_demo(500, start_method)
    assert report["received"] == report["sent"] == 500
    assert report["total"] == report["expected_total"]


def test_polling_burns_cpu_and_blocking_does_not(start_method):
    blocking = messages.waiting_cost("blocking", 0.4, start_method)
    polling = messages.waiting_cost("polling", 0.4, start_method)
    assert blocking["item"] == polling["item"] == "the item"
    assert blocking["cpu_share"] < 0.2
    assert polling["cpu_share"] > 0.5


def test_join_before_drain_is_detected_then_fixed(start_method):
    report = messages.join_before_drain_demo(1_000_000, 0.5, start_method)
    assert report["join(0.5) before draining timed out"] is True
    assert report["bytes received after draining"] == 1_000_000
    assert report["exit code after draining"] == 0


def test_pipe_request_reply(start_method):
    with messages.PipeServer(start_method) as server:
        assert server.ask("square", 9) == 81
        assert server.ask("upper", "ok") == "OK"
        assert server.ask("sum", "ab").startswith("error: TypeError")  # the server survives a bad request
        assert server.ask("sum", [1, 2, 3]) == 6
    assert server.process.exitcode == 0


def test_poll_waits_for_data(start_method):
    report = messages.poll_demo(0.2, start_method)
    assert report["poll(0)"] is False and report["poll(10.0)"] is True
    assert report["message"] == "hello"


def test_recv_bytes_into_preallocated_array(start_method):
    assert messages.recv_into_demo(10_000, None, start_method) == {"bytes": 80_000, "equal": True}


def test_too_short_buffer_is_reported():
    assert messages.recv_into_demo(100, 10, "fork") == {"error": "BufferTooShort: needed 800 bytes, had 80"}


def test_wait_sees_replies_and_deaths(start_method):
    events = {e["worker"]: e["event"] for e in messages.wait_demo(start_method)}
    assert events == {"a": "replied 'result of a'", "b": "died with exit code 3", "c": "replied 'result of c'"}


def test_pipe_server_notices_a_dead_child():
    with messages.PipeServer("fork", timeout=5) as server:
        server.process.kill()
        with pytest.raises(RuntimeError, match="died"):
            server.ask("square", 2)


def test_pipe_server_leaves_when_its_parent_dies(tmp_path):
    import os
    import subprocess
    import sys
    import time

    import psutil

    script = tmp_path / "parent.py"
    script.write_text(
        "import os\nfrom ipckit import messages\n"
        "server = messages.PipeServer('fork')\nserver.ask('square', 2)\n"
        "print(server.process.pid, flush=True)\nos.kill(os.getpid(), 9)\n"
    )
    # under fork the server also holds the parent's end of its pipe, so only the sentinel tells it
    done = subprocess.run([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, timeout=30)
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail("the pipe server outlived its parent")
