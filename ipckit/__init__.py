"""ipckit: the ways Python processes share data, as importable, spawn-safe workers.

Submodules hold one idea each (state, messages, child, arrays, pipeline, bench,
plots, widgets); import them directly, e.g. ``from ipckit import state``. What
the lessons' children run lives in ``ipckit.lessons``. Only the start-method
switch and ``show`` are imported here, so ``import ipckit`` stays cheap in
every child process.
"""
from .context import (
    DEFAULT_START_METHOD,
    ENV_VAR,
    START_METHODS,
    get_context,
    require_importable,
    resolve_start_method,
)
from .display import show

__all__ = [
    "DEFAULT_START_METHOD",
    "ENV_VAR",
    "START_METHODS",
    "get_context",
    "require_importable",
    "resolve_start_method",
    "show",
]
__version__ = "0.1.0"
