"""What the benchmark scripts record about the machine, and how they update benchmarks/README.md."""
import datetime
import os
import platform
import re

import numpy as np
import psutil


def describe_machine():
    """A short Markdown paragraph: date, CPU, cores, memory, OS, Python, numpy, load."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"Measured {datetime.date.today().isoformat()} on {cpu}, {psutil.cpu_count()} logical cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}; load average at start {load} "
        "(a shared machine: read ratios, not absolute figures)."
    )


def replace_section(path, heading, body):
    """Put ``body`` under ``heading`` in the Markdown file at ``path``, replacing what was there."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text)
