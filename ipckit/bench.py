"""Measuring: every array transport against memcpy, small-message latency, start-up cost.

What a hand-off time includes (the same for every transport)
-------------------------------------------------------------
Transports are measured streaming, the way programs use them: a burst of
``frames`` arrays (default :data:`DEFAULT_FRAMES`) goes from this process to a
child one after the other, the sender never waiting for the reader, and the
reader holds every array it received until the burst is over. A burst is timed
from just before the first ``sender.send(array)`` here to just after the last
``receiver.recv()`` returns in the child, on ``time.perf_counter``, a clock
every process on the machine shares; the figure is that time divided by
``frames``: seconds per array. So it includes all the work the transport does
on both sides, as much of it overlapped as the transport allows: pickling, the
kernel's copies, the acknowledgements the shared-buffer transports wait for,
and the receiver allocating the arrays it returns (fresh arrays: their page
faults are inside the interval), except for ``shared_memory``, whose receiver
reads in place: one copy in all, the sender's, and an array the reader does not
own (it is the sender's again after the next ``recv()``). To compare it like
with like, :func:`copied_out` makes its reader copy each array, as the others
hand over one the reader owns. ``frames=1`` measures a lone hand-off instead
(the latency of one array, nothing to overlap).

It does not include starting the child: one child receives every burst of a
measurement, started before the first. The exception is ``fork_global``, whose
data travels by ``fork`` itself: each of its bursts is one array and one new
child, so its time is the time to fork a child that can read the array, in
place (it exists only under the ``fork`` start method). That time grows with
the memory the parent maps, the array included: ``fork`` copies page tables.

Each measurement makes ``warmup`` bursts that are not timed, then ``repeat``
timed ones, and reports the minimum and the median seconds per array, and GB/s
(10**9 bytes per second) from the median. The arrays of a burst differ (each
carries its number in the first byte of every 64 KiB). After every burst, timed
or not, and after the clock has stopped, the child computes the fingerprint
(shape, dtype, CRC-32 of the bytes) of every array it held and this process
compares them with what it sent: ``ok`` is False if any array differed, for
instance because the sender wrote over it while the reader held it (a transport
that is only safe in lock-step). :func:`corrupted` wraps a transport so that
its receiver flips one bit, to show that the check can fail.

The reference row ``memcpy`` is ``numpy.copyto`` of the same array into a
destination allocated and touched once beforehand, in this process: one memory
copy, no process, no allocation, no page faults. For big arrays it is the
limit for any transport that copies the data once (``shared_memory`` comes
close); most copy it twice or more. For small ones its time is mostly the cost
of one numpy call, not of moving bytes: a ceiling, not a physical limit.

A combination that cannot or should not run here is not an error: it becomes a
record with a ``reason`` (a transport under a start method it cannot use,
shared memory larger than the free space in ``/dev/shm``, ``rawarray_seq`` or
``manager`` above the size at which they would take minutes).

Records are plain dicts. Hand-off records (:func:`hand_off`, :func:`memcpy`,
:func:`measure`) hold ``transport, start_method, nbytes, repeat`` and either
``frames, seconds_min, seconds_median, gb_per_s, ok, seconds`` or ``reason``;
the CSV (:func:`write_csv`) and the charts in :mod:`ipckit.plots` use the same
records. :func:`latency` and :func:`startup` return records with ``channel`` or
``start_method`` and ``seconds_min, seconds_median``.
"""
import contextlib
import csv
import re
import statistics
import sys
import time

import numpy as np

from . import arrays, faults, messages
from .checks import check_count, check_timeout
from .child import LineChild
from .context import START_METHODS, get_context, resolve_start_method
from .run import DEFAULT_TIMEOUT, run_in_child, stop_process

KiB, MiB, GiB = 2**10, 2**20, 2**30
UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": KiB, "MiB": MiB, "GiB": GiB}
DEFAULT_SIZES = (4 * KiB, MiB, 16 * MiB, 128 * MiB)
DEFAULT_REPEAT = 5
DEFAULT_WARMUP = 1
DEFAULT_FRAMES = 4  # arrays per timed burst: streaming, the reader holding each one until the burst ends
MEMCPY = "memcpy"
CSV_COLUMNS = ("transport", "start_method", "nbytes", "repeat", "seconds_min", "seconds_median", "gb_per_s", "ok")
IN_PROCESS = "in-process"  # the start method column of the memcpy row: no process is started

