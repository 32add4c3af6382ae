"""PipeServer: request and reply over a duplex Pipe, and a server that never outlives or holds up its parent."""
import os
import subprocess
import sys
import time

import psutil
import pytest

from ipckit import messages


def test_pipe_request_reply(start_method):
    with messages.PipeServer(start_method) as server:
        assert server.ask("square", 9) == 81
        assert server.ask("upper", "ok") == "OK"
        assert server.ask("sum", "ab").startswith("error: TypeError")  # the server survives a bad request
        assert server.ask("sum", [1, 2, 3]) == 6
    assert server.process.exitcode == 0


def test_pipe_server_notices_a_dead_child():
    with messages.PipeServer("fork", timeout=5) as server:
        server.process.kill()
        with pytest.raises(RuntimeError, match="died"):
            server.ask("square", 2)


def test_pipe_server_leaves_when_its_parent_dies(tmp_path):
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


@pytest.mark.timeout(60)
def test_a_pipe_server_left_open_does_not_delay_exit(start_method, tmp_path):
    """A script that never closes its server still exits at once: the server is a daemon child."""
    script = tmp_path / "leave_open.py"
    script.write_text(
        "import sys\nfrom ipckit import messages\n"
        "if __name__ == '__main__':\n"
        "    server = messages.PipeServer(sys.argv[1])\n"
        "    print(server.ask('square', 3), server.process.pid, flush=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(
        [sys.executable, str(script), start_method], capture_output=True, text=True, timeout=30, env=env
    )  # a non-daemon server hung here under every start method: exit joins it, and it waits for the parent
    assert done.returncode == 0, done.stderr
    answer, pid = done.stdout.split()
    assert answer == "9"
    assert not psutil.pid_exists(int(pid)) or psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
