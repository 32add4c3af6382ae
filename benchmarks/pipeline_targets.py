"""The ordered pipeline's performance targets, measured beside its peers in one run.

    python benchmarks/pipeline_targets.py [--rounds 5] [--start-method spawn] [--no-write] [--quick]

Three workloads, every side from the first result to the last (starting
processes is left out; with frames and arrays, from a result a little later
on every side, so that the first use of each shared-memory slot is left out
too), every result checked:

- tiny items: ints, ``consume`` returns its item. Sides: the bare ping-pong
  limit (two processes bouncing 8 bytes over pipes), ``OrderedPipeline`` with
  its defaults (the strict hand-off), ``prefetch`` (``PREFETCH`` below),
  ``chunksize=64`` and ``prefetch`` with 2 consumers, ``Pool.imap`` (1 worker
  with chunksize 1 and 64, 2 workers), ``ProcessPoolExecutor(1).map``, mpire
  ``WorkerPool(1).imap`` and joblib's generator (``n_jobs=2,
  return_as="generator"``);
- frames: 1,000 new 240x320 uint8 frames, producer -> consumer -> main, each
  checked byte for byte; ``OrderedPipeline`` strict and with ``prefetch``
  against a plain Queue chain of two spawned processes;
- big arrays: a new 16 MiB float64 array per item, doubled; each result
  checked at one value in every 4 KiB page. The pipeline's consumer doubles the
  array in place (its result then stays in its slot; ``a * 2``, a new array,
  is measured too), ``Pool(1).imap`` and mpire ``WorkerPool(1).imap`` return
  ``a * 2``; one process doing it all in a plain loop is the floor every
  multi-process option must beat to be worth it.

Each round runs every side once, in turn, so a busy moment on a shared
machine hits all of them. A target's ratio is the median over the rounds of
the ratio measured within each round. Also checked, as before: with
``buffer=4`` and a slow consumer, main's resident memory grows by less than 6
items' worth while 1 GiB streams through.

Prints the report, rewrites the results block of the pipeline's section in
benchmarks/README.md (unless ``--no-write``) and exits 1 if a target failed.
Needs ``pip install -r benchmarks/requirements.txt`` (mpire, joblib).
"""
import argparse
import datetime
import functools
import os
import resource
import statistics
import sys
import threading
import time

import psutil

from ipckit import pipeline_speed as speed
from ipckit.context import resolve_start_method
from ipckit.lessons import workloads
from ipckit.pipeline import OrderedPipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recording import describe_machine, write_block  # noqa: E402  (a module beside this script)

MiB = 2**20
PREFETCH = 8  # the items a consumer may hold ahead in the prefetch rows
SECTION = "## Ordered pipeline (benchmarks/pipeline_targets.py)"
FULL = {"tiny": 20_000, "many": 400_000, "frames": 1_000, "arrays": 96, "slow arrays": 8, "ping-pong": 50_000}
QUICK = {"tiny": 3_000, "many": 50_000, "frames": 300, "arrays": 8, "slow arrays": 3, "ping-pong": 5_000}

