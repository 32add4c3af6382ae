"""What the benchmark scripts record with their figures, and how they update benchmarks/README.md."""
import os
import platform
import re

import numpy as np
import psutil

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")


def describe_machine(load):
    """CPU, cores, memory, OS, Python, numpy and the load average ``load`` (from os.getloadavg())."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, numpy {np.__version__}; "
        f"load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} (1, 5, 15 min) at the start"
    )


def markers(name):
    return f"<!-- {name}: results begin -->", f"<!-- {name}: results end -->"


def write_block(section, name, block, path=README):
    """Put ``block`` between ``name``'s markers in ``path``; without them, at the end of ``section``."""
    begin, end = markers(name)
    block = f"{begin}\n{block.strip()}\n{end}"
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    elif section in text:  # the section without results yet: append them at its end
        start = text.index(section)
        following = text.find("\n## ", start + len(section))
        stop = len(text) if following < 0 else following + 1
        text = text[:stop].rstrip("\n") + "\n\n" + block + "\n" + ("\n" + text[stop:] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + f"\n\n{section}\n\n{block}\n"
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
