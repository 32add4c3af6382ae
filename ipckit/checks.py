"""Argument checks shared by every worker: fail in the caller, say what to pass instead."""
import numbers


def check_count(value, name, minimum=1):
    """Return ``value`` as an int; raise unless it is a whole number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return int(value)


def check_timeout(timeout, name="timeout"):
    """Raise unless ``timeout`` is a positive number of seconds."""
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {timeout!r}")
    return timeout
