"""ipckit.show and the exercise-check helpers behave as the lessons rely on."""
import time

import pytest

import ipckit
from ipckit.errors import describe_exitcode
from ipckit.lessons import faults
from ipckit.lessons.checking import (
    Wrong,
    exercise_check,
    learner_function,
    learner_module,
    learner_raised,
    run_children,
)


def test_show_prints_the_source_with_where_to_import_it_from(capsys):
    ipckit.show(describe_exitcode)
    out = capsys.readouterr().out
    assert out.startswith("# from ipckit.errors import describe_exitcode\ndef describe_exitcode(")


def test_show_refuses_what_has_no_source():
    with pytest.raises(TypeError, match="defined in a .py file"):
        ipckit.show(len)


@exercise_check
def _judge(value):
    if value is None:
        raise NotImplementedError("fill in the blank")
    if value != 42:
        raise Wrong(f"expected 42, got {value}")
    return "42 it is."


@pytest.mark.parametrize(
    "value, verdict, printed",
    [
        (42, True, "Right: 42 it is."),
        (None, False, "Not yet: fill in the blank"),
        (7, False, "Wrong: expected 42, got 7"),
    ],
)
def test_a_check_prints_one_verdict(value, verdict, printed, capsys):
    assert _judge(value) is verdict
    assert capsys.readouterr().out.strip() == printed


def test_an_exception_in_the_learners_code_is_wrong_not_a_crash(capsys):
    @exercise_check
    def judge():
        return {}["missing"]

    assert judge() is False
    out = capsys.readouterr().out
    assert out.startswith("Wrong: your code raised KeyError")


def test_the_learners_module_is_read_fresh_each_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotImplementedError, match="run the exercise cell first"):
        learner_module("exercise_fresh")
    (tmp_path / "exercise_fresh.py").write_text("def f():\n    return 1\n")
    assert learner_module("exercise_fresh").f() == 1
    (tmp_path / "exercise_fresh.py").write_text("def f():\n    return 2\n")
    module = learner_module("exercise_fresh")
    assert module.f() == 2
    with pytest.raises(Wrong, match="should define a function g"):
        learner_function(module, "g")


@pytest.mark.parametrize("outcome, verdict", [
    (("returned", 1), None),
    (("raised", NotImplementedError("complete it")), NotImplementedError),
    (("raised", TimeoutError("late")), "the hint for late"),
    (("raised", KeyError("k")), "f\\(1\\) raised KeyError: 'k'"),
])
def test_what_the_learners_call_raised_becomes_a_verdict(outcome, verdict):
    def hint(exc):
        return f"the hint for {exc}"

    if verdict is None:
        assert learner_raised(outcome, "f(1)", hint) is None
    elif verdict is NotImplementedError:
        with pytest.raises(NotImplementedError, match="complete it"):
            learner_raised(outcome, "f(1)", hint)
    else:
        with pytest.raises(Wrong, match=verdict):
            learner_raised(outcome, "f(1)", hint)


def test_children_that_fail_or_hang_are_wrong_and_none_is_left(start_method):
    ctx = ipckit.get_context(start_method)
    with pytest.raises(Wrong, match=r"children running f\(\) ended with exit codes \[3\]: it raised in a child, look"):
        run_children([ctx.Process(target=faults.die, args=(3,)), ctx.Process(target=faults.nap)], 30, "f()",
                     "never", ", look")
    stuck = [ctx.Process(target=faults.nap, args=(30,))]
    start = time.monotonic()
    with pytest.raises(Wrong, match=r"the 1 children did not finish within 1 s: does it wait\?"):
        run_children(stuck, 1, "f()", "does it wait?")
    assert time.monotonic() - start < 15
    assert not stuck[0].is_alive()
