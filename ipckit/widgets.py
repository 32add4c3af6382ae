"""ipywidgets panels: controls on top, an output area below that redraws on every change.

The panel calls ``update(**values)`` once when it is built and again whenever a
control changes (or, with ``run_button=True``, when the button is pressed, for
measurements that take a while). ``update`` prints or draws; a matplotlib figure
it creates is shown and closed for it.
"""
import multiprocessing

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from . import bench, plots
from .context import START_METHODS, resolve_start_method
from .transports import TRANSPORTS


def _draw(out, update, values):
    out.clear_output(wait=True)
    with out:
        try:
            update(**values)
            for number in plt.get_fignums():
                display(plt.figure(number))
        finally:
            plt.close("all")


def live_panel(update, controls, run_button=False, run_now=True):
    """Return a VBox of ``controls`` (a dict name -> widget) and an Output redrawn by ``update``."""
    if not callable(update):
        raise TypeError(f"update must be a function taking the controls' values, not {type(update).__name__}")
    if not controls or not all(isinstance(c, widgets.ValueWidget) for c in controls.values()):
        raise TypeError("controls must be a non-empty dict of name -> ipywidgets value widget (slider, dropdown...)")
    out = widgets.Output()
    status = widgets.Label()

    def redraw(_change=None):
        values = {name: control.value for name, control in controls.items()}
        status.value = "running..."
        try:
            _draw(out, update, values)
        finally:
            status.value = ""

    rows = [widgets.HBox(list(controls.values()))]
    if run_button:
        button = widgets.Button(description="Run", button_style="primary", icon="play")
        button.on_click(redraw)
        rows.append(widgets.HBox([button, status]))
    else:
        for control in controls.values():
            control.observe(redraw, names="value")
    if run_now:
        redraw()
    return widgets.VBox(rows + [out])


def bench_panel(sizes=None, size=None, transports=None, start_method=None, run_now=True):
    """The timing panel: an array-size slider, a transport multi-select, a start-method dropdown and a Run button.

    Pressing Run measures the chosen transports (and memcpy) at that size with
    :func:`ipckit.plots.show_bench`: a progress bar while it runs, then the chart.
    """
    sizes = bench.parse_sizes(sizes) if sizes is not None else [2**k for k in range(12, 29, 2)]  # 4 KiB .. 256 MiB
    size = bench.parse_size(size) if size is not None else min(sizes, key=lambda n: abs(n - 2**20))
    if size not in sizes:
        raise ValueError(f"size {size} must be one of the slider's sizes {sizes}")
    controls = {
        "nbytes": widgets.SelectionSlider(
            options=[(bench.format_size(n), n) for n in sizes], value=size, description="array size",
            continuous_update=False,
        ),
        "transports": widgets.SelectMultiple(
            options=list(TRANSPORTS), value=tuple(bench.transport_names(transports)),
            rows=len(TRANSPORTS), description="transports",
        ),
        "start_method": widgets.Dropdown(
            options=[m for m in START_METHODS if m in multiprocessing.get_all_start_methods()],
            value=resolve_start_method(start_method), description="start method",
        ),
    }
    return live_panel(plots.show_bench, controls, run_button=True, run_now=run_now)
