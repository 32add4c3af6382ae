"""The browser tests' JupyterLab server and browser page, and one summary line per notebook at the end of the run.

Both are started by the first browser test (the rest of the suite pays nothing
when the browser test is deselected) and stopped after the last one, on every
path. Being module-scoped, they exist before each test's leak guard looks, so
the guard sees only what a test starts: the notebook's kernel and its children,
which each test shuts down.
"""

import pytest
from browser_lab import SCREENSHOTS, VIEWPORT, require_browser, running_chromium, running_lab, sigterm_as_interrupt


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One `jupyter lab` for the browser tests, rooted at a temporary copy of the repository."""
    require_browser()
    with sigterm_as_interrupt(), running_lab(tmp_path_factory.mktemp("jupyterlab")) as server:
        yield server


@pytest.fixture(scope="module")
def lab_page(lab, tmp_path_factory):
    """Headless chromium with JupyterLab loaded once; each test opens its notebook in a new tab."""
    from playwright.sync_api import sync_playwright

    with running_chromium(tmp_path_factory.mktemp("chromium")) as cdp_url, sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(cdp_url, timeout=30_000)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{lab.base_url}/lab/workspaces/browser-test?reset")
        page.wait_for_function("window.jupyterapp && document.querySelector('#jp-main-dock-panel')", timeout=60_000)
        page.evaluate("jupyterapp.shell.collapseLeft()")
        yield page
        browser.close()


# Printed whatever `-s` says, so that CI's log shows every notebook.
_lines = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        outcome = "XFAIL" if hasattr(report, "wasxfail") else report.outcome.upper()
        _lines.extend(f"{outcome:7} {value}" for name, value in report.user_properties if name == "browser")


def pytest_terminal_summary(terminalreporter):
    if _lines:
        terminalreporter.section("JupyterLab in chromium: every notebook")
        for line in _lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"screenshots in {SCREENSHOTS}")