# --- sizes and names -----------------------------------------------------------------------------

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


def transport_names(transports=None):
    """The transports to measure: ``None`` or ``"all"`` for every one, else names (a list or ``"a,b"``).

    ``"memcpy"`` may be named but is always measured anyway. Transport objects
    (e.g. from :func:`corrupted`) pass through. ValueError lists the valid names.
    """
    if transports is None or transports == "all":
        return list(arrays.TRANSPORTS)
    items = transports.split(",") if isinstance(transports, str) else list(transports)
    chosen, memcpy_only = [], False
    for item in items:
        if isinstance(item, str):
            item = item.strip()
            if item == MEMCPY:
                memcpy_only = True
                continue
            if item not in arrays.TRANSPORTS:
                raise ValueError(f"unknown transport {item!r}; choose all or any of: {', '.join(arrays.TRANSPORTS)}")
        elif not isinstance(item, arrays.Transport):
            raise TypeError(f"a transport is a name such as 'pipe_bytes' or a Transport, not {type(item).__name__}")
        if item not in chosen:
            chosen.append(item)
    if not chosen and not memcpy_only:
        raise ValueError(f"no transport named; choose all or any of: {', '.join(arrays.TRANSPORTS)}")
    return chosen


def sample_array(nbytes):
    """The array every measurement sends: float64 values 0, 1, 2... (uint8 when ``nbytes`` is not a multiple of 8)."""
    nbytes = check_count(nbytes, "nbytes")
    if nbytes % 8 == 0:
        return np.arange(nbytes // 8, dtype=np.float64)
    return (np.arange(nbytes) % 251).astype(np.uint8)


# --- timing --------------------------------------------------------------------------------------


def _summary(seconds, nbytes=None):
    record = {
        "repeat": len(seconds),
        "seconds_min": min(seconds),
        "seconds_median": statistics.median(seconds),
    }
    if nbytes is not None:
        median = record["seconds_median"]
        record["gb_per_s"] = nbytes / median / 1e9 if median > 0 else float("inf")
    return record


def time_calls(call, repeat, warmup, check=None):
    """Call ``call`` ``warmup`` times, then time ``repeat`` calls; run ``check()`` after each, untimed.

    Returns (seconds of the timed calls, whether every check returned True).
    """
    seconds, ok = [], True
    for index in range(warmup + repeat):
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        if index >= warmup:
            seconds.append(elapsed)
        if check is not None:
            ok &= bool(check())
    return seconds, ok


def memcpy(nbytes, repeat=DEFAULT_REPEAT, warmup=DEFAULT_WARMUP):
    """The reference row: ``numpy.copyto`` of the test array into a destination touched beforehand."""
    nbytes = check_count(nbytes, "nbytes")
    repeat = check_count(repeat, "repeat")
    warmup = check_count(warmup, "warmup", minimum=0)
    source = sample_array(nbytes)
    target = np.empty_like(source)
    target[...] = 0  # touch every page now, so no page fault is timed
    expected = arrays.fingerprint(source)
    seconds, ok = time_calls(
        lambda: np.copyto(target, source), repeat, warmup, check=lambda: arrays.fingerprint(target) == expected
    )
    return {"transport": MEMCPY, "start_method": IN_PROCESS, "nbytes": nbytes, "frames": 1,
            **_summary(seconds, nbytes), "ok": ok, "seconds": seconds}


def hand_off(nbytes, transport, start_method=None, repeat=DEFAULT_REPEAT, warmup=DEFAULT_WARMUP,
             timeout=DEFAULT_TIMEOUT, frames=DEFAULT_FRAMES):
    """Measure one transport at one size: ``warmup`` untimed, then ``repeat`` timed bursts of ``frames`` arrays.

    Returns a record (see the module docstring), with a ``reason`` instead of
    timings when the combination cannot or should not run here. Bad arguments
    raise here, before any process starts.
    """
    transport = arrays.get_transport(transport)
    nbytes = check_count(nbytes, "nbytes")
    method = resolve_start_method(start_method)
    repeat = check_count(repeat, "repeat")
    warmup = check_count(warmup, "warmup", minimum=0)
    frames = check_count(frames, "frames")
    check_timeout(timeout)
    record = {"transport": transport.name, "start_method": method, "nbytes": nbytes, "repeat": repeat}
    reason = transport.unavailable_reason(nbytes, method, hold=frames)
    if reason:
        return {**record, "reason": reason}
    timed = arrays.hand_off_times(sample_array(nbytes), transport, method, repeat, timeout, warmup=warmup,
                                  frames=frames)
    return {**record, "frames": timed["frames"], **_summary(timed["seconds"], nbytes), "ok": timed["intact"],
            "seconds": timed["seconds"]}


class _NoBar:
    def set_postfix_str(self, text):
        pass

    def update(self, n=1):
        pass


@contextlib.contextmanager
def _progress(progress, total, what):
    """A tqdm bar (``tqdm.auto``: a widget in Jupyter, text on stderr elsewhere) if ``progress``, else nothing."""
    if not progress:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=what, unit="step", file=sys.stderr, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


def measure(sizes=DEFAULT_SIZES, transports=None, start_method=None, repeat=DEFAULT_REPEAT,
            warmup=DEFAULT_WARMUP, timeout=DEFAULT_TIMEOUT, progress=False, frames=DEFAULT_FRAMES):
    """:func:`memcpy` and :func:`hand_off` for every size and transport; return the records in that order.

    ``sizes``: bytes or strings such as ``"16MiB"`` (a list, or ``"4KiB,1MiB"``);
    ``transports``: ``None``/``"all"`` or names; ``progress=True`` shows a tqdm bar.
    """
    sizes = parse_sizes(sizes)
    names = transport_names(transports)
    method = resolve_start_method(start_method)
    repeat = check_count(repeat, "repeat")
    warmup = check_count(warmup, "warmup", minimum=0)
    frames = check_count(frames, "frames")
    check_timeout(timeout)
    steps = [(size, name) for size in sizes for name in [MEMCPY] + names]
    records = []
    with _progress(progress, len(steps), "hand-offs") as bar:
        for size, name in steps:
            label = name if isinstance(name, str) else name.name
            bar.set_postfix_str(f"{label} {format_size(size)}")
            if name == MEMCPY:
                records.append(memcpy(size, repeat, warmup))
            else:
                records.append(hand_off(size, name, method, repeat, warmup, timeout, frames))
            bar.update()
    return records


def short_reason(record):
    """The first clause of why a record was skipped, without the transport's name in front.

    Takes bench records (``reason``) and :func:`ipckit.arrays.compare_transports`'
    (``skipped``); returns None for a measured record.
    """
    reason = record.get("reason") or record.get("skipped")
    if not reason:
        return None
    for prefix in (f"transport {record['transport']!r}: ", f"transport {record['transport']!r} "):
        if reason.startswith(prefix):
            reason = reason[len(prefix):]
    return reason.split(":")[0]


def all_ok(records):
    """True when every measured record's received copies checked out (skipped records do not count)."""
    return all(record["ok"] for record in records if "ok" in record)


def speeds(records):
    """``{transport: GB/s}`` of the measured records (one size, one start method), memcpy included."""
    return {r["transport"]: r["gb_per_s"] for r in records if "gb_per_s" in r}


# --- checks that can fail ---------------------------------------------------------------------------


class _WrappedEnd:
    """A receiving end around another one."""

    def __init__(self, end):
        self._end = end

    def release(self):
        self._end.release()

    def close(self):
        self._end.close()


class _FlipOneBit(_WrappedEnd):
    """A receiving end that flips the lowest bit of the first byte of every array it returns."""

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        array = np.ascontiguousarray(self._end.recv(timeout, peer))
        if not array.flags.writeable:
            array = array.copy()
        if array.nbytes:
            array.reshape(-1).view(np.uint8)[0] ^= 1
        return array


class _ReleaseInsideRecv(_WrappedEnd):
    """A receiving end that gives each array's memory back inside recv(), before the caller has read it."""

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        array = self._end.recv(timeout, peer)
        self._end.release()  # too early: the sender may now write over the array the caller is about to read
        return array

    def release(self):
        pass


class _Wrapped(arrays.Transport):
    """``inner`` with its receiving end wrapped; ``hold_one`` ignores the receiver's ``hold`` (one array)."""

    def __init__(self, inner, suffix, what, end, hold_one=False):
        self.inner, self._end, self._hold_one = inner, end, hold_one
        self.name = f"{inner.name} ({suffix})"
        self.summary = f"{inner.summary}; {what}"
        self.start_methods = inner.start_methods
        self.send_before_start = inner.send_before_start
        self.in_place = inner.in_place
        self.practical_limit = inner.practical_limit

    def shm_bytes(self, nbytes, hold=1):
        return self.inner.shm_bytes(nbytes, 1 if self._hold_one else hold)

    def _open(self, capacity, ctx, hold=1):
        link = self.inner._open(capacity, ctx, 1 if self._hold_one else hold)
        link.receiver = self._end(link.receiver)
        return link


def corrupted(transport):
    """``transport`` with a receiver that damages every array (one bit): measured, it must report ``ok=False``."""
    return _Wrapped(arrays.get_transport(transport), "corrupted", "the receiver then flips one bit", _FlipOneBit)


class _CopyOut(_WrappedEnd):
    """A receiving end that returns a copy of every array: one the reader owns, as the copying transports give."""

    def recv(self, timeout=DEFAULT_TIMEOUT, peer=None):
        return self._end.recv(timeout, peer).copy()


def copied_out(transport="shared_memory"):
    """``transport`` with a reader that copies each array it receives: an in-place transport compared like with like."""
    wrapped = _Wrapped(arrays.get_transport(transport), "copied out", "the reader copies each array", _CopyOut)
    wrapped.in_place = False  # what recv() returns is the reader's own
    return wrapped


def released_early(transport="shared_memory"):
    """``transport`` made safe only in lock-step: its receiver releases each array inside ``recv()``.

    For an in-place transport the sender may then write the next arrays over
    one the reader still holds: streamed, the check must report ``ok=False``;
    sent one at a time and waited for, it would pass.
    """
    return _Wrapped(arrays.get_transport(transport), "released early",
                    "the receiver releases each array inside recv(), before it is read", _ReleaseInsideRecv,
                    hold_one=True)


# --- latency: small messages there and back ---------------------------------------------------------

CHANNELS = {
    "queue": "an int to a child through one Queue, and back through another",
    "pipe": "a request to messages.PipeServer through a duplex Pipe, and its reply (ask() also watches the child)",
    "manager": "reading one key of a Manager dict proxy (a round trip to the server process)",
    "subprocess": "a line to child.LineChild's stdin, and its reply line from stdout",
}
STOP = None


def _echo_queue(requests, replies, timeout):
    """Child: put back every item that arrives, until STOP."""
    while True:
        item = requests.get(timeout=timeout)
        if item is STOP:
            return
        replies.put(item)


@contextlib.contextmanager
def _queue_round_trip(method, timeout):
    ctx = get_context(method)
    requests, replies = ctx.Queue(), ctx.Queue()
    echo = ctx.Process(target=_echo_queue, args=(requests, replies, timeout), name="queue-echo")
    echo.start()
    try:
        yield lambda: (requests.put(1), replies.get(timeout=timeout))
    finally:
        requests.put(STOP)
        stop_process(echo)
        for queue in (requests, replies):
            queue.close()
            queue.join_thread()


@contextlib.contextmanager
def _pipe_round_trip(method, timeout):
    with messages.PipeServer(method, timeout) as server:
        yield lambda: server.ask("square", 3)


@contextlib.contextmanager
def _manager_round_trip(method, timeout):
    with get_context(method).Manager() as manager:
        proxy = manager.dict(key=1)
        yield lambda: proxy["key"]


@contextlib.contextmanager
def _subprocess_round_trip(method, timeout):
    with LineChild(timeout=timeout) as child:  # subprocess.Popen: no start method
        yield lambda: child.ask("square 3")


_ROUND_TRIPS = {
    "queue": _queue_round_trip,
    "pipe": _pipe_round_trip,
    "manager": _manager_round_trip,
    "subprocess": _subprocess_round_trip,
}


def latency(channels=None, start_method=None, repeat=200, warmup=20, timeout=DEFAULT_TIMEOUT, progress=False):
    """Time ``repeat`` round trips of a small message through each channel (after ``warmup`` untimed ones).

    Each round trip is timed on its own, from this process; the peer (child,
    server or subprocess) is started before the first. Records: ``channel,
    what, start_method, repeat, seconds_min, seconds_median`` (``start_method``
    is None for the subprocess, which ``subprocess.Popen`` starts).
    """
    names = list(CHANNELS) if channels is None else list(channels)
    for name in names:
        if name not in CHANNELS:
            raise ValueError(f"unknown channel {name!r}; choose any of: {', '.join(CHANNELS)}")
    method = resolve_start_method(start_method)
    repeat = check_count(repeat, "repeat")
    warmup = check_count(warmup, "warmup", minimum=0)
    check_timeout(timeout)
    records = []
    with _progress(progress, len(names), "round trips") as bar:
        for name in names:
            bar.set_postfix_str(name)
            with _ROUND_TRIPS[name](method, timeout) as round_trip:
                seconds, _ = time_calls(round_trip, repeat, warmup)
            records.append({"channel": name, "what": CHANNELS[name],
                            "start_method": None if name == "subprocess" else method, **_summary(seconds)})
            bar.update()
    return records


def startup(start_methods=None, repeat=5, warmup=1, timeout=DEFAULT_TIMEOUT):
    """Seconds to start a child, run a function that returns at once, and have its result back, per start method."""
    methods = [resolve_start_method(m) for m in (start_methods or START_METHODS)]
    repeat = check_count(repeat, "repeat")
    warmup = check_count(warmup, "warmup", minimum=0)
    records = []
    for method in methods:
        seconds, _ = time_calls(
            lambda: run_in_child(faults.nap, start_method=method, timeout=timeout), repeat, warmup
        )
        records.append({"start_method": method, **_summary(seconds)})
    return records


# --- output -------------------------------------------------------------------------------------


def _format_seconds(seconds):
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def table(records):
    """The hand-off records as a text table: one block per size, fastest first, skipped ones last with their reason."""
    width = max([19] + [len(r["transport"]) for r in records])
    lines = [f"{'size':>9}  {'transport':<{width}} {'start':<10} {'min':>9} {'median':>9} {'GB/s':>8} {'x memcpy':>8}  ok"]
    for size in dict.fromkeys(r["nbytes"] for r in records):
        block = [r for r in records if r["nbytes"] == size]
        limit = next((r["gb_per_s"] for r in block if r["transport"] == MEMCPY), None)
        measured = sorted((r for r in block if "reason" not in r), key=lambda r: -r["gb_per_s"])
        for r in measured:
            ratio = f"{r['gb_per_s'] / limit:.2f}" if limit else "-"
            lines.append(
                f"{format_size(size):>9}  {r['transport']:<{width}} {r['start_method']:<10} "
                f"{_format_seconds(r['seconds_min']):>9} {_format_seconds(r['seconds_median']):>9} "
                f"{r['gb_per_s']:8.3g} {ratio:>8}  {'yes' if r['ok'] else 'NO'}"
            )
        for r in block:
            if "reason" in r:
                lines.append(f"{format_size(size):>9}  {r['transport']:<{width}} {r['start_method']:<10} skipped: {short_reason(r)}")
    frames = sorted({r["frames"] for r in records if "frames" in r and r["transport"] not in (MEMCPY, "fork_global")})
    if frames:
        burst = " or ".join(str(n) for n in frames)
        lines.append(f"Times per array, from bursts of {burst} sent without waiting, the reader holding each one.")
    lines.append("GB/s from the median; ok: every array received had the CRC-32 of the one sent.")
    if any(r["transport"] == "fork_global" and "reason" not in r for r in records):
        lines.append("fork_global: the time to fork a child that can read the array in place (it grows with the parent's memory).")
    in_place = [r["transport"] for r in records if r["transport"] in arrays.TRANSPORTS and "reason" not in r
                and arrays.TRANSPORTS[r["transport"]].in_place]
    for name in dict.fromkeys(in_place):
        lines.append(f"{name}: read in place, no copy by the reader; the others hand over an array the reader owns.")
    return "\n".join(lines)


def latency_table(records):
    """The latency records as a text table."""
    lines = [f"{'channel':<11} {'median':>9} {'min':>9}  round trip"]
    for r in records:
        lines.append(f"{r['channel']:<11} {_format_seconds(r['seconds_median']):>9} "
                     f"{_format_seconds(r['seconds_min']):>9}  {r['what']}")
    return "\n".join(lines)


def write_csv(records, path):
    """Write the measured hand-off records (memcpy included, skipped ones left out) as CSV with :data:`CSV_COLUMNS`."""
    rows = [r for r in records if "reason" not in r]
    with contextlib.ExitStack() as stack:
        out = path if hasattr(path, "write") else stack.enter_context(open(path, "w", newline="", encoding="utf-8"))
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow([
                r["transport"], r["start_method"], r["nbytes"], r["repeat"],
                f"{r['seconds_min']:.6g}", f"{r['seconds_median']:.6g}", f"{r['gb_per_s']:.6g}",
                "true" if r["ok"] else "false",
            ])
    return len(rows)
