"""The ordered pipeline's performance targets, measured as ratios in one run.

    python benchmarks/pipeline_targets.py [--start-method spawn] [--rounds 3] [--write]

1. Tiny items (ints), one consumer, identity consume: items/s against
   ``multiprocessing.Pool(1).imap(chunksize=1)`` on the same items (target >= 0.5x).
2. 16 MiB float64 arrays, one consumer, identity consume: bytes/s against
   ``Pool(1).imap`` (target >= 20x) and against an in-process ``np.copyto`` of
   the same arrays (target >= 0.3x).
3. ``buffer=4``, a slow consumer, 1 GiB streamed: main's resident memory may
   grow by less than 6 items' worth.

Rates are steady-state: from the first result to the last, so process
start-up is left out on both sides. The machine is shared and noisy, so each
side is measured ``--rounds`` times, alternating, and the best round counts.
``--write`` records the figures in benchmarks/README.md.
"""
import argparse
import datetime
import functools
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

import ipckit
from ipckit import workloads
from ipckit.pipeline import OrderedPipeline

MiB = 2**20
SECTION = "## Ordered pipeline (benchmarks/pipeline_targets.py)"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from recording import describe_machine, write_block  # noqa: E402  (a module beside this script)


def steady_rate(results):
    """Items per second from the first result to the last."""
    first = None
    count = 0
    for _ in results:
        count += 1
        if first is None:
            first = time.perf_counter()
    return (count - 1) / (time.perf_counter() - first)


def pipeline_rate(items, produce, args, start_method, buffer=None):
    with OrderedPipeline(produce, workloads.identity, args, buffer=buffer, start_method=start_method) as pipe:
        rate = steady_rate(pipe)
    assert pipe.stats["items"] == items
    return rate


def pool_rate(iterable, start_method):
    with ipckit.get_context(start_method).Pool(1) as pool:
        rate = steady_rate(pool.imap(workloads.identity, iterable, chunksize=1))
    pool.join()
    return rate


def copyto_rate(nbytes, repeats=20):
    source = np.arange(nbytes // 8, dtype=np.float64)
    target = np.empty_like(source)
    np.copyto(target, source)
    best = min(_timed(np.copyto, target, source) for _ in range(repeats))
    return 1 / best


def _timed(func, *args):
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def peak_memory_growth(count, nbytes, start_method):
    """Stream ``count`` arrays through buffer=4 with a slow consumer; return main's peak RSS growth in bytes."""
    me = psutil.Process()
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], me.memory_info().rss)
            time.sleep(0.002)

    base = me.memory_info().rss
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    slow = functools.partial(workloads.pause, seconds=0.02)
    try:
        with OrderedPipeline(workloads.same_array, slow, (count, nbytes), buffer=4, start_method=start_method) as pipe:
            for number, array in enumerate(pipe):
                assert array[0] == number
            slots = pipe._pool.slots if pipe._pool is not None else 0
    finally:
        done.set()
        sampler.join()
    return peak[0] - base, slots, pipe.stats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-method", default=None, help="fork, spawn or forkserver (default: ipckit's)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side; the best counts")
    parser.add_argument("--write", action="store_true", help="record the results in benchmarks/README.md")
    options = parser.parse_args(argv)
    method = ipckit.resolve_start_method(options.start_method)
    load = os.getloadavg()

    tiny = 5_000
    tiny_pipe, tiny_pool = [], []
    big, big_count, pool_count = 16 * MiB, 64, 6
    big_pipe, big_pool = [], []
    for _ in range(options.rounds):
        tiny_pipe.append(pipeline_rate(tiny, workloads.numbers, (tiny,), method))
        tiny_pool.append(pool_rate(range(tiny), method))
        big_pipe.append(pipeline_rate(big_count, workloads.same_array, (big_count, big), method, buffer=4) * big)
        big_pool.append(pool_rate(workloads.same_array(pool_count, big), method) * big)
    copy = copyto_rate(big) * big
    growth, slots, stats = peak_memory_growth(64, big, method)

    rows = [
        ("tiny items/s: pipeline / Pool(1).imap", max(tiny_pipe), max(tiny_pool), 0.5, "items/s"),
        ("16 MiB arrays: pipeline / Pool(1).imap", max(big_pipe), max(big_pool), 20, "B/s"),
        ("16 MiB arrays: pipeline / np.copyto", max(big_pipe), copy, 0.3, "B/s"),
    ]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {now} by `python benchmarks/pipeline_targets.py --rounds {options.rounds}` under the "
        f"{method} start method, best of {options.rounds} alternating rounds per side.",
        "",
        f"Machine: {describe_machine(load)}. The machine is shared: read the ratios, not the times.",
        "",
    ]
    verdicts = []
    lines.append("| target | pipeline | reference | ratio | needed | result |")
    lines.append("|---|---|---|---|---|---|")
    for name, ours, theirs, needed, unit in rows:
        ratio = ours / theirs
        show = (lambda v: f"{v:,.0f} items/s") if unit == "items/s" else (lambda v: f"{v / 1e9:.2f} GB/s")
        verdict = "PASS" if ratio >= needed else "**FAIL**"
        verdicts.append(verdict)
        lines.append(f"| {name} | {show(ours)} | {show(theirs)} | {ratio:.2f}x | >= {needed}x | {verdict} |")
    items_grown = growth / big
    verdict = "PASS" if items_grown < 6 else "**FAIL**"
    verdicts.append(verdict)
    lines.append(
        f"| buffer=4, slow consumer, 1 GiB: main's peak RSS growth | {items_grown:.1f} items | | | < 6 items | {verdict} |"
    )
    lines += [
        "",
        f"During the 1 GiB run the slot pool held {slots} slots of 16 MiB in /dev/shm, a number set by "
        "the buffer, the consumers and the slots granted ahead or lent, not by the stream's length. Main "
        "maps a slot's pages only where the caller reads a lent result (here one value each), and copies "
        "other results out with pread, so the pool does not count in main's RSS. Items through shared "
        f"memory: {stats['via shared memory']} of {stats['items']}.",
    ]
    report = "\n".join(lines)
    print(report)
    if options.write:
        write_block(SECTION, "pipeline_targets.py", report)
    return 0 if all(verdict == "PASS" for verdict in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
