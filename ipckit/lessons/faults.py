"""Workers that fail on purpose: lesson 08's stuck consumer, the start-up child ``bench`` times, and the tests.

Children import them by module and name under ``spawn``, so even the objects
the fault-injection tests send (they fail while being pickled or unpickled)
live here, in a module the package ships, rather than in ``tests/``.
"""
import ctypes
import faulthandler
import os
import sys
import time


def fail(message="failed on purpose"):
    """Raise ValueError(message) in whatever process runs it."""
    raise ValueError(message)


def die(exitcode=3):
    """End this process at once, without a word: no exception, no cleanup, no reply."""
    os._exit(exitcode)


def nap(seconds=0.0, value=None):
    """Sleep, then return ``value``: a stand-in for slow work."""
    time.sleep(seconds)
    return value


def stall_on(item, bad=3, seconds=30.0):
    """Return the item, but on ``bad`` sleep ``seconds`` first: a consumer stuck on one item."""
    if item == bad:
        time.sleep(seconds)
    return item


def unpicklable_result():
    """Return something that cannot be pickled, so it cannot travel back to the parent."""
    return lambda: None


def look_up(key, table=None):
    """Return ``table[key]``; with no table, raise KeyError: a consumer with a bug the caller can catch by type."""
    return (table or {})[key]


def exit_with(item, code=3):
    """Call ``sys.exit(code)``: a child's SystemExit, which must never end the parent."""
    sys.exit(code)


class NeedsTwoArguments(Exception):
    """An exception whose ``__init__`` takes other arguments than its ``args``: it pickles, but will not unpickle."""

    def __init__(self, what, why):
        super().__init__(f"{what}: {why}")


def raise_unrebuildable(item):
    """Raise :class:`NeedsTwoArguments`, which cannot be raised again in the parent as itself."""
    raise NeedsTwoArguments(item, "this exception cannot be rebuilt from its args")


# --- misbehaving objects for the fault-injection tests ---------------------------------------
#
# Like CPython's test_concurrent_futures/test_deadlock.py: objects whose pickling or
# unpickling raises, exits or crashes, in whichever process does it.

FAULT_KINDS = ("error", "sys.exit", "os._exit", "crash")


class InjectedFault(Exception):
    """The error a misbehaving object raises on purpose."""


def misbehave(kind):
    """Fail the way ``kind`` names: raise, ``sys.exit``, ``os._exit`` or crash with SIGSEGV."""
    if kind == "error":
        raise InjectedFault("failed on purpose")
    if kind == "sys.exit":
        sys.exit(7)
    if kind == "os._exit":
        os._exit(7)
    if kind == "crash":
        faulthandler.disable()  # the crash is the point: no traceback dump on stderr,
        if sys.platform != "win32":  # and no core file (Windows has no resource module, and no core files)
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        ctypes.string_at(0)  # reads address 0: SIGSEGV (an access violation on Windows)
    raise ValueError(f"kind must be one of {FAULT_KINDS}, not {kind!r}")


class FailsToPickle:
    """Its ``__reduce__`` misbehaves: the process that pickles it fails."""

    def __init__(self, kind):
        self.kind = kind

    def __reduce__(self):
        misbehave(self.kind)


class FailsToUnpickle:
    """Pickles fine; its ``__setstate__`` misbehaves: the process that unpickles it fails."""

    def __init__(self, kind):
        self.kind = kind

    def __getstate__(self):
        return {"kind": self.kind}

    def __setstate__(self, state):
        misbehave(state["kind"])


FAULT_MOMENTS = ("call", "pickle", "unpickle")


def _misbehaving(when, kind):
    """For ``when="call"`` misbehave now; else an object that misbehaves when it is pickled or unpickled."""
    if when not in FAULT_MOMENTS:
        raise ValueError(f"when must be one of {FAULT_MOMENTS}, not {when!r}")
    if when == "call":
        misbehave(kind)
    return FailsToPickle(kind) if when == "pickle" else FailsToUnpickle(kind)


def numbers_then_misbehaving(count, when, kind):
    """A producer: yield 0 .. count - 1, then fail as ``kind`` ``when`` ('call': in produce itself;
    'pickle' / 'unpickle': an item that fails so)."""
    yield from range(count)
    yield _misbehaving(when, kind)


def misbehaving_result(item, bad, when, kind):
    """A consumer: return the item, but for item ``bad`` fail as ``kind`` ``when`` ('call': in consume
    itself; 'pickle' / 'unpickle': a result that fails so)."""
    return _misbehaving(when, kind) if item == bad else item
