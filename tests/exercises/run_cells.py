"""Run notebook cells outside a kernel, as the exercise tests need: ``python run_cells.py CELL_FILE...``.

Each file holds one cell's source. A cell that starts with ``%%writefile NAME``
writes the rest of itself to NAME, as in Jupyter; any other cell runs as Python
in one shared namespace named ``__main__``, like a kernel's. The working
directory stands for the notebook's folder.
"""
import os
import sys


def run(paths):
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    sys.path.insert(0, os.getcwd())  # a kernel imports modules from the notebook's folder
    for path in paths:
        with open(path) as f:
            source = f.read()
        first, _, rest = source.partition("\n")
        if first.startswith("%%writefile"):
            name = first.split(maxsplit=1)[1].strip()
            with open(name, "w") as f:
                f.write(rest)
            continue
        if any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
            raise SystemExit(f"{path}: exercise and check cells may use no magic but a leading %%writefile")
        exec(compile(source, path, "exec"), namespace)


if __name__ == "__main__":  # spawned children import this file as __mp_main__: nothing runs again
    run(sys.argv[1:])
