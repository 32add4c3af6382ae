"""Matplotlib figures for the lessons: one function per chart, each returning its Figure.

The ``show_*`` functions measure, then draw: they are the ``update`` functions
that :func:`ipckit.widgets.live_panel` calls when a slider moves.
"""
import colorsys

import matplotlib.pyplot as plt

from . import bench
from .transports import TRANSPORTS

MiB = bench.MiB


def _axes(ax, width=7, height=3.5):
    if ax is None:
        _, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return ax


def _label(name):
    """A transport's name, marked when its reader gets the array in place (no copy) instead of one it owns."""
    transport = TRANSPORTS.get(name)
    if transport is not None and transport.in_place:
        return f"{name} (in place)"
    if name == "fork_global":
        return f"{name} (inherited)"
    return name


def _bursts(records):
    """ ", per array in bursts of N" when the records streamed bursts (fork_global and memcpy aside)."""
    frames = {r.get("frames", 1) for r in records if r["transport"] not in (bench.MEMCPY, "fork_global")}
    return f", per array in bursts of {max(frames)}" if frames and max(frames) > 1 else ""


def plot_transport_speeds(records, ax=None):
    """Horizontal bars: GB/s of each transport's one-way hand-off at one size.

    Takes the records of :func:`ipckit.bench.measure` at one size; the
    ``memcpy`` record is drawn as a dashed line: the limit for a transport that copies once.
    """
    reference = [r for r in records if r["transport"] == bench.MEMCPY]
    records = [r for r in records if r["transport"] != bench.MEMCPY]
    measured = sorted((r for r in records if "reason" not in r), key=lambda r: r["gb_per_s"])
    skipped = [r for r in records if "reason" in r]
    rows = skipped + measured  # skipped ones at the bottom, with their reason instead of a bar
    ax = _axes(ax, height=1.0 + 0.32 * max(len(rows), 1))
    ax.barh([_label(r["transport"]) for r in rows], [r.get("gb_per_s", 0) for r in rows],
            color=["tab:orange" if r["transport"] == "fork_global" else "tab:blue" for r in rows])
    label = ax.get_yaxis_transform()  # x in axes fraction, y in rows
    for y, record in enumerate(rows):
        if "reason" in record:
            ax.text(0.01, y, "skipped: " + record["reason"], transform=label, va="center", fontsize=8, color="gray")
        else:
            ax.annotate(f" {record['seconds_median'] * 1e3:.3g} ms", (record["gb_per_s"], y), va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"GB/s, median one-way hand-off{_bursts(measured)} (log scale)")
    first = rows[0] if rows else None
    if first:
        kind = "float64 array" if first["nbytes"] % 8 == 0 else "array"
        ax.set_title(f"{bench.format_size(first['nbytes'])} {kind}, parent -> child, "
                     f"start method {first['start_method']}")
    speeds = [r["gb_per_s"] for r in measured + reference]
    if speeds:
        ax.set_xlim(min(speeds) / 3, max(speeds) * 8)
    for record in reference:
        ax.axvline(record["gb_per_s"], color="black", linestyle="--", linewidth=1)
        ax.text(record["gb_per_s"], 0.99, " memcpy", transform=ax.get_xaxis_transform(), fontsize=8, va="top")
    if any(r["transport"] == "fork_global" for r in measured):
        ax.text(0.99, 0.02, "fork_global (orange): the time to fork a child that can read it",
                transform=ax.transAxes, fontsize=7, ha="right", va="bottom")
    return ax.figure


def show_transport_speeds(size_mib=4, start_method=None, repeat=3, frames=bench.DEFAULT_FRAMES):
    """Measure every transport and memcpy on a ``size_mib`` MiB array (bursts of ``frames``), then draw them.

    ``shared_memory`` copied out by its reader is measured too, to set beside the transports whose reader gets a copy.
    """
    transports = [*TRANSPORTS, bench.copied_out("shared_memory")]
    records = bench.measure([int(size_mib * MiB)], transports, start_method, repeat, frames=frames)
    plot_transport_speeds(records)
    return records


