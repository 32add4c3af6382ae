"""``python -m ipckit bench`` as a user runs it: CSV, table, chart, exit status. No timed assertions."""
import csv
import subprocess
import sys

import pytest

from ipckit import bench

COMMAND = [sys.executable, "-m", "ipckit", "bench"]


def run(*args, timeout=150):
    return subprocess.run(COMMAND + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.timeout(180)
def test_tiny_run_writes_csv_table_and_chart(tmp_path):
    csv_path, png_path = tmp_path / "bench.csv", tmp_path / "bench.png"
    result = run("--sizes", "4KiB,8KiB", "--transports", "pipe_bytes,fork_global", "--start-method", "spawn",
                 "--repeat", "2", "--frames", "3", "--csv", str(csv_path), "--plot", str(png_path))
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == list(bench.CSV_COLUMNS)
    assert rows[0] == "transport,start_method,nbytes,repeat,seconds_min,seconds_median,gb_per_s,ok".split(",")
    assert len(rows) == 1 + 2 * 2  # per size: memcpy and pipe_bytes; fork_global is skipped under spawn
    assert sorted((row[0], row[2]) for row in rows[1:]) == [
        ("memcpy", "4096"), ("memcpy", "8192"), ("pipe_bytes", "4096"), ("pipe_bytes", "8192")]
    assert all(row[3] == "2" and row[-1] == "true" for row in rows[1:])
    assert "skipped: needs the 'fork' start method, not 'spawn'" in result.stdout
    assert "from bursts of 3 sent without waiting" in result.stdout
    assert "subprocess" in result.stdout and "round trip" in result.stdout  # the latency table
    assert "hand-offs" in result.stderr  # the progress bar
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, bad", [
    (["--transports", "pipe_bytes,teleport"], "'teleport'"),
    (["--sizes", "12XB"], "'12XB'"),
    (["--repeat", "0"], "'0'"),
    (["--repeat", "-3"], "'-3'"),
    (["--frames", "0"], "'0'"),
    (["--start-method", "teleport"], "'teleport'"),
    (["--sizes", "4KiB,0"], "'0'"),
    (["--csv", "/no/such/folder/out.csv"], "/no/such/folder"),
    (["--colour"], "--colour"),
])
def test_bad_arguments_exit_2_with_one_line(args, bad):
    result = run(*args, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("python -m ipckit bench: error:") and bad in lines[0]
    assert result.stdout == ""


def test_size_errors_list_the_units():
    assert "B, KB, MB, GB, KiB, MiB, GiB" in run("--sizes", "12XB", timeout=30).stderr


def test_transport_errors_list_the_choices():
    assert "choose all or any of: pipe_pickle, pipe_bytes" in run("--transports", "nope", timeout=30).stderr


def test_help_documents_every_option():
    result = run("--help", timeout=30)
    assert result.returncode == 0
    for option in ("--sizes", "--transports", "--start-method", "--repeat", "--warmup", "--csv", "--plot",
                   "--no-latency", "--no-progress", "Exit status"):
        assert option in result.stdout


def test_no_command_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "ipckit"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
