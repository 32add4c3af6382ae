"""Every lesson's exercise check can say "wrong": run it with the skeleton, the solution and typical mistakes.

The cells run outside a kernel (``exercises/run_cells.py``), in a fresh
process, in a temporary folder that stands for ``notebooks/``. A check passes
an answer by printing a line that starts with ``Right``: only the solution may
do that; the skeleton and each wrong answer in ``exercises/wrong/`` must not.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
WRONG = Path(__file__).resolve().parent / "exercises" / "wrong"
RUNNER = Path(__file__).resolve().parent / "exercises" / "run_cells.py"
RUN_TIMEOUT = 120  # seconds for one answer and its check


def tagged(notebook, tag):
    cells = json.loads(notebook.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code" and tag in c.get("metadata", {}).get("tags", [])]


def source(cell):
    return "".join(cell["source"])


def exercises():
    """(notebook stem, number from 1, exercise cell source, check cell source) for every exercise."""
    found = []
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        pairs = zip(tagged(notebook, "exercise"), tagged(notebook, "check"), strict=True)  # a check after each exercise
        for number, (exercise, check) in enumerate(pairs, 1):
            found.append((notebook.stem, number, source(exercise), source(check)))
    return found


def suffix(number):
    return "" if number == 1 else f"_{number}"


def answers():
    """Every answer to try: (id, stem, number, answer source, kind)."""
    cases = []
    for stem, number, skeleton, _ in exercises():
        name = f"{stem}{suffix(number)}"
        cases.append(pytest.param(stem, number, skeleton, "skeleton", id=f"{name}-skeleton"))
        solution = SOLUTIONS / f"{name}.py"
        if solution.exists():
            cases.append(pytest.param(stem, number, solution.read_text(), "solution", id=f"{name}-solution"))
        for wrong in sorted(WRONG.glob(f"{name}__*.py")):
            label = wrong.stem.split("__", 1)[1]
            cases.append(pytest.param(stem, number, wrong.read_text(), "wrong", id=f"{name}-wrong-{label}"))
    return cases


def check_source(stem, number):
    return next(check for s, n, _, check in exercises() if (s, n) == (stem, number))


def run_answer(answer, check, folder):
    files = []
    for index, text in enumerate((answer, check)):
        path = folder / f"cell_{index}.txt"
        path.write_text(text)
        files.append(str(path))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, str(RUNNER), *files], cwd=folder, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    return done.stdout, done.stderr, done.returncode


def says_right(stdout):
    return any(line.startswith("Right") for line in stdout.splitlines())


@pytest.mark.timeout(RUN_TIMEOUT + 30)
@pytest.mark.parametrize("stem, number, answer, kind", answers())
def test_check_says_right_only_for_the_solution(stem, number, answer, kind, tmp_path):
    stdout, stderr, code = run_answer(answer, check_source(stem, number), tmp_path)
    assert code == 0, f"the cells raised instead of printing a verdict:\n{stdout}\n{stderr}"
    if kind == "solution":
        assert says_right(stdout), f"the solution was not judged right:\n{stdout}\n{stderr}"
    else:
        assert not says_right(stdout), f"the {kind} was judged right:\n{stdout}"
        assert stdout.strip(), "the check printed nothing: it must say what is wrong or missing"


@pytest.mark.parametrize("stem, number", [(s, n) for s, n, _, _ in exercises()], ids=lambda v: str(v))
def test_every_exercise_has_a_solution_and_a_typical_mistake(stem, number):
    name = f"{stem}{suffix(number)}"
    assert (SOLUTIONS / f"{name}.py").exists(), f"missing notebooks/solutions/{name}.py"
    assert list(WRONG.glob(f"{name}__*.py")), f"no typical wrong answer in tests/exercises/wrong/{name}__<label>.py"


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_exercise_cells_follow_the_contract(notebook):
    """Every lesson has an exercise paired with its check, and the stored notebook shows the skeleton's verdict."""
    exercise_cells, check_cells = tagged(notebook, "exercise"), tagged(notebook, "check")
    assert exercise_cells, "every lesson has at least one exercise (a cell tagged 'exercise', then one tagged 'check')"
    assert len(exercise_cells) == len(check_cells), "each exercise cell needs one check cell after it"
    assert not tagged(notebook, "solution"), "a solution cell would overwrite the learner's answer under Run All"
    for cell in check_cells:
        text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))
        assert not says_right(text), "the committed check cell says Right; store the skeleton's output"
