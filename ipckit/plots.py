"""Matplotlib figures for the lessons: one function per chart, each returning its Figure."""
import matplotlib.pyplot as plt


def plot_lanes(runs, title="Who ran when"):
    """One panel per run: a horizontal bar per worker from its start to its end.

    ``runs`` maps a label to ``{"wall_s": float, "intervals": [(start, end), ...]}``
    with times in seconds from the run's start (see ``basics.threads_vs_processes``).
    """
    fig, axes = plt.subplots(len(runs), 1, sharex=True, figsize=(7, 1 + 0.9 * len(runs)), squeeze=False)
    for ax, (label, run) in zip(axes[:, 0], runs.items()):
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


def plot_bars(values, title, xlabel, fmt="{:.3g}"):
    """A labelled horizontal bar chart of ``values`` (a dict label -> number)."""
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(values)))
    labels = list(values)
    ax.barh(labels, [values[k] for k in labels], color=[f"C{i}" for i in range(len(labels))])
    for i, label in enumerate(labels):
        ax.annotate(fmt.format(values[label]), (values[label], i), xytext=(3, 0), textcoords="offset points", va="center")
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.margins(x=0.15)
    fig.tight_layout()
    return fig
