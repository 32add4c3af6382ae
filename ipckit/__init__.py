"""ipckit: the ways Python processes share data, as importable, spawn-safe workers and a small library.

Two layers: the library's submodules hold one idea each (context, errors,
watch, run, child, messages, shm, dtypes, packing, transports, arrays,
pipeline, sizes, bench, variants, plots, widgets); ``ipckit.lessons`` holds
what the lessons' children run and the lessons' demos. Import submodules
directly, e.g. ``from ipckit import pipeline``. Only the start-method switch
and ``show`` are imported here, so ``import ipckit`` stays cheap in every child
process. ARCHITECTURE.md draws the map.
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
