from ipckit import basics, faults


def test_processes_run_side_by_side_threads_take_turns(start_method):
    runs = basics.threads_vs_processes(2, 2_000_000, start_method)
    assert list(runs) == ["1 thread", "2 threads", "2 processes"]
    assert all(len(run["intervals"]) == n for run, n in zip(runs.values(), (1, 2, 2)))
    for run in runs.values():  # every interval lies inside its run (times are not asserted: the machine is shared)
        assert all(0 <= start < end <= run["wall_s"] for start, end in run["intervals"])


def _defined_here():  # stands for a notebook cell's function: importable only by the test module
    return 1


def test_process_reports_exit_code(start_method):
    report = basics.process_with_function(faults.nap, 0.01, start_method=start_method)
    assert report == {"start_method": start_method, "exitcode": 0}


def test_pool_hang_becomes_a_timeout(monkeypatch):
    import sys

    monkeypatch.setattr(_defined_here, "__module__", "no_such_module_anywhere")
    monkeypatch.setitem(sys.modules, "no_such_module_anywhere", sys.modules[__name__])
    # the parent can pickle it (the module is in sys.modules) but spawned workers cannot import it
    report = basics.pool_with_function(_defined_here, "spawn", wait_seconds=1.0)
    assert report["result"].startswith("TimeoutError")


def test_check_function_explains():
    assert "refused" in basics.check_function(lambda: 1, "spawn")
    assert "fine" in basics.check_function(faults.nap, "spawn")
