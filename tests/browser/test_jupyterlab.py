"""Every lesson in JupyterLab in a real browser: it opens, runs, and its widgets respond.

nbval proves that cells run and outputs match; it cannot see a widget that fails
in the front end ("Error displaying widget", a view that stays "Loading widget...",
a panel that stops redrawing). This test drives Debian's chromium through
Playwright against a real `jupyter lab` (see conftest.py), and for each notebook:

1. opens it, waits until its kernel is idle and connected, clears the outputs,
   presses "Restart the kernel and run all cells" and confirms;
2. waits until the first cell shows [1] (pressing again if a cold kernel ran
   nothing), then until no cell is running and the kernel is idle;
3. fails on any error output (in cells and inside widget Outputs; a traceback a
   child process writes to stderr is not an error output) and on any widget that
   shows "Error displaying widget" (or ipywidgets 8's "Click to show javascript
   error.") or stays "Loading widget...";
4. moves the first slider of the first `live_panel` one step with the keyboard
   (then presses the panel's Run button, if it has one), and fails unless the
   slider's readout and the output below it both change, without an error;
5. saves a screenshot of the whole notebook, shuts its kernel down and closes it.
"""
import contextlib
import os
import time

import pytest
from browser_lab import REPO, SCREENSHOTS, VIEWPORT

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
RUN_TIMEOUT = float(os.environ.get("IPCKIT_BROWSER_RUN_TIMEOUT", 150))  # one notebook's Run All
WIDGET_TIMEOUT = 60  # a panel's redraw after its slider moves
MAX_SCREENSHOT_HEIGHT = 16_000
# Problems a reader meets that the notebook's author has to fix; each entry is checked:
# the test fails if the problem is gone, so the entry is removed with the fix.
KNOWN_ISSUES = {}  # notebook name -> the text of an error it is known to show (an xfail until fixed)

# JavaScript run in the page; `jupyterapp` is exposed by --LabApp.expose_app_in_browser.
FIND_PANEL = """
const findPanel = (path) => {
  for (const w of window.jupyterapp.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.sessionContext) return w;
  }
  return null;
};
"""
STATE_JS = FIND_PANEL + """
(path) => {
  const panel = findPanel(path);
  if (!panel || !panel.context.isReady) return null;
  const session = panel.sessionContext.session;
  const kernel = session ? session.kernel : null;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  return {
    kernelId: kernel ? kernel.id : null,
    kernelStatus: kernel ? kernel.status : null,
    counts: cells.map(c => c.model.executionCount),
    running: cells.filter(c => c.model.executionState === 'running').length,
  };
}
"""
# Every output area reachable from the cells, including the ones inside widgets (an ipywidgets
# Output is a JupyterLab OutputArea inside the widget's view). In the DOM an error and a stderr
# stream look alike (both application/vnd.jupyter.stderr); the models tell them apart.
OUTPUTS_JS = FIND_PANEL + """
(path) => {
  const WIDGET = 'application/vnd.jupyter.widget-view+json';
  const panel = findPanel(path);
  const found = [];
  const walk = (widget, cell, inWidget) => {
    const node = widget.node;
    if (node && node.classList.contains('jp-OutputArea') && widget.model && widget.model.toJSON) {
      for (const o of widget.model.toJSON()) {
        found.push({cell, inWidget, type: o.output_type,
                    error: o.output_type === 'error' ? `${o.ename}: ${o.evalue}` : null,
                    widget: !inWidget && !!(o.data && (o.data[WIDGET] || {}).model_id)});
      }
    }
    const nowInWidget = inWidget || (node && node.classList.contains('jupyter-widgets'));
    for (const child of widget.children()) walk(child, cell, nowInWidget);
  };
  // Without the ipywidgets front-end extension a widget output falls back to its text/plain ("VBox(...)")
  let rendered = 0;
  panel.content.widgets.forEach((cell, i) => {
    if (cell.model.type !== 'code') return;
    walk(cell.outputArea, i + 1, false);
    for (const node of cell.outputArea.node.querySelectorAll(':scope > .jp-OutputArea-child > .jp-OutputArea-output')) {
      if (node.classList.contains('jupyter-widgets') || node.querySelector('.jupyter-widgets')) rendered++;
    }
  });
  const broken = [];
  for (const node of panel.node.querySelectorAll('.jp-OutputArea-output')) {
    const text = (node.textContent || '').trim();
    if (text.startsWith('Error displaying widget') || text === 'Loading widget...') broken.push(text.slice(0, 120));
  }
  // ipywidgets 8 shows a view it cannot create as "Click to show javascript error."; a click reveals why
  for (const node of panel.node.querySelectorAll('.jupyter-widgets-error-widget')) {
    if (node.classList.contains('icon-error') && node.parentElement) node.parentElement.click();
    const lines = (node.textContent || '').split('\\n').map(s => s.trim())
      .filter(s => s && !s.startsWith('[Open Browser Console'));
    broken.push(`Error displaying widget (javascript error): ${(lines[0] || '').slice(0, 200)}`);
  }
  const widgets = found.filter(o => o.widget).length;
  if (rendered < widgets) broken.push(`${widgets - rendered} of ${widgets} widget outputs shown as plain text: ` +
                                      'is the ipywidgets front-end extension (jupyterlab_widgets) missing?');
  return {outputs: found, broken, widgets};
}
"""
CLOSE_JS = FIND_PANEL + """
async (path) => {
  const panel = findPanel(path);
  if (!panel) return;
  panel.context.model.dirty = false;  // autosave is off; nothing is written back
  await panel.sessionContext.shutdown();
  panel.dispose();
}
"""
CLEAN_UP_JS = """
() => {
  for (const dialog of document.querySelectorAll('.jp-Dialog')) dialog.remove();
  for (const w of Array.from(window.jupyterapp.shell.widgets('main'))) w.dispose();
}
"""
# A fingerprint of what an Output shows: each image's data (hashed) and each text.
SIGNATURE_JS = """
(el) => {
  const hash = (s) => {  // FNV-1a
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
    return (h >>> 0).toString(16);
  };
  return Array.from(el.querySelectorAll('.jp-OutputArea-output')).map(o => {
    const img = o.querySelector('img');
    return img ? `image ${hash(img.src)}` : `text ${hash(o.textContent)}`;
  }).join(' | ');
}
"""

