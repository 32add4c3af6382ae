"""Sizes in bytes: the units, reading "16MiB" and writing 16 MiB back, for the CLI, the widgets and the charts."""
import re

import numpy as np

from .checks import check_count

KiB, MiB, GiB = 2**10, 2**20, 2**30
UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": KiB, "MiB": MiB, "GiB": GiB}

_SIZE = re.compile(r"\s*(\d+)\s*([A-Za-z]*)\s*")


def parse_size(text):
    """Bytes in ``text``: ``"4KiB"`` -> 4096, ``"16MB"`` -> 16000000, ``"1000"`` -> 1000.

    Units (case-insensitive): B, KB, MB, GB (powers of 1000), KiB, MiB, GiB
    (powers of 1024). An int is returned as it is, once checked.
    """
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        return check_count(int(text), "size")
    if not isinstance(text, str):
        raise TypeError(f"a size is a whole number of bytes or a string such as '16MiB', not {type(text).__name__}")
    units = {unit.lower(): factor for unit, factor in UNITS.items()}
    match = _SIZE.fullmatch(text)
    if not match or match.group(2).lower() not in units | {"": 1}:
        raise ValueError(
            f"{text!r} is not a size: write a whole number with one of the units {', '.join(UNITS)} "
            "(e.g. 4KiB, 16MiB, 1GB) or none for bytes"
        )
    nbytes = int(match.group(1)) * units.get(match.group(2).lower(), 1)
    if nbytes < 1:
        raise ValueError(f"{text!r} is not a size: an array needs at least 1 byte")
    return nbytes


def parse_sizes(text):
    """A list of sizes from a comma-separated string (``"4KiB,1MiB"``) or an iterable of sizes."""
    items = text.split(",") if isinstance(text, str) else list(text)
    if not items or any(isinstance(item, str) and not item.strip() for item in items):
        raise ValueError(f"{text!r} is not a list of sizes: separate them with commas, e.g. 4KiB,1MiB,16MiB")
    return [parse_size(item) for item in items]


def format_size(nbytes):
    """``4096`` -> ``"4 KiB"``, ``1536 * 1024`` -> ``"1.5 MiB"``, ``1000`` -> ``"1000 B"``."""
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if nbytes >= factor:
            return f"{nbytes / factor:.4g} {unit}"
    return f"{nbytes} B"
