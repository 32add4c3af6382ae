"""A `jupyter lab` server for the browser test, and the chromium it drives.

The server listens on 127.0.0.1 on a free port without a token, is rooted at a
temporary copy of the repository (running the notebooks never rewrites the
committed ones; autosave is off as well), and is stopped by its PID, along with
anything it started, on every path. Chromium (Debian's, never a Playwright
download) runs headless outside pytest's process tree and is stopped through
its process group.
"""
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("IPCKIT_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("IPCKIT_SCREENSHOTS", REPO / "tests" / "browser" / "screenshots"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # as Playwright launches it: no first-run work, no throttling of a page that is not in front
    "--no-first-run", "--no-default-browser-check", "--disable-default-apps", "--disable-extensions",
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows", "--password-store=basic", "--mute-audio",
    "--disable-features=OptimizationHints,Translate,MediaRouter",
]
CHROMIUM_START_TIMEOUT = 30
# Starts chromium in a new session and exits at once, so chromium is no descendant of pytest;
# leaves a watchdog that kills chromium's process group if pytest dies without stopping it.
LAUNCHER = """
import os, signal, subprocess, sys, time
owner, log_path, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
with open(log_path, "ab") as log:
    pid = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True).pid
print(pid, flush=True)
if os.fork():
    os._exit(0)
devnull = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(devnull, fd)

def alive(p):
    try:
        os.kill(p, 0)
        return True
    except ProcessLookupError:
        return False

while alive(pid):
    if not alive(owner):
        os.killpg(pid, signal.SIGKILL)
        break
    time.sleep(1)
"""
VIEWPORT = {"width": 1280, "height": 1000}
INSTALL_HINT = "apt-get install -y chromium && pip install playwright (never `playwright install`)"
SERVER_START_TIMEOUT = 60
# Not copied into the server's root: version control, environments, caches, earlier screenshots.
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", "*.egg-info", "screenshots"
)
# User settings for the test server: no news pop-up, nothing saved behind the test's back.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_browser():
    """Skip (on a developer's machine) or fail (under CI=true) when chromium or playwright is missing."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"no chromium at {CHROMIUM} (set IPCKIT_CHROMIUM to use another)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package is not installed")
    if missing:
        reason = "browser test needs a browser: " + "; ".join(missing) + f". Install: {INSTALL_HINT}"
        if in_ci():
            pytest.fail(reason + " (CI=true: a missing browser is a failure, not a skip)", pytrace=False)
        pytest.skip(reason)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A running `jupyter lab`: its base URL, root folder, log file and process."""

    def __init__(self, proc, base_url, root, log_path):
        self.proc, self.base_url, self.root, self.log_path = proc, base_url, root, log_path

    def api(self, path, method="GET"):
        request = urllib.request.Request(self.base_url + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel(self, kernel_id):
        """The server's view of one kernel (execution_state, connections), or None."""
        try:
            return self.api(f"/api/kernels/{kernel_id}")
        except urllib.error.HTTPError:
            return None

    def shutdown_kernel(self, kernel_id):
        """Shut a kernel down through the REST API (the server kills the kernel's process group)."""
        try:
            self.api(f"/api/kernels/{kernel_id}", method="DELETE")
        except urllib.error.HTTPError:  # already gone
            pass

    def descendants(self):
        try:
            return {p.pid: p for p in psutil.Process(self.proc.pid).children(recursive=True)}
        except psutil.Error:
            return {}

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _die_with_parent():
    """In the child before exec: SIGTERM when pytest dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _stop(server):
    """Shut the kernels down, stop the server by its PID, then kill anything it started that is still alive."""
    with contextlib.suppress(OSError, ValueError):
        for kernel in server.api("/api/kernels"):
            server.shutdown_kernel(kernel["id"])
    leftovers = list(server.descendants().values())
    proc = server.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for child in leftovers:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(leftovers, timeout=5)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Turn SIGTERM into KeyboardInterrupt, so that pytest unwinds and every teardown runs."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def running_lab(workdir):
    """Start `jupyter lab` for a copy of the repository made in ``workdir``; stop it on leaving."""
    root = workdir / "repo"
    shutil.copytree(REPO, root, ignore=IGNORED)
    settings = workdir / "settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    # The kernels inherit this environment: drop pytest's variables so they behave as for a reader
    # (with PYTEST_CURRENT_TEST set, ipykernel stops capturing what child processes print).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        JUPYTER_CONFIG_DIR=str(workdir / "config"),
        JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"),
    )
    port = free_port()
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
        "--ip", "127.0.0.1", "--port", str(port), "--IdentityProvider.token=",
        # the test shuts kernels down through the REST API, without a browser's cookie
        "--ServerApp.disable_check_xsrf=True",
        # lets the test read cell and kernel state in the page (window.jupyterapp)
        "--LabApp.expose_app_in_browser=True",
        # a kernel that has started spawn children does not exit on a shutdown request and is
        # sent SIGTERM after half this time (default 5 s): every restart and shutdown cost 2.5 s
        "--KernelManager.shutdown_wait_time=1.0",
        f"--ServerApp.root_dir={root}",
    ]
    log_path = workdir / "jupyterlab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
    server = Lab(proc, f"http://127.0.0.1:{port}", root, log_path)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api")
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer within {SERVER_START_TIMEOUT} s:\n"
                                       f"{server.log_tail()}") from None
                time.sleep(0.2)
        yield server
    finally:
        _stop(server)


def _process_group(pgid):
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
    return members


def _stop_group(pgid):
    """SIGTERM to chromium's process group, SIGKILL to whatever is left after 10 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        gone, alive = psutil.wait_procs(_process_group(pgid), timeout=10)
        if not alive:
            return


@contextlib.contextmanager
def running_chromium(workdir):
    """Headless chromium with a DevTools port for Playwright's connect_over_cdp; yields its URL.

    Chromium starts helper processes when it likes (an OnDeviceModelService utility process
    appeared minutes after launch, in the middle of an unrelated unit test), and the leak guard
    in tests/conftest.py blames any new descendant of pytest on the test running at that moment.
    So chromium is started by a launcher that exits at once (chromium is no descendant of
    pytest), in its own session, and stopped here through its process group on every path;
    if pytest is killed outright, the launcher's watchdog stops it.
    """
    profile = workdir / "chromium-profile"
    command = [CHROMIUM, *CHROMIUM_ARGS, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]
    launcher = [sys.executable, "-c", LAUNCHER, str(os.getpid()), str(workdir / "chromium.log")]
    launched = subprocess.run(launcher + command, capture_output=True, text=True, timeout=CHROMIUM_START_TIMEOUT,
                              check=True)
    pgid = int(launched.stdout)
    try:
        port_file = profile / "DevToolsActivePort"  # chromium writes the port it picked here
        deadline = time.monotonic() + CHROMIUM_START_TIMEOUT
        while not (port_file.exists() and port_file.read_text().strip()):
            if not _process_group(pgid) or time.monotonic() > deadline:
                log = (workdir / "chromium.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chromium did not open its DevTools port:\n{log}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{int(port_file.read_text().split()[0])}"
    finally:
        _stop_group(pgid)
