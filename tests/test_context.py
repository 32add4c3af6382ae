import multiprocessing

import pytest

import ipckit
from ipckit.context import require_importable, resolve_start_method
from ipckit.lessons import faults


def test_argument_wins_over_environment(monkeypatch):
    monkeypatch.setenv("IPCKIT_START_METHOD", "forkserver")
    assert resolve_start_method("fork") == "fork"


def test_environment_variable_is_used(monkeypatch):
    monkeypatch.setenv("IPCKIT_START_METHOD", "forkserver")
    assert ipckit.get_context().get_start_method() == "forkserver"


def test_default_is_spawn(monkeypatch):
    monkeypatch.delenv("IPCKIT_START_METHOD", raising=False)
    assert ipckit.get_context().get_start_method() == "spawn"


def test_every_method_gives_its_context(start_method):
    assert ipckit.get_context(start_method).get_start_method() == start_method


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="fork, spawn, forkserver"):
        ipckit.get_context("threads")


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("IPCKIT_START_METHOD", "sapwn")
    with pytest.raises(ValueError, match="IPCKIT_START_METHOD"):
        ipckit.get_context()


def test_module_function_is_importable(start_method):
    require_importable(faults.nap, start_method)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_lambda_is_refused_with_a_hint(method):
    with pytest.raises(TypeError, match="importable module"):
        require_importable(lambda: None, method)


def test_fork_accepts_a_lambda():
    require_importable(lambda: None, "fork")  # fork never pickles the target


def test_notebook_cell_function_is_refused(monkeypatch):
    def cell_function():
        pass

    cell_function.__module__ = "__main__"
    cell_function.__qualname__ = "cell_function"
    main = multiprocessing.process.sys.modules["__main__"]
    monkeypatch.delattr(main, "__file__", raising=False)  # as in a Jupyter kernel
    with pytest.raises(TypeError, match="notebook cell"):
        require_importable(cell_function, "spawn")
