"""The one start-method switch, and the check that a worker can travel to a child.

Every function in ipckit that starts processes takes ``start_method=None`` and
asks :func:`get_context` for its context, so a whole notebook or test run can be
switched with one environment variable.
"""
import functools
import multiprocessing
import os
import pickle
import sys

START_METHODS = ("fork", "spawn", "forkserver")
ENV_VAR = "IPCKIT_START_METHOD"
DEFAULT_START_METHOD = "spawn"


def resolve_start_method(method=None):
    """Return the start method to use: the argument, else $IPCKIT_START_METHOD, else "spawn".

    "spawn" is the default because it is the strictest: it is what macOS and
    Windows use, and code that works under spawn works under the others.
    """
    source = "start_method"
    if method is None:
        method = os.environ.get(ENV_VAR) or DEFAULT_START_METHOD
        source = ENV_VAR if os.environ.get(ENV_VAR) else "the default"
    if not isinstance(method, str):
        raise TypeError(
            f"start_method must be a string such as 'spawn', not {type(method).__name__}; "
            f"valid start methods are {', '.join(START_METHODS)}"
        )
    if method not in START_METHODS:
        raise ValueError(
            f"unknown start method {method!r} (from {source}); "
            f"valid start methods are {', '.join(START_METHODS)}"
        )
    if method not in multiprocessing.get_all_start_methods():
        raise ValueError(
            f"start method {method!r} is not available on {sys.platform}; "
            f"use one of {', '.join(multiprocessing.get_all_start_methods())}"
        )
    return method


def get_context(method=None):
    """Return a multiprocessing context for ``method`` (see :func:`resolve_start_method`)."""
    return multiprocessing.get_context(resolve_start_method(method))


def _main_is_importable():
    """A child started by spawn re-imports __main__ only if it is a file on disk."""
    main = sys.modules.get("__main__")
    return bool(getattr(main, "__file__", None)) and not getattr(main, "__file__", "").startswith("<")


def require_importable(func, start_method=None, role="worker"):
    """Raise a clear error, in the caller, if ``func`` cannot reach a child process.

    Under spawn and forkserver the child receives a function as "module + name"
    and imports it again. Lambdas, nested functions and functions defined in a
    notebook cell (module ``__main__`` with no file) cannot be found that way:
    the child would die with an AttributeError, or a Pool would hang.
    """
    if not callable(func):
        raise TypeError(f"{role} must be a callable (a function defined in a module), not {type(func).__name__}")
    method = resolve_start_method(start_method)
    if method == "fork":
        return  # fork copies the parent's memory; the function is never pickled
    inner = func
    while isinstance(inner, functools.partial):  # partial(f, ...) travels as f plus its arguments
        inner = inner.func
    name = getattr(inner, "__qualname__", repr(inner))
    module = getattr(inner, "__module__", None)
    hint = (
        "Workers must live in an importable module (a .py file such as ipckit/lessons/start.py "
        "or your own mymodule.py) because under the "
        f"{method!r} start method the child imports them again by module and name."
    )
    if "<lambda>" in name or "<locals>" in name:
        raise TypeError(f"{role} {name!r} is a lambda or a nested function and cannot be sent to a child. {hint}")
    if module == "__main__" and not _main_is_importable():
        raise TypeError(
            f"{role} {name!r} is defined in __main__ (a notebook cell or an interactive session), "
            f"which a child process cannot import. {hint}"
        )
    try:
        pickle.dumps(func)
    except Exception as exc:  # pickling errors come in several types
        raise TypeError(f"{role} {name!r} cannot be pickled ({exc}). {hint}") from None
