"""Argument checks shared by every worker: fail in the caller, say what to pass instead."""
import math
import numbers
import threading

MAX_TIMEOUT = min(24 * 3600.0, threading.TIMEOUT_MAX)  # seconds; longer waits are mistakes, not plans


def check_count(value, name, minimum=1):
    """Return ``value`` as an int; raise unless it is a whole number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return int(value)


def check_timeout(timeout, name="timeout"):
    """Raise unless ``timeout`` is a positive, finite number of seconds, at most a day.

    ``inf``, ``nan`` or ``1e12`` would otherwise fail much later, far from the
    mistake (an ``OverflowError`` inside a wait, or a wait that never ends).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise ValueError(f"{name} must be a positive number of seconds, not {timeout!r}")
    if not math.isfinite(timeout) or timeout > MAX_TIMEOUT:
        raise ValueError(
            f"{name} must be a finite number of seconds up to {MAX_TIMEOUT:.0f} (a day), not {timeout!r}: "
            "pass the longest wait that still means something is working"
        )
    if not timeout > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {timeout!r}")
    return timeout
