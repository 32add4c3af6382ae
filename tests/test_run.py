import time

import pytest

from ipckit import faults
from ipckit.run import WorkerDied, WorkerError, run_in_child, run_many


def test_result_comes_back(start_method):
    assert run_in_child(faults.nap, 0, value={"x": [1, 2]}, start_method=start_method) == {"x": [1, 2]}


def test_results_keep_the_order_of_the_calls(start_method):
    calls = [(faults.nap, (0.3, "slow")), (faults.nap, (0.0, "fast"))]
    assert run_many(calls, start_method=start_method) == ["slow", "fast"]


def test_exception_in_child_carries_type_message_and_traceback(start_method):
    with pytest.raises(WorkerError) as info:
        run_in_child(faults.fail, "boom", start_method=start_method)
    assert info.value.type_name == "ValueError"
    assert info.value.message == "boom"
    assert "faults.py" in info.value.remote_traceback


def test_silent_death_is_noticed_with_the_exit_code(start_method):
    with pytest.raises(WorkerDied) as info:
        run_in_child(faults.die, 7, start_method=start_method)
    assert info.value.exitcode == 7


def test_one_death_stops_the_others_quickly(start_method):
    begin = time.monotonic()
    with pytest.raises(WorkerDied):
        run_many([(faults.nap, (30,)), (faults.die, (5,))], start_method=start_method, timeout=60)
    assert time.monotonic() - begin < 10  # not the 30 s the sleeper wanted


def test_timeout_stops_the_child(start_method):
    with pytest.raises(TimeoutError, match="did not finish"):
        run_in_child(faults.nap, 30, start_method=start_method, timeout=0.5)


def test_unpicklable_result_becomes_a_clear_error():
    with pytest.raises(WorkerError, match="pickle"):
        run_in_child(faults.unpicklable_result, start_method="fork")