# (row, section, unit): the sides, in the order they run and are shown
ROWS = [
    ("bare ping-pong limit (round trips)", "tiny", "items/s"),
    ("OrderedPipeline, strict (defaults)", "tiny", "items/s"),
    ("OrderedPipeline, strict, buffer=None", "tiny", "items/s"),
    (f"OrderedPipeline, prefetch={PREFETCH}", "tiny", "items/s"),
    ("OrderedPipeline, chunksize=64", "tiny", "items/s"),
    (f"OrderedPipeline, prefetch={PREFETCH}, 2 consumers", "tiny", "items/s"),
    ("Pool(1).imap, chunksize=1", "tiny", "items/s"),
    ("Pool(1).imap, chunksize=64", "tiny", "items/s"),
    ("Pool(2).imap, chunksize=1", "tiny", "items/s"),
    ("ProcessPoolExecutor(1).map", "tiny", "items/s"),
    ("mpire WorkerPool(1).imap, chunk_size=1", "tiny", "items/s"),
    ("joblib Parallel(n_jobs=2, return_as='generator')", "tiny", "items/s"),
    ("frames: OrderedPipeline, strict (defaults)", "frames", "frames/s"),
    (f"frames: OrderedPipeline, prefetch={PREFETCH}", "frames", "frames/s"),
    ("frames: Queue chain producer -> consumer -> main", "frames", "frames/s"),
    ("16 MiB: one process, make and double in a loop", "arrays", "arrays/s"),
    ("16 MiB: OrderedPipeline, doubled in place", "arrays", "arrays/s"),
    ("16 MiB: OrderedPipeline, a * 2 (a new array)", "arrays", "arrays/s"),
    ("16 MiB: Pool(1).imap, a * 2", "arrays", "arrays/s"),
    ("16 MiB: mpire WorkerPool(1).imap, a * 2", "arrays", "arrays/s"),
]
TARGETS = [  # (what, row, compared with, at least)
    ("strict hand-off, tiny items", "OrderedPipeline, strict (defaults)", "Pool(1).imap, chunksize=1", 0.45),
    ("prefetch, tiny items, 1 consumer", f"OrderedPipeline, prefetch={PREFETCH}", "Pool(1).imap, chunksize=1", 0.8),
    ("prefetch, tiny items, 2 consumers", f"OrderedPipeline, prefetch={PREFETCH}, 2 consumers",
     "Pool(2).imap, chunksize=1", 1.0),
    ("chunksize=64, tiny items", "OrderedPipeline, chunksize=64", "Pool(1).imap, chunksize=64", 0.5),
    ("prefetch, frames", f"frames: OrderedPipeline, prefetch={PREFETCH}",
     "frames: Queue chain producer -> consumer -> main", 1.0),
    ("strict hand-off, frames", "frames: OrderedPipeline, strict (defaults)",
     "frames: Queue chain producer -> consumer -> main", 0.6),
    ("16 MiB arrays against Pool", "16 MiB: OrderedPipeline, a * 2 (a new array)", "16 MiB: Pool(1).imap, a * 2",
     20),
    ("16 MiB arrays against mpire", "16 MiB: OrderedPipeline, a * 2 (a new array)",
     "16 MiB: mpire WorkerPool(1).imap, a * 2", 5),
]


