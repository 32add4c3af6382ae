import pickle
import signal
import sys
import time

import pytest

from ipckit.checks import check_timeout
from ipckit.context import get_context
from ipckit.lessons import faults
from ipckit.run import (
    Child,
    RemoteTraceback,
    WorkerDied,
    WorkerError,
    WorkerTimeout,
    describe_exitcode,
    receive,
    run_in_child,
    run_many,
)


def test_result_comes_back(start_method):
    assert run_in_child(faults.nap, 0, value={"x": [1, 2]}, start_method=start_method) == {"x": [1, 2]}


def test_results_keep_the_order_of_the_calls(start_method):
    calls = [(faults.nap, (0.3, "slow")), (faults.nap, (0.0, "fast"))]
    assert run_many(calls, start_method=start_method) == ["slow", "fast"]


def test_exception_in_child_keeps_its_type_with_the_child_traceback_as_cause(start_method):
    with pytest.raises(ValueError) as info:
        run_in_child(faults.fail, "boom", start_method=start_method)
    assert str(info.value) == "boom"
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "faults.py" in str(info.value.__cause__) and "in fail" in str(info.value.__cause__)
    assert str(info.value.__cause__).startswith("raised in child-0:fail:")
    if sys.version_info >= (3, 11):
        assert info.value.__notes__ == ["raised in child-0:fail"]


def test_except_key_error_catches_a_child_key_error(start_method):
    try:
        run_in_child(faults.look_up, "missing", start_method=start_method)
    except KeyError as error:
        assert error.args == ("missing",)
    else:
        pytest.fail("no KeyError")


def test_an_exception_that_will_not_unpickle_becomes_worker_error(plain_exception_pickling):
    with pytest.raises(WorkerError, match="raised NeedsTwoArguments: 1: this exception cannot be rebuilt") as info:
        run_in_child(faults.raise_unrebuildable, 1, start_method="fork")
    assert info.value.type_name == "NeedsTwoArguments"
    assert "faults.py" in info.value.remote_traceback


def test_a_child_system_exit_becomes_worker_error_never_an_exit_here(start_method):
    with pytest.raises(WorkerError, match="raised SystemExit: 3") as info:
        run_in_child(faults.exit_with, None, 3, start_method=start_method)
    assert "must not end this program" in str(info.value.__cause__)


def test_silent_death_is_noticed_with_the_exit_code(start_method):
    with pytest.raises(WorkerDied, match=r"\(exit code 7\)") as info:
        run_in_child(faults.die, 7, start_method=start_method)
    assert info.value.exitcode == 7 and info.value.signal is None


def test_a_crash_is_named_by_its_signal():
    with pytest.raises(WorkerDied, match=r"\(killed by SIGSEGV, exit code -11; often a crash in C code\)") as info:
        run_in_child(faults.misbehave, "crash", start_method="fork")
    assert info.value.signal == "SIGSEGV" and info.value.exitcode == -signal.SIGSEGV


@pytest.mark.parametrize("exitcode, words", [
    (0, "exit code 0"), (3, "exit code 3"),
    (-9, "killed by SIGKILL, exit code -9; often kill -9 or the out-of-memory killer"),
    (-7, "killed by SIGBUS"), (-15, "killed by SIGTERM"), (-1000, "killed by signal 1000, exit code -1000"),
])
def test_exit_codes_are_described_in_words(exitcode, words):
    assert describe_exitcode(exitcode).startswith(words)


def test_one_death_stops_the_others_quickly(start_method):
    begin = time.monotonic()
    with pytest.raises(WorkerDied):
        run_many([(faults.nap, (30,)), (faults.die, (5,))], start_method=start_method, timeout=60)
    assert time.monotonic() - begin < 10  # not the 30 s the sleeper wanted


def test_timeout_stops_the_child(start_method):
    with pytest.raises(WorkerTimeout, match="did not finish within timeout=0.5 s") as info:
        run_in_child(faults.nap, 30, start_method=start_method, timeout=0.5)
    assert isinstance(info.value, TimeoutError) and info.value.timeout == 0.5


def test_unpicklable_result_becomes_a_clear_error():
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)) as info:
        run_in_child(faults.unpicklable_result, start_method="fork")
    assert "while pickling the result of unpicklable_result to send it back (it cannot be pickled)" in str(
        info.value.__cause__
    )


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 1e12, 86_401, -1.0, 0])
def test_timeouts_that_mean_nothing_are_refused(timeout):
    with pytest.raises(ValueError, match="timeout must be a (positive|finite) number of seconds"):
        check_timeout(timeout)
    with pytest.raises(ValueError, match="timeout must be"):
        run_in_child(faults.nap, 0, timeout=timeout, start_method="fork")


# --- a child the caller talks to before taking its result ------------------------------------


def test_a_named_child_gives_its_result_and_ends(start_method):
    with Child(faults.nap, (0, "done"), start_method=start_method, name="napper") as child:
        assert child.process.name == "napper"
        assert child.result(10) == "done"
    assert child.process.exitcode == 0


def test_a_pipe_broken_by_a_failing_child_gives_the_child_error(start_method):
    """The caller waited on a pipe the child never wrote to; the child raised: its KeyError, not WorkerDied."""
    ctx = get_context(start_method)
    reader, writer = ctx.Pipe(duplex=False)  # this process keeps the writing end: only the sentinel can end the wait
    try:
        with pytest.raises(KeyError) as info, Child(faults.look_up, ("missing",), start_method=start_method) as child:
            receive(reader, child.process, 30, "message")
        assert isinstance(info.value.__cause__, RemoteTraceback)
    finally:
        reader.close()
        writer.close()
    assert not child.process.is_alive()


def test_a_child_that_overruns_one_wait_is_stopped_when_the_with_ends(start_method):
    began = time.monotonic()
    with pytest.raises(WorkerTimeout, match=r"no result from sleeper within 0\.3 s"):
        with Child(faults.nap, (30,), start_method=start_method, name="sleeper") as child:
            child.result(0.3)
    assert not child.process.is_alive() and time.monotonic() - began < 10