def show_bench(nbytes=MiB, transports=None, start_method=None, repeat=3):
    """Measure the chosen transports and memcpy at ``nbytes`` (a progress bar while it runs), then draw the bars.

    The update function of :func:`ipckit.widgets.bench_panel`; returns the records.
    """
    if transports is not None and not transports:
        print("Choose at least one transport.")
        return []
    records = bench.measure([nbytes], transports, start_method, repeat, progress=True)
    plot_transport_speeds(records)
    print("all received copies checked out:", bench.all_ok(records))
    return records


def _transport_colour(name):
    """One colour per transport across charts (memcpy black)."""
    if name == bench.MEMCPY:
        return "black"
    names = list(TRANSPORTS)
    base = name.split(" (")[0]  # a wrapped transport, such as "shared_memory (copied out)", takes its base's colour
    return f"C{names.index(base) % 10}" if base in names else "gray"


def plot_bandwidth(records, ax=None):
    """GB/s against array size, log-log: a line per transport, memcpy dashed (records from bench.measure)."""
    ax = _axes(ax, width=8.5, height=4.8)
    sizes = sorted({r["nbytes"] for r in records})
    missing = []
    for name in dict.fromkeys(r["transport"] for r in records):
        points = sorted((r["nbytes"], r["gb_per_s"]) for r in records if r["transport"] == name and "gb_per_s" in r)
        for reason in dict.fromkeys(r["reason"] for r in records if r["transport"] == name and "reason" in r):
            where = [r["nbytes"] for r in records if r["transport"] == name and r.get("reason") == reason]
            at = "any size" if len(where) == len(sizes) else ", ".join(bench.format_size(n) for n in sorted(where))
            missing.append(f"{name} at {at} ({reason})")
        if not points:
            continue
        style = {"color": _transport_colour(name), "marker": "o", "markersize": 4, "linewidth": 1.5}
        if name == bench.MEMCPY:
            style.update(linestyle="--", linewidth=2.5, marker=None)
        elif name == "fork_global":
            style.update(linestyle=":")
        elif name not in TRANSPORTS:  # a wrapped transport: its base's colour, dashed
            style.update(linestyle="--", marker="s")
        ax.plot(*zip(*points, strict=True), label=_label(name), **style)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [bench.format_size(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("array size")
    ax.set_ylabel("GB/s from the median hand-off (log)")
    methods = ", ".join(sorted({r["start_method"] for r in records if r["transport"] != bench.MEMCPY}))
    ax.set_title(f"One-way hand-off{_bursts(records)}, parent -> child (start method {methods}); "
                 "dashed: memcpy in one process")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    if missing:
        ax.text(0.0, -0.14, "not measured: " + "; ".join(missing), transform=ax.transAxes,
                fontsize=7, color="0.3", va="top", wrap=True)
    return ax.figure


def plot_start_methods(records, ax=None):
    """GB/s per transport at one size, one bar per start method side by side (records of bench.measure runs)."""
    records = [r for r in records if r["transport"] != bench.MEMCPY]
    methods = list(dict.fromkeys(r["start_method"] for r in records))
    names = list(dict.fromkeys(r["transport"] for r in records))
    ax = _axes(ax, height=1.2 + 0.45 * max(len(names), 1))
    height = 0.8 / max(len(methods), 1)
    label = ax.get_yaxis_transform()
    for j, method in enumerate(methods):
        for i, name in enumerate(names):
            y = i + (j - (len(methods) - 1) / 2) * height
            for r in records:
                if r["transport"] != name or r["start_method"] != method:
                    continue
                if "reason" in r:
                    ax.text(0.01, y, f"{method}: skipped", transform=label, va="center", fontsize=7, color="gray")
                else:
                    ax.barh(y, r["gb_per_s"], height=height, color=f"C{j}", label=method)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one legend entry per start method
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_yticks(range(len(names)), [_label(name) for name in names])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("GB/s from the median hand-off (log scale)")
    sizes = sorted({r["nbytes"] for r in records})
    ax.set_title(f"{', '.join(bench.format_size(n) for n in sizes)}: the same transports under each start method")
    return ax.figure


def plot_latency(records):
    """Bars: microseconds per round trip of a small message, per channel (records from bench.latency)."""
    methods = sorted({r["start_method"] for r in records if r["start_method"]})
    return plot_bars(
        {r["channel"]: r["seconds_median"] * 1e6 for r in records},
        f"A small message there and back (start method {', '.join(methods)})",
        "microseconds per round trip (median)",
        fmt="{:.0f} µs",
    )


def plot_fresh_vs_reused(records, ax=None):
    """Two bars: milliseconds to copy one array into a fresh block, and into a reused slot (bench.fresh_vs_reused)."""
    ax = _axes(ax, width=6, height=2.4)
    ax.barh([r["way"] for r in records], [r["seconds_median"] * 1e3 for r in records],
            color=["tab:red" if r["way"] == bench.FRESH else "tab:green" for r in records])
    for y, r in enumerate(records):
        ax.annotate(f" {r['gb_per_s']:.2g} GB/s, {r['page_faults']:,} page faults", (r["seconds_median"] * 1e3, y),
                    va="center", fontsize=8)
    ax.set_xlabel("milliseconds per array (median of the repeats)")
    ax.set_xlim(right=max(r["seconds_median"] for r in records) * 1e3 * 1.9)
    first = records[0]
    ax.set_title(f"Copying {bench.format_size(first['nbytes'])} into shared memory ({first['pages']:,} pages)")
    return ax.figure


def show_fresh_vs_reused(size_mib=8, repeat=5):
    """Measure :func:`ipckit.bench.fresh_vs_reused` at ``size_mib`` MiB and draw it."""
    records = bench.fresh_vs_reused(int(size_mib * MiB), repeat)
    plot_fresh_vs_reused(records)
    return records


def plot_lanes(runs, title="Who ran when"):
    """One panel per run: a horizontal bar per worker from its start to its end.

    ``runs`` maps a label to ``{"wall_s": float, "intervals": [(start, end), ...]}``
    with times in seconds from the run's start (see ``ipckit.lessons.start.race``).
    """
    fig, axes = plt.subplots(len(runs), 1, sharex=True, figsize=(7, 1 + 0.9 * len(runs)), squeeze=False)
    for ax, (label, run) in zip(axes[:, 0], runs.items(), strict=True):
        for lane, (start, end) in enumerate(run["intervals"]):
            ax.barh(lane, end - start, left=start, height=0.6, color=f"C{lane}")
        ax.axvline(run["wall_s"], color="black", linewidth=1, linestyle="--")
        ax.set_yticks(range(len(run["intervals"])), [f"worker {i}" for i in range(len(run["intervals"]))])
        ax.set_ylim(-0.6, max(len(run["intervals"]), 2) - 0.4)
        ax.set_title(f"{label}: {run['wall_s']:.2f} s in all", loc="left", fontsize=10)
    axes[-1, 0].set_xlabel("seconds since the start (dashed line: all done)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _number(value):
    """A bar's label: whole numbers in full (40,000), others to three figures (0.0123)."""
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:,.3g}"


def plot_bars(values, title, xlabel, fmt=None):
    """A labelled horizontal bar chart of ``values`` (a dict label -> number); ``fmt`` formats the labels."""
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * len(values)))
    labels = list(values)
    ax.barh(labels, [values[k] for k in labels], color=[f"C{i}" for i in range(len(labels))])
    for i, label in enumerate(labels):
        text = fmt.format(values[label]) if fmt else _number(values[label])
        ax.annotate(text, (values[label], i), xytext=(3, 0), textcoords="offset points", va="center")
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.margins(x=0.15)
    fig.tight_layout()
    return fig