def sides(counts, method):
    """Row name -> a function that runs that side once and returns (rate, items checked).

    Frames and arrays start each side's clock a little after the first result
    (the same share of items on every side): the first trip through each
    shared-memory slot maps its pages in every process once, and a long
    stream's steady rate is what is compared.
    """
    tiny, many, frames, arrays, slow = (counts[k] for k in ("tiny", "many", "frames", "arrays", "slow arrays"))
    number, frame, doubled = speed.check_number, speed.check_frame, speed.array_check(2.0)
    big, frames_warm, arrays_warm, slow_warm = 16 * MiB, max(1, frames // 50), max(1, arrays // 4), max(1, slow // 4)

    def piped(produce, consume, args, count, check, warm_up=1, **options):
        return lambda: speed.pipeline_rate(produce, consume, args, count, check, method, warm_up, **options)

    identity, numbers = workloads.identity, workloads.numbers
    return {
        "bare ping-pong limit (round trips)": lambda: speed.ping_pong_rate(counts["ping-pong"], method),
        "OrderedPipeline, strict (defaults)": piped(numbers, identity, (tiny,), tiny, number),
        "OrderedPipeline, strict, buffer=None": piped(numbers, identity, (tiny,), tiny, number, buffer=None),
        f"OrderedPipeline, prefetch={PREFETCH}": piped(numbers, identity, (tiny,), tiny, number, prefetch=PREFETCH),
        "OrderedPipeline, chunksize=64": piped(numbers, identity, (many,), many, number, chunksize=64),
        f"OrderedPipeline, prefetch={PREFETCH}, 2 consumers": piped(numbers, identity, (tiny,), tiny, number,
                                                                     prefetch=PREFETCH, consumers=2),
        "Pool(1).imap, chunksize=1": lambda: speed.pool_rate(identity, range(tiny), tiny, number, 1, 1, method),
        "Pool(1).imap, chunksize=64": lambda: speed.pool_rate(identity, range(many), many, number, 1, 64, method),
        "Pool(2).imap, chunksize=1": lambda: speed.pool_rate(identity, range(tiny), tiny, number, 2, 1, method),
        "ProcessPoolExecutor(1).map": lambda: speed.executor_rate(identity, range(tiny), tiny, number, 1, method),
        "mpire WorkerPool(1).imap, chunk_size=1": lambda: speed.mpire_rate(identity, range(tiny), tiny, number, 1, 1,
                                                                           method),
        "joblib Parallel(n_jobs=2, return_as='generator')": lambda: speed.joblib_rate(identity, range(tiny), tiny,
                                                                                      number, 2),
        "frames: OrderedPipeline, strict (defaults)": piped(speed.frames, identity, (frames,), frames, frame,
                                                            frames_warm),
        f"frames: OrderedPipeline, prefetch={PREFETCH}": piped(speed.frames, identity, (frames,), frames, frame,
                                                               frames_warm, prefetch=PREFETCH),
        "frames: Queue chain producer -> consumer -> main": lambda: speed.queue_chain_rate(
            frames, start_method=method, warm_up=frames_warm),
        "16 MiB: one process, make and double in a loop": lambda: speed.steady_rate(
            map(speed.double, speed.fresh_arrays(arrays, big)), doubled, arrays, arrays_warm),
        "16 MiB: OrderedPipeline, doubled in place": piped(speed.fresh_arrays, speed.double_in_place, (arrays, big),
                                                           arrays, doubled, arrays_warm),
        "16 MiB: OrderedPipeline, a * 2 (a new array)": piped(speed.fresh_arrays, speed.double, (arrays, big), arrays,
                                                              doubled, arrays_warm),
        "16 MiB: Pool(1).imap, a * 2": lambda: speed.pool_rate(speed.double, speed.fresh_arrays(slow, big), slow,
                                                               doubled, 1, 1, method, slow_warm),
        "16 MiB: mpire WorkerPool(1).imap, a * 2": lambda: speed.mpire_rate(speed.double, speed.fresh_arrays(slow, big),
                                                                            slow, doubled, 1, 1, method, slow_warm),
    }


def peak_memory_growth(count, nbytes, method):
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
        with OrderedPipeline(workloads.same_array, slow, (count, nbytes), buffer=4, start_method=method) as pipe:
            for number, array in enumerate(pipe):
                assert array[0] == number
            slots = pipe._pool.slots if pipe._pool is not None else 0
    finally:
        done.set()
        sampler.join()
    return peak[0] - base, slots, pipe.stats


def _switches():
    """Context switches so far of this process (every thread) and of its children that have ended.

    (Under forkserver the workers are the forkserver's children, not ours: main() then leaves the column out.)
    """
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_nvcsw + me.ru_nivcsw + children.ru_nvcsw + children.ru_nivcsw


def _rate(value, unit):
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-method", default=None, help="fork, spawn or forkserver (default: ipckit's, spawn)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each runs every side once (default 5)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/README.md as it is")
    parser.add_argument("--quick", action="store_true", help="small counts, to try the script (not for the record)")
    options = parser.parse_args(argv)
    method = resolve_start_method(options.start_method)
    counts = QUICK if options.quick else FULL
    load = os.getloadavg()
    began = time.monotonic()
    run = sides(counts, method)
    rates = {name: [] for name, _, _ in ROWS}
    switches = {name: [] for name, _, _ in ROWS}  # context switches per item, every process of the side
    for round_number in range(options.rounds):
        for name, _, _ in ROWS:
            before = _switches()
            rate, items = run[name]()
            rates[name].append(rate)
            switches[name].append((_switches() - before) / items)
        print(f"round {round_number + 1} of {options.rounds} done ({time.monotonic() - began:.0f} s)", file=sys.stderr)
    growth, slots, stats = peak_memory_growth(64, 16 * MiB, method)
    load_after = os.getloadavg()

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/pipeline_targets.py" + (f" --rounds {options.rounds}" if options.rounds != 5 else "")
    lines = [
        f"Measured {now} by `{command}`{' --quick' if options.quick else ''} under the {method} start method: "
        f"{options.rounds} rounds, each running every side once, in turn; {time.monotonic() - began:.0f} s in all.",
        "",
        f"Machine: {describe_machine(load)}; load average {load_after[0]:.2f}, {load_after[1]:.2f}, "
        f"{load_after[2]:.2f} at the end. The machine is shared: read the ratios, measured side by side, "
        "more than the rates.",
        "",
        "| target | ratio per round | median | needed | result |",
        "|---|---|---|---|---|",
    ]
    verdicts = []
    for what, ours, theirs, needed in TARGETS:
        ratios = [a / b for a, b in zip(rates[ours], rates[theirs], strict=True)]
        ratio = statistics.median(ratios)
        verdict = "PASS" if ratio >= needed else "**FAIL**"
        verdicts.append(verdict)
        shown = ", ".join(f"{r:.2f}" for r in ratios)
        lines.append(f"| {what}: {ours} / {theirs} | {shown} | {ratio:.2f}x | >= {needed}x | {verdict} |")
    items_grown = growth / (16 * MiB)
    verdict = "PASS" if items_grown < 6 else "**FAIL**"
    verdicts.append(verdict)
    lines.append(f"| buffer=4, slow consumer, 1 GiB: main's peak RSS growth | | {items_grown:.1f} items | < 6 items | "
                 f"{verdict} |")
    # A forkserver's children are not main's: RUSAGE_CHILDREN never sees them, so the column would count main only.
    counted = method != "forkserver"
    lines += ["", "| side | median rate | rate per round | context switches per item |", "|---|---|---|---|"]
    for name, _, unit in ROWS:
        values = rates[name]
        lines.append(f"| {name} | {_rate(statistics.median(values), unit)} | "
                     f"{', '.join(f'{v:,.0f}' if v >= 100 else f'{v:.1f}' for v in values)} | "
                     f"{statistics.median(switches[name]):.2f} |" if counted else "n/a |")
    ping = statistics.median(rates["bare ping-pong limit (round trips)"])
    strict = statistics.median(rates["OrderedPipeline, strict (defaults)"])
    switched = {name: statistics.median(values) for name, values in switches.items()}
    lines += [
        "",
        f"The strict hand-off costs {1e6 / strict:.1f} µs per item; two bare processes ping-ponging take "
        f"{1e6 / ping:.1f} µs per round trip, so the pipeline's own cost is about {1e6 / strict - 1e6 / ping:.1f} µs "
        "per item." + (
            f" Beside it, the wake-ups: {switched['OrderedPipeline, strict (defaults)']:.1f} context switches "
            f"per item (the ping-pong's round trip takes {switched['bare ping-pong limit (round trips)']:.1f}, "
            f"`Pool(1).imap` {switched['Pool(1).imap, chunksize=1']:.2f}: it sends every task ahead and its "
            f"processes rarely sleep; with prefetch, {switched[f'OrderedPipeline, prefetch={PREFETCH}']:.1f})."
            if counted else ""),
        "",
        f"During the 1 GiB run the slot pool held {slots} slots of 16 MiB in /dev/shm, a number set by what the "
        "consumers may hold, a few on their way and the results the caller may keep, not by the buffer or the "
        f"stream's length (waits for a free slot: {stats['waited for a slot']}). Main maps a slot's pages "
        "only where the caller reads a lent result (here one value each), and copies other results out with "
        f"pread, so the pool does not count in main's RSS. Items through shared memory: {stats['via shared memory']} "
        f"of {stats['items']}.",
    ]
    report = "\n".join(lines)
    print(report)
    if not options.no_write and not options.quick:
        write_block(SECTION, "pipeline_targets.py", report)
    return 0 if all(v == "PASS" for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
