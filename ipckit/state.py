"""A big global array and a fork child: copy-on-write, measured (lesson 06).

Under fork a child starts with the parent's pages and copies one only when it
writes to it; under spawn and forkserver the global is simply absent. Lessons
00-02's shared-state workers moved to ``ipckit.lessons`` (start, values, managers).
"""
import numpy as np
import psutil

from .checks import check_count
from .context import resolve_start_method
from .run import DEFAULT_TIMEOUT, run_in_child

MiB = 2**20

BIG_GLOBAL = None  # set by big_global_demo in the parent; inherited only by fork


def _private_bytes():
    """Memory that belongs to this process alone (pages not shared with any other)."""
    return psutil.Process().memory_full_info().uss


def _read_then_write_big_global():
    if BIG_GLOBAL is None:
        return {"child_has_global": False}
    before = _private_bytes()
    checksum = float(BIG_GLOBAL.sum())
    after_read = _private_bytes()
    BIG_GLOBAL[:] += 1.0  # writing touches every page, so the kernel copies each one
    after_write = _private_bytes()
    return {
        "child_has_global": True,
        "checksum": checksum,
        "copied_by_reading_mib": max(0.0, (after_read - before) / MiB),
        "copied_by_writing_mib": max(0.0, (after_write - before) / MiB),
    }


def big_global_demo(mib=64, start_method=None, timeout=DEFAULT_TIMEOUT):
    """A child reads, then writes, a big global array; report how much memory it had to copy.

    Under fork the child reads the parent's pages in place (copy-on-write): only
    writing copies them. Under spawn and forkserver the global is simply absent.
    """
    global BIG_GLOBAL
    mib = check_count(mib, "mib")
    method = resolve_start_method(start_method)
    BIG_GLOBAL = np.ones(mib * MiB // 8)
    try:
        report = run_in_child(_read_then_write_big_global, start_method=method, timeout=timeout)
        report.update(start_method=method, mib=mib, parent_checksum=float(BIG_GLOBAL.sum()))
        return report
    finally:
        BIG_GLOBAL = None