GOLDEN_TURN = (3 - 5**0.5) / 2  # the golden angle as a share of a full turn of hue (about 137.5 degrees)


def _item_colour(seq):
    """The colour of item ``seq``: its hue turns by the golden angle from item to item, so it never cycles."""
    return colorsys.hsv_to_rgb((seq * GOLDEN_TURN) % 1.0, 0.7, 0.85)


def _label_colour(rgb):
    """Black text on a light colour, white on a dark one."""
    red, green, blue = rgb
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.6 else "white"


def plot_timeline(timeline, title="Ordered pipeline: who did what, when"):
    """A Gantt-style chart of a pipeline run: one lane per process, buffer depth underneath.

    Producer: a dot per item produced, a grey bar while it waited for room to
    send it. Main: a bar per item waiting in the buffer, a tick per result
    emitted. Consumers: a bar per item from start to finish, labelled with its
    number. Colours follow the item number, so one item can be traced across
    lanes: hues a golden angle apart, so neighbouring items always differ and
    the colours never repeat in a cycle.
    """
    lanes = timeline.processes()
    row = {name: i for i, name in enumerate(reversed(lanes))}
    fig, (ax, depth_ax) = plt.subplots(
        2, 1, sharex=True, figsize=(9, 1.2 + 0.55 * len(lanes) + 1.4), gridspec_kw={"height_ratios": [len(lanes), 1.4]}
    )
    by_seq = {}
    for event in timeline.events:
        by_seq.setdefault(event.seq, {})[(event.process, event.event)] = event.time
    colour = _item_colour
    for seq, times in sorted(by_seq.items()):
        produced, sent = times.get(("producer", "produced")), times.get(("producer", "sent"))
        if produced is not None:
            ax.plot(produced, row["producer"], "o", color=colour(seq), markersize=4)
            if sent is not None and sent - produced > 1e-3:
                ax.barh(row["producer"], sent - produced, left=produced, height=0.3, color="0.75")
        buffered, handed = times.get(("main", "buffered")), times.get(("main", "handed"))
        if buffered is not None and handed is not None:  # stagger the waits so overlapping ones stay visible
            y = row["main"] + 0.2 - (seq % 6) * 0.08
            ax.plot([buffered, handed], [y, y], color=colour(seq), linewidth=2.5, solid_capstyle="butt")
        emitted = times.get(("main", "emitted"))
        if emitted is not None:
            ax.plot(emitted, row["main"] + 0.3, "v", color=colour(seq), markersize=5)
        for name in lanes:
            start, end = times.get((name, "started")), times.get((name, "finished"))
            if start is not None and end is not None:
                ax.barh(row[name], end - start, left=start, height=0.6, color=colour(seq))
                ax.text((start + end) / 2, row[name], str(seq), ha="center", va="center", fontsize=7,
                        color=_label_colour(colour(seq)))
    ax.set_yticks(list(row.values()), list(row.keys()))
    ax.set_title(title)
    ax.text(
        0.0, -0.02, "producer: o produced, grey = waiting for room | main: line = in buffer, v = emitted | "
        "consumers: bar = working on item n", transform=ax.transAxes, va="top", fontsize=7, color="0.3",
    )
    times, depths = zip(*timeline.depth, strict=True) if timeline.depth else ((0,), (0,))
    end = max([e.time for e in timeline.events] + [times[-1]])
    depth_ax.step(list(times) + [end], list(depths) + [depths[-1]], where="post", color="C3")
    depth_ax.fill_between(list(times) + [end], list(depths) + [depths[-1]], step="post", color="C3", alpha=0.2)
    depth_ax.set_ylabel("buffer")
    first = min((e.time for e in timeline.events), default=0.0)
    depth_ax.set_xlim(max(0.0, first - 0.05), end + 0.05)  # skip the children's start-up
    depth_ax.set_xlabel(f"seconds since the pipeline started (the children took {first:.2f} s to start)")
    depth_ax.set_ylim(bottom=0)
    fig.tight_layout()
    return fig
