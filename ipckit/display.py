"""Show a worker's source in a lesson, right where the lesson uses it.

A lesson's children must run functions from an importable module, so the
functions live in ``ipckit``; :func:`show` puts their code back in front of the
reader, to read and to copy into a script of their own.
"""
import inspect
import textwrap


def source_of(*objects):
    """The source of each function or class, dedented, each headed by the module to import it from."""
    parts = []
    for obj in objects:
        try:
            code = textwrap.dedent(inspect.getsource(obj))
        except (TypeError, OSError) as exc:
            raise TypeError(f"show() needs a function or class defined in a .py file, not {obj!r} ({exc})") from None
        parts.append(f"# from {obj.__module__} import {obj.__qualname__}\n{code}")
    return "\n\n".join(parts)


def show(*objects):
    """Print the source of ``objects``: a highlighted code block in Jupyter, plain text elsewhere.

    In a notebook the block is Markdown, which JupyterLab highlights; its text is
    the source itself, so a stored output stays the same from run to run.
    """
    text = source_of(*objects)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(text)
        return
    display(Markdown(f"```python\n{text}\n```"))
