"""ipywidgets panels: controls on top, an output area below that redraws on every change.

The panel calls ``update(**values)`` once when it is built and again whenever a
control changes (or, with ``run_button=True``, when the button is pressed, for
measurements that take a while). ``update`` prints or draws; a matplotlib figure
it creates is shown and closed for it.
"""
import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display


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
