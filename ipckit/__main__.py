"""``python -m ipckit bench``: time every array transport against memcpy on this machine.

A progress bar goes to stderr, a table to stdout; ``--csv`` and ``--plot``
write the same records as a CSV file and a PNG chart. Exit status: 0 when
every received copy checked out, 1 when one did not (or a measurement failed),
2 for bad arguments (with a one-line message). See :mod:`ipckit.bench` for
what is timed.
"""
import argparse
import os
import sys

from . import bench
from .context import DEFAULT_START_METHOD, ENV_VAR, START_METHODS
from .transports import TRANSPORTS


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument gives one line on stderr (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _type(parse):
    """An argparse type from one of bench's parsers: its ValueError message becomes the error line."""

    def convert(text):
        try:
            return parse(text)
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _count(minimum):
    def count(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise ValueError(f"{text!r} is not a whole number of at least {minimum}")
        return value

    return _type(count)


def _output_path(text):
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write {text!r}: {folder} is not a writable folder")
    return text


def _transports(text):
    return bench.transport_names(text)


def build_parser():
    parser = _Parser(prog="python -m ipckit", description="ipckit's command line.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sizes_default = ",".join(bench.format_size(n).replace(" ", "") for n in bench.DEFAULT_SIZES)
    run = commands.add_parser(
        "bench",
        help="time every array transport against memcpy, and small-message latency",
        description=(
            "Time float64 arrays streamed from this process to a child, for every transport in "
            "ipckit.arrays.TRANSPORTS, against an in-process memcpy of the same size; then the round trip of a "
            "small message through a Queue, a Pipe, a Manager proxy and a subprocess's stdin/stdout. Arrays go "
            "in bursts sent without waiting, the receiver holding every array of a burst; a burst is timed from "
            "the first send() until the last recv() returns in the receiver, the receiver's allocations "
            "included, and reported per array; every array received is checked (CRC-32) after the clock stops. "
            "Combinations that cannot or should not run here are skipped with a reason."
        ),
        epilog=(
            "Exit status: 0 if every received copy checked out, 1 if one did not or a measurement failed, "
            f"2 for bad arguments. Transports: {', '.join(TRANSPORTS)}."
        ),
    )
    run.add_argument(
        "--sizes", type=_type(bench.parse_sizes), default=list(bench.DEFAULT_SIZES), metavar="LIST",
        help=f"array sizes, comma-separated, with a unit B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB "
             f"(powers of 1024); default {sizes_default}",
    )
    run.add_argument(
        "--transports", type=_type(_transports), default=None, metavar="all|NAME,...",
        help="'all' (the default) or a comma-separated list of transport names; memcpy is always measured",
    )
    run.add_argument(
        "--start-method", choices=START_METHODS, default=None,
        help=f"how the receiving children start; default ${ENV_VAR} or {DEFAULT_START_METHOD}",
    )
    run.add_argument("--repeat", type=_count(1), default=bench.DEFAULT_REPEAT, metavar="N",
                     help=f"timed bursts per transport and size (default {bench.DEFAULT_REPEAT})")
    run.add_argument("--warmup", type=_count(0), default=bench.DEFAULT_WARMUP, metavar="N",
                     help=f"untimed bursts before those (default {bench.DEFAULT_WARMUP})")
    run.add_argument("--frames", type=_count(1), default=bench.DEFAULT_FRAMES, metavar="N",
                     help=f"arrays per burst (default {bench.DEFAULT_FRAMES}); 1 times lone hand-offs, "
                          "nothing overlapped")
    run.add_argument("--csv", type=_type(_output_path), metavar="PATH",
                     help="also write the measured rows as CSV: " + ",".join(bench.CSV_COLUMNS))
    run.add_argument("--plot", type=_type(_output_path), metavar="PATH",
                     help="also draw GB/s against size (log-log, memcpy dashed) as a PNG image")
    run.add_argument("--no-latency", dest="latency", action="store_false",
                     help="skip the small-message round trips")
    run.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no progress bar on stderr")
    parser.commands = {"bench": run}
    return parser


def bench_command(args):
    try:
        records = bench.measure(args.sizes, args.transports, args.start_method, args.repeat, args.warmup,
                                progress=args.progress, frames=args.frames)
        print(bench.table(records), flush=True)
        if args.latency:
            round_trips = bench.latency(start_method=args.start_method, progress=args.progress)
            print()
            print(bench.latency_table(round_trips), flush=True)
    except Exception as exc:  # a measurement failed: one line, not a traceback
        print(f"python -m ipckit bench: failed: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    if args.csv:
        rows = bench.write_csv(records, args.csv)
        print(f"wrote {rows} rows to {args.csv}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        from . import plots

        figure = plots.plot_bandwidth(records)
        figure.savefig(args.plot, format="png", dpi=120, bbox_inches="tight")
        print(f"wrote the chart to {args.plot}")
    if not bench.all_ok(records):
        print("python -m ipckit bench: some received copies did not check out (ok = NO above)", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's parser, so the message names the command
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "bench":
        return bench_command(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # spawned children import this module as __mp_main__: run nothing then
    sys.exit(main())