# The window height that shows the whole notebook, from the top of the page to the end of its last cell.
SCREEN_HEIGHT_JS = """
() => {
  const outer = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
  const cells = outer ? outer.querySelectorAll('.jp-Cell') : [];
  if (!cells.length) return 0;
  outer.scrollTop = 0;
  const bottom = cells[cells.length - 1].getBoundingClientRect().bottom;
  return Math.ceil(bottom + (window.innerHeight - outer.getBoundingClientRect().bottom) + 40);
}
"""


def _count(number, noun):
    return f"{number} {noun}{'s' * (number != 1)}"


def _wait(what, predicate, timeout, interval=0.25):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Notebook:
    """One notebook open in JupyterLab."""

    def __init__(self, lab, page, path):
        self.lab, self.page, self.path = lab, page, path

    def state(self):
        return self.page.evaluate(STATE_JS, self.path)

    def outputs(self):
        return self.page.evaluate(OUTPUTS_JS, self.path)

    def kernel_ready(self):
        """The kernel is idle on the server and the page is connected to it (the cold-start guard)."""
        state = self.state()
        if not state or not state["kernelId"] or state["kernelStatus"] != "idle":
            return False
        model = self.lab.kernel(state["kernelId"])
        return bool(model and model["execution_state"] == "idle" and model["connections"] > 0)

    def finished(self):
        state = self.state()
        return state if state and not state["running"] and state["kernelStatus"] == "idle" else None

    def restart_and_run_all(self):
        """Clear the outputs, then Restart Kernel and Run All from the toolbar; return how many retries it took."""
        page = self.page
        page.evaluate("jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        for attempt in range(3):
            page.locator('.jp-NotebookPanel [data-command="notebook:restart-run-all"]').first.click()
            page.locator(".jp-Dialog .jp-mod-accept").click(timeout=10_000)  # "Restart Kernel?" -> Restart
            try:
                _wait("the first cell to show [1]", lambda: (self.state() or {}).get("counts", [None])[0] == 1, 30)
                return attempt
            except AssertionError:  # a cold kernel can run nothing: press again
                _wait("the kernel to be idle and connected", self.kernel_ready, 30)
        raise AssertionError("Restart Kernel and Run All never ran the first cell (3 attempts)")


def _move_first_slider(nb):
    """Move the first slider of the first live_panel one step; check its readout and output both change."""
    panels = nb.page.locator(".jp-NotebookPanel .widget-vbox:has(.widget-slider):has(.widget-output)")
    if panels.count() == 0:
        return "no slider panel"
    panel = panels.first
    slider = panel.locator(".widget-slider").first
    handle = slider.locator(".noUi-handle").first
    readout = slider.locator(".widget-readout").first
    output = panel.locator(".widget-output").first
    buttons = panel.locator(".widget-button")
    panel.scroll_into_view_if_needed()
    # JupyterLab renders cells lazily as they scroll into view: wait until the panel is drawn,
    # or an empty "before" would make any later state look like a change
    _wait("the panel's slider and output to be drawn",
          lambda: readout.inner_text().strip() and output.evaluate(SIGNATURE_JS), WIDGET_TIMEOUT)
    label = slider.locator(".widget-label").first.inner_text().strip()
    before_value, before_output = readout.inner_text().strip(), output.evaluate(SIGNATURE_JS)
    at_max = float(handle.get_attribute("aria-valuenow")) >= float(handle.get_attribute("aria-valuemax"))
    start = time.monotonic()
    handle.focus()
    handle.press("ArrowLeft" if at_max else "ArrowRight")
    after_value = _wait(f"the readout of slider '{label}' to change from {before_value}",
                        lambda: (value := readout.inner_text().strip()) != before_value and value, 10)
    move = f"slider '{label}' {before_value} -> {after_value}"
    if buttons.count():
        buttons.first.click()
    _wait(f"the output below {move} to change", lambda: output.evaluate(SIGNATURE_JS) != before_output,
          WIDGET_TIMEOUT)
    _wait(f"the kernel to finish the redraw after {move}", nb.finished, WIDGET_TIMEOUT)
    seconds = time.monotonic() - start
    after_output = output.evaluate(SIGNATURE_JS)
    errors = [o["error"] for o in nb.outputs()["outputs"] if o["inWidget"] and o["error"]]
    assert not errors, f"{move}: the panel shows an error: {errors}"
    assert after_output and after_output != before_output, f"{move}: the output changed back or is empty"
    kinds = "/".join(sorted({part.split()[0] for part in after_output.split(" | ")}))
    return f"{move}, {kinds} output changed in {seconds:.1f} s" + (" (Run button)" if buttons.count() else "")


def _screenshot(page, name):
    """The whole notebook in one picture: the viewport is made as tall as the notebook, then restored."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    try:
        height = page.evaluate(SCREEN_HEIGHT_JS)
        page.set_viewport_size({"width": VIEWPORT["width"],
                                "height": min(max(height, VIEWPORT["height"]), MAX_SCREENSHOT_HEIGHT)})
        page.wait_for_timeout(500)  # let JupyterLab lay out the taller window
        page.screenshot(path=str(path))
        return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
    except Exception as exc:  # a screenshot must never hide the real failure
        return f"(no screenshot: {exc})"
    finally:
        page.set_viewport_size(VIEWPORT)


@pytest.mark.timeout(RUN_TIMEOUT + 2 * WIDGET_TIMEOUT + 90)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_in_jupyterlab(notebook, lab, lab_page, record_property):
    page, path = lab_page, notebook.relative_to(REPO).as_posix()
    nb = Notebook(lab, page, path)
    known = set(lab.descendants())  # whatever this notebook's kernel starts must be gone at the end
    console_errors = []

    def on_console(msg):
        if msg.type == "error":
            console_errors.append(msg.text[:300])

    page.on("console", on_console)
    summary = f"{notebook.name}: did not open"
    start = time.monotonic()
    try:
        page.evaluate(CLEAN_UP_JS)  # whatever an earlier test may have left open
        page.evaluate("path => jupyterapp.commands.execute('docmanager:open', {path})", path)
        _wait(f"{path} to open with an idle, connected kernel", nb.kernel_ready, 60)
        opened = time.monotonic()
        retries = nb.restart_and_run_all()
        state = _wait(f"Run All of {path} to finish", nb.finished, RUN_TIMEOUT)
        ran_at = time.monotonic()
        deadline = ran_at + 10  # a widget may show "Loading widget..." for a moment after its cell ran
        while True:
            report = nb.outputs()
            if "Loading widget..." not in report["broken"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        ran = sum(count is not None for count in state["counts"])
        errors = [f"cell {o['cell']}: {o['error']}" for o in report["outputs"] if o["error"]]
        summary = (f"{notebook.name}: {ran}/{len(state['counts'])} code cells ran, {_count(len(errors), 'error')}, "
                   f"{_count(report['widgets'], 'widget')} (open {opened - start:.1f} s, "
                   f"run {ran_at - opened:.1f} s{', Run All pressed again' * bool(retries)})")
        assert not errors, f"{summary}; error outputs: {errors}"
        assert ran == len(state["counts"]), f"{summary}; some cells did not run"
        assert not report["broken"], f"{summary}; broken widgets: {report['broken']}"
        try:
            summary += "; " + _move_first_slider(nb)
        except AssertionError as exc:
            issue = KNOWN_ISSUES.get(notebook.name)
            if issue and issue in str(exc):
                summary += f"; known issue: {issue}"
                pytest.xfail(f"known issue in {notebook.name}: {exc}")
            raise
        assert notebook.name not in KNOWN_ISSUES, (
            f"{summary}; the known issue {KNOWN_ISSUES.get(notebook.name)!r} no longer occurs: "
            "remove it from KNOWN_ISSUES")
    except Exception as exc:
        if console_errors:
            exc.add_note("browser console errors:\n  " + "\n  ".join(console_errors[-10:]))
        exc.add_note(f"screenshot: {SCREENSHOTS / (notebook.stem + '.png')}; server log: {lab.log_path}")
        raise
    finally:  # nothing here may raise and hide the real failure; the leak guard judges what is left
        shot = _screenshot(page, notebook.stem)
        with contextlib.suppress(Exception):
            page.evaluate(CLOSE_JS, path)
        with contextlib.suppress(Exception):
            for kernel in lab.api("/api/kernels"):  # the REST API makes sure, whatever the page did
                lab.shutdown_kernel(kernel["id"])
        with contextlib.suppress(AssertionError):
            _wait("the kernel and its child processes to exit", lambda: not set(lab.descendants()) - known, 20)
        page.remove_listener("console", on_console)
        summary += f"; {time.monotonic() - start:.1f} s in all; screenshot {shot}"
        record_property("browser", summary)
