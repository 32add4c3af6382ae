"""What the kit does where a POSIX or Linux feature is missing: a clear error or a documented fallback.

The README's "Platforms" table lists the features. These tests take one away
(monkeypatching, or blocking a module in a fresh interpreter) and check what a
user on such a system would see. ``LineChild`` without process groups is
tested in test_child.py.
"""
import multiprocessing
import os
import subprocess
import sys

import pytest

from ipckit import context


def test_a_start_method_the_platform_lacks_is_named_with_the_ones_it_has(monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with pytest.raises(ValueError, match=r"start method 'fork' is not available on win32; use one of spawn"):
        context.get_context("fork")
    assert context.get_context("spawn").get_start_method() == "spawn"


def test_modules_a_measurement_imports_load_without_posix_only_modules():
    """As on Windows: no ``resource``, ``fcntl`` or ``termios``; the workers ``bench`` starts must still import."""
    script = (
        "import sys\n"
        "import numpy, psutil  # third-party packages bring their own code for each platform\n"
        "for name in ('resource', 'fcntl', 'termios'):\n"
        "    sys.modules[name] = None  # import raises ImportError, as where the module does not exist\n"
        "import ipckit.child, ipckit.messages, ipckit.run, ipckit.bench, ipckit.pipeline, ipckit.plots\n"
        "from ipckit.lessons import faults, talk, workloads\n"
        "print(faults.nap(0, 'loaded'))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded"


def test_pipes_waited_on_with_a_deadline_are_refused_clearly_without_poll_and_readv(monkeypatch):
    """As on Windows: the pipe transports are skipped with a reason, and OrderedPipeline says what to use."""
    from ipckit import arrays, watch
    from ipckit.lessons import workloads
    from ipckit.pipeline import OrderedPipeline

    monkeypatch.setattr(watch, "HAS_POSIX_PIPES", False)
    transport = arrays.TRANSPORTS["pipe_bytes"]
    assert transport.unavailable_reason(1024) == f"needs POSIX pipes, which {sys.platform} does not have"
    with pytest.raises(OSError, match="use 'queue' or 'shared_memory' there"):
        transport.check_available(1024)
    assert arrays.TRANSPORTS["queue"].unavailable_reason(1024) is None
    with pytest.raises(OSError, match=r"OrderedPipeline .*ProcessPoolExecutor\.map.*select\.poll.*WSL2"):
        OrderedPipeline(workloads.numbers, workloads.identity, (3,))
