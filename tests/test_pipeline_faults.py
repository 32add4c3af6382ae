"""Fault injection, as CPython's test_concurrent_futures/test_deadlock.py does for ProcessPoolExecutor.

An error, a ``sys.exit``, an ``os._exit`` and a crash (SIGSEGV), each in the
producer's own code, while an item is pickled (producer) or unpickled
(consumer), in the consumer's own code, and while a result is pickled
(consumer) or unpickled (main). Each must end in a clear exception in the
caller within 2 s, with every child gone (and the autouse leak guard finds
nothing). A crash or ``os._exit`` while *main* unpickles a result ends main,
as it would any program: that runs in a separate interpreter, whose children
must then go with it.
"""
import functools
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import gone

from ipckit.lessons import faults, workloads
from ipckit.pipeline import OrderedPipeline, WorkerDied, WorkerError

BAD = 2  # the item (hand-off number) that misbehaves; 0 and 1 go through first

# (side, when) -> (the process that fails, what it was doing)
WHERE = {
    ("producer", "call"): ("producer", f"in produce(), after item {BAD - 1}"),
    ("producer", "pickle"): ("producer", f"while pickling item {BAD}"),
    ("producer", "unpickle"): ("consumer-0", f"while unpickling item {BAD}"),
    ("consumer", "call"): ("consumer-0", f"on item {BAD}"),
    ("consumer", "pickle"): ("consumer-0", f"while pickling the result of item {BAD}"),
    ("consumer", "unpickle"): ("main", f"while main unpickled the result of item {BAD} from consumer-0"),
}
CASES = [
    (side, when, kind)
    for side, when in WHERE
    for kind in faults.FAULT_KINDS
    if not (WHERE[side, when][0] == "main" and kind in ("os._exit", "crash"))  # those end main: see below
]


def _pipeline(side, when, kind, start_method):
    if side == "producer":
        return OrderedPipeline(faults.numbers_then_misbehaving, workloads.identity, (BAD, when, kind),
                               start_method=start_method)
    consume = functools.partial(faults.misbehaving_result, bad=BAD, when=when, kind=kind)
    return OrderedPipeline(workloads.numbers, consume, (BAD + 3,), start_method=start_method)


def _check(error, side, when, kind):
    process, doing = WHERE[side, when]
    if process == "main":
        if kind == "error":
            assert type(error) is faults.InjectedFault
            assert any(doing in note for note in getattr(error, "__notes__", [doing]))
        else:  # sys.exit while unpickling in main's dispatcher thread
            assert isinstance(error, pickle.UnpicklingError)
            assert "SystemExit(7,)" in str(error) and doing in str(error)
        return
    if kind == "error":
        assert type(error) is faults.InjectedFault and str(error) == "failed on purpose"
        assert str(error.__cause__).startswith(f"raised in {process} {doing}:")
    elif kind == "sys.exit":
        assert type(error) is WorkerError
        assert error.process == process and error.type_name == "SystemExit" and error.message == "7"
        assert doing in str(error.__cause__)
    elif kind == "os._exit":
        assert type(error) is WorkerDied and error.process == process and error.exitcode == 7
    else:
        assert type(error) is WorkerDied and error.process == process and error.signal == "SIGSEGV"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("side, when, kind", CASES, ids=["-".join(case) for case in CASES])
def test_a_fault_ends_in_a_clear_exception_with_nothing_left(start_method, side, when, kind):
    if when == "call" and start_method != "fork":
        pytest.skip("a fault in the children's own code is the same under every start method: fork runs it (quickest)")
    pipe = _pipeline(side, when, kind, start_method)
    began = time.monotonic()
    results = []
    with pytest.raises(Exception) as info:  # noqa: PT011 - _check names the exact type of each case
        with pipe:
            for result in pipe:
                results.append(result)
    elapsed = time.monotonic() - began
    _check(info.value, side, when, kind)
    assert results == list(range(BAD))[: len(results)]  # what came before the fault was right
    assert elapsed < 2.0, f"the fault took {elapsed:.1f} s to reach the caller"
    assert all(gone(pid) for pid in pipe.pids.values())


MAIN_DIES = textwrap.dedent(
    f"""
    import functools, sys
    from ipckit.lessons import faults, workloads
    from ipckit.pipeline import OrderedPipeline

    if __name__ == "__main__":
        consume = functools.partial(faults.misbehaving_result, bad={BAD}, when="unpickle", kind=sys.argv[1])
        pipe = OrderedPipeline(workloads.numbers, consume, ({BAD + 3},), consumers=2, start_method=sys.argv[2])
        print(*pipe.pids.values(), flush=True)
        for result in pipe:
            pass
        print("main survived", flush=True)
    """
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind, exitcode", [("os._exit", 7), ("crash", -signal.SIGSEGV)])
def test_a_result_that_ends_main_as_it_unpickles_takes_the_children_too(start_method, kind, exitcode, tmp_path):
    script = tmp_path / "main_dies.py"
    script.write_text(MAIN_DIES)
    main = subprocess.Popen([sys.executable, str(script), kind, start_method], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        pids = [int(pid) for pid in main.stdout.readline().split()]
        assert len(pids) == 3
        assert main.wait(10) == exitcode
        assert "survived" not in main.stdout.read()
        deadline = time.monotonic() + 2.0
        while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(gone(pid) for pid in pids), "children outlived main"
    finally:
        main.kill()
        main.wait(5)
        main.stdout.close()
