"""The two layers of ARCHITECTURE.md, checked on the source: which way imports go.

The library (``ipckit/*.py``) never imports a lesson's demos or checks; a
measurement may import a worker a child runs (``ipckit.lessons.faults``,
``ipckit.lessons.workloads``). A lesson module imports only the standard
library, numpy, the library and other lesson modules, so a learner can copy
what it shows into a script of their own.
"""
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ipckit"
LESSONS = PACKAGE / "lessons"

# Lesson modules that hold only what children run, which the library may use to measure.
WORKERS = {"faults", "workloads"}
# Third-party imports a lesson module may make besides numpy, and why.
LESSON_EXTRAS = {
    "psutil": "a dependency of the package: checks look for the children a learner's code left running",
    "distributed": "lesson 10's subject, dask.distributed",
}


def imported(path):
    """Absolute names of the modules ``path`` imports (``from . import x`` gives ``ipckit.x``)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # from ipckit import lessons
    return names


def lesson_modules_named(names):
    return {name.split(".")[2] for name in names if name.startswith("ipckit.lessons.")}


def test_the_library_imports_no_lesson_demo():
    wrong = {}
    for path in sorted(PACKAGE.glob("*.py")):
        used = lesson_modules_named(imported(path)) - WORKERS
        if used:
            wrong[path.name] = sorted(used)
    assert not wrong, f"library modules importing lesson demos (move what they need into the library): {wrong}"


def test_lesson_modules_import_only_stdlib_numpy_and_ipckit():
    allowed = set(sys.stdlib_module_names) | {"numpy", "ipckit"} | set(LESSON_EXTRAS)
    wrong = {}
    for path in sorted(LESSONS.glob("*.py")):
        outside = {name for name in imported(path) if name.split(".")[0] not in allowed}
        if outside:
            wrong[path.name] = sorted(outside)
    assert not wrong, f"lesson modules importing other packages: {wrong}"


def test_the_check_sees_relative_imports():
    """The checks above would pass on anything if relative imports were misread."""
    assert "ipckit.checks" in imported(PACKAGE / "child.py")
    assert "ipckit.lessons.checking" in imported(LESSONS / "talk.py")
    assert "ipckit.context" in imported(LESSONS / "queues.py")
