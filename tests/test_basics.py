"""The Pool that cannot import its function (lesson 08); lesson 00's workers are tested in test_lessons_start.py."""
from ipckit import basics


def _defined_here():  # stands for a notebook cell's function: importable only by the test module
    return 1


def test_pool_hang_becomes_a_timeout(monkeypatch):
    import sys

    monkeypatch.setattr(_defined_here, "__module__", "no_such_module_anywhere")
    monkeypatch.setitem(sys.modules, "no_such_module_anywhere", sys.modules[__name__])
    # the parent can pickle it (the module is in sys.modules) but spawned workers cannot import it
    report = basics.pool_with_function(_defined_here, "spawn", wait_seconds=1.0)
    assert report["result"].startswith("TimeoutError")
