"""ipckit.bench: records, skips with reasons, a check that can fail, latency, CSV, charts. No timed assertions."""
import csv
import io

import matplotlib
import pytest

from ipckit import arrays, bench, plots, shm, widgets

matplotlib.use("Agg")

KiB, MiB = 2**10, 2**20
MEASURED = {"transport", "start_method", "nbytes", "repeat", "frames", "seconds_min", "seconds_median", "gb_per_s",
            "ok", "seconds"}


# --- sizes and names ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, nbytes", [
    ("4KiB", 4096), ("1MiB", MiB), ("16MiB", 16 * MiB), ("1GiB", 2**30), ("1000", 1000), ("16MB", 16_000_000),
    ("2KB", 2000), ("1GB", 10**9), (" 4 kib ", 4096), ("8B", 8), (4096, 4096),
])
def test_parse_size(text, nbytes):
    assert bench.parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["12XB", "", "1.5MiB", "-4KiB", "MiB", "0", "4 Ki B"])
def test_parse_size_refuses_and_lists_the_units(text):
    with pytest.raises(ValueError, match="is not a size") as error:
        bench.parse_size(text)
    if text not in ("0",):
        assert "KiB, MiB, GiB" in str(error.value)


def test_parse_sizes_and_format_size():
    assert bench.parse_sizes("4KiB,1MiB, 16MiB") == [4096, MiB, 16 * MiB]
    assert bench.parse_sizes([4096, "1MiB"]) == [4096, MiB]
    with pytest.raises(ValueError, match="separate them with commas"):
        bench.parse_sizes("4KiB,,1MiB")
    assert [bench.format_size(n) for n in (1000, 4096, 1536 * KiB, 128 * MiB, 2**30)] == [
        "1000 B", "4 KiB", "1.5 MiB", "128 MiB", "1 GiB"]


def test_transport_names():
    assert bench.transport_names(None) == list(arrays.TRANSPORTS) == bench.transport_names("all")
    assert bench.transport_names("pipe_bytes, memcpy,queue") == ["pipe_bytes", "queue"]
    with pytest.raises(ValueError, match="unknown transport 'nope'; choose all or any of: pipe_pickle"):
        bench.transport_names("pipe_bytes,nope")
    with pytest.raises(TypeError):
        bench.transport_names([3])


def test_sample_array_has_the_requested_size():
    assert bench.sample_array(4096).nbytes == 4096 and bench.sample_array(4096).dtype == "float64"
    assert bench.sample_array(1001).nbytes == 1001


# --- hand-offs -----------------------------------------------------------------------------------


def test_memcpy_record():
    record = bench.memcpy(64 * KiB, repeat=3, warmup=1)
    assert set(record) == MEASURED
    assert record["transport"] == "memcpy" and record["ok"] is True and record["repeat"] == 3
    assert len(record["seconds"]) == 3 and 0 < record["seconds_min"] <= record["seconds_median"]


@pytest.mark.timeout(120)
def test_hand_off_record(start_method):
    record = bench.hand_off(8 * KiB, "pipe_bytes", start_method, repeat=2, warmup=1, timeout=30)
    assert set(record) == MEASURED
    assert (record["transport"], record["start_method"], record["nbytes"], record["repeat"]) == (
        "pipe_bytes", start_method, 8 * KiB, 2)
    assert record["ok"] is True
    assert record["gb_per_s"] == pytest.approx(8 * KiB / record["seconds_median"] / 1e9)


@pytest.mark.timeout(120)
def test_pipe_ceiling_record(start_method):
    nbytes = 300 * KiB + 3  # more than a pipe holds, and not whole float64s: the uint8 sample
    record = bench.pipe_ceiling(nbytes, start_method, repeat=2, warmup=1, timeout=30)
    assert set(record) == MEASURED
    assert (record["transport"], record["start_method"], record["nbytes"], record["ok"]) == (
        "bare pipe", start_method, nbytes, True)
    assert record["gb_per_s"] == pytest.approx(nbytes / record["seconds_median"] / 1e9)


@pytest.mark.timeout(120)
def test_pipe_ceiling_checks_what_arrived(monkeypatch):
    real = bench.sample_array
    monkeypatch.setattr(bench, "sample_array", lambda nbytes: real(nbytes) + 1)  # here only: spawn re-imports
    assert bench.pipe_ceiling(64 * KiB, "spawn", repeat=1, warmup=0, timeout=30)["ok"] is False


def test_pipe_ceiling_refuses_bad_arguments():
    with pytest.raises(ValueError, match="nbytes must be at least 1"):
        bench.pipe_ceiling(0)
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        bench.pipe_ceiling(4096, repeat=0)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["pipe_bytes", "shared_memory", "queue"])
def test_a_corrupted_transfer_is_reported_not_ok(name, start_method):
    """The check can fail: a receiver that flips one bit is caught, under every start method."""
    record = bench.hand_off(4 * KiB, bench.corrupted(name), start_method, repeat=2, warmup=0, timeout=30)
    assert record["ok"] is False
    assert record["transport"] == f"{name} (corrupted)"


@pytest.mark.timeout(120)
def test_streaming_catches_a_transport_that_is_only_safe_in_lock_step(start_method):
    """Released inside recv(), shared memory passes one lone hand-off at a time but not a burst held by the reader."""
    unsafe = bench.released_early("shared_memory")
    lone = bench.hand_off(64 * KiB, unsafe, start_method, repeat=2, warmup=0, timeout=30, frames=1)
    streamed = bench.hand_off(64 * KiB, unsafe, start_method, repeat=2, warmup=0, timeout=30, frames=4)
    assert lone["ok"] is True and streamed["ok"] is False
    assert bench.hand_off(64 * KiB, "shared_memory", start_method, repeat=2, warmup=0, frames=4)["ok"] is True


@pytest.mark.timeout(180)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_measure_every_transport_checks_what_arrived(start_method):
    records = bench.measure([64 * KiB], None, start_method, repeat=2, warmup=1, timeout=60)
    assert [r["transport"] for r in records] == ["memcpy", *arrays.TRANSPORTS]
    skipped = {r["transport"] for r in records if "reason" in r}
    assert skipped == (set() if start_method == "fork" else {"fork_global"})
    for record in records:
        if "reason" not in record:
            assert set(record) == MEASURED and record["ok"] is True and record["nbytes"] == 64 * KiB
            assert len(record["seconds"]) == 2 and 0 < record["seconds_min"] <= record["seconds_median"]
            assert record["frames"] == (1 if record["transport"] in ("memcpy", "fork_global") else bench.DEFAULT_FRAMES)


@pytest.mark.timeout(60)
def test_a_corrupted_fork_global_is_reported_not_ok():
    record = bench.hand_off(4 * KiB, bench.corrupted("fork_global"), "fork", repeat=1, warmup=0, timeout=30)
    assert record["ok"] is False


@pytest.mark.timeout(120)
def test_measure_tiny_run_with_a_skip():
    records = bench.measure([4 * KiB, "8KiB"], "pipe_bytes,fork_global", "spawn", repeat=2, warmup=0, timeout=30)
    assert [(r["transport"], r["nbytes"]) for r in records] == [
        ("memcpy", 4096), ("pipe_bytes", 4096), ("fork_global", 4096),
        ("memcpy", 8192), ("pipe_bytes", 8192), ("fork_global", 8192),
    ]
    skipped = [r for r in records if "reason" in r]
    assert [r["transport"] for r in skipped] == ["fork_global", "fork_global"]
    assert all("needs the 'fork' start method" in r["reason"] for r in skipped)
    assert bench.all_ok(records)
    assert set(bench.speeds(records[:3])) == {"memcpy", "pipe_bytes"}
    corrupt = bench.measure([4 * KiB], [bench.corrupted("pipe_bytes")], "fork", repeat=1, warmup=0)
    assert not bench.all_ok(corrupt)


def test_too_little_dev_shm_is_a_skip_with_a_reason(monkeypatch):
    monkeypatch.setattr(shm, "free_bytes", lambda path=shm.SHM_DIR: 1000)
    for name, needed in (("shared_memory", 5 * MiB), ("shared_memory_pool", MiB)):  # 4 held + 1: five slots
        record = bench.hand_off(MiB, name, "spawn")
        assert set(record) == {"transport", "start_method", "nbytes", "repeat", "reason"}
        assert record["reason"] == f"{needed:,} bytes of shared memory do not fit in /dev/shm (1,000 free)"


def test_transports_that_would_take_minutes_are_skipped_with_a_reason():
    limit = arrays.TRANSPORTS["rawarray_seq"].practical_limit
    record = bench.hand_off(limit + 8, "rawarray_seq", "fork", frames=1)  # no array is made, no process started
    assert record["reason"] == "would take minutes above 64 MiB"
    record = bench.hand_off(limit // 4 + 8, "rawarray_seq", "fork", frames=4)  # the limit is per burst
    assert record["reason"] == "would take minutes above 16 MiB per array in bursts of 4"


def test_bad_arguments_raise_before_anything_starts():
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        bench.hand_off(4096, "pipe_bytes", repeat=0)
    with pytest.raises(ValueError, match="unknown transport"):
        bench.hand_off(4096, "teleport")
    with pytest.raises(ValueError, match="unknown start method"):
        bench.measure([4096], "pipe_bytes", start_method="teleport")
    with pytest.raises(ValueError, match="is not a size"):
        bench.measure(["12XB"])
    with pytest.raises(ValueError, match="unknown channel 'smoke'"):
        bench.latency(["smoke"])


# --- latency and start-up ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_latency_every_channel(start_method):
    records = bench.latency(start_method=start_method, repeat=5, warmup=1, timeout=30)
    assert [r["channel"] for r in records] == ["queue", "pipe", "manager", "subprocess"]
    for r in records:
        assert r["repeat"] == 5 and 0 < r["seconds_min"] <= r["seconds_median"] and r["what"]
        assert r["start_method"] == (None if r["channel"] == "subprocess" else start_method)


@pytest.mark.timeout(60)
def test_startup_per_start_method():
    records = bench.startup(["fork", "spawn"], repeat=1, warmup=0, timeout=30)
    assert [r["start_method"] for r in records] == ["fork", "spawn"]
    assert all(r["seconds_median"] > 0 for r in records)


def test_reused_slots_take_no_page_faults_fresh_blocks_one_a_page():
    fresh, reused = bench.fresh_vs_reused(nbytes=4 * MiB, repeat=3, warmup=1)
    assert (fresh["way"], reused["way"]) == (bench.FRESH, bench.REUSED)
    for record in (fresh, reused):
        assert record["pages"] == 1024 and record["nbytes"] == 4 * MiB and record["ok"] is True
        assert record["repeat"] == 3 and 0 < record["seconds_min"] <= record["seconds_median"]
    assert fresh["page_faults"] >= fresh["pages"] // 2  # every new page is faulted in
    assert reused["page_faults"] < reused["pages"] // 10  # reused pages are already mapped
    assert plots.plot_fresh_vs_reused([fresh, reused]).axes
    matplotlib.pyplot.close("all")


# --- output: table, CSV, charts, panel --------------------------------------------------------------

FAKE = [
    {"transport": "memcpy", "start_method": "in-process", "nbytes": MiB, "repeat": 2, "seconds_min": 1e-4,
     "seconds_median": 1e-4, "gb_per_s": MiB / 1e-4 / 1e9, "ok": True, "seconds": [1e-4, 1e-4]},
    {"transport": "pipe_bytes", "start_method": "spawn", "nbytes": MiB, "repeat": 2, "seconds_min": 1e-3,
     "seconds_median": 2e-3, "gb_per_s": MiB / 2e-3 / 1e9, "ok": False, "seconds": [1e-3, 3e-3]},
    {"transport": "fork_global", "start_method": "spawn", "nbytes": MiB, "repeat": 2,
     "reason": "needs the 'fork' start method, not 'spawn'"},
]


def test_csv_has_the_columns_in_order_and_leaves_skips_out(tmp_path):
    path = tmp_path / "out.csv"
    assert bench.write_csv(FAKE, path) == 2
    rows = list(csv.reader(path.open()))
    assert rows[0] == [
        "transport", "start_method", "nbytes", "repeat", "seconds_min", "seconds_median", "gb_per_s", "ok"]
    assert [row[0] for row in rows[1:]] == ["memcpy", "pipe_bytes"]
    assert rows[2][-1] == "false" and float(rows[2][5]) == 2e-3
    buffer = io.StringIO()
    bench.write_csv(FAKE, buffer)
    assert buffer.getvalue().splitlines()[0].startswith("transport,start_method")


def test_table_shows_the_reason_and_the_failed_check():
    text = bench.table(FAKE)
    assert "skipped: needs the 'fork' start method, not 'spawn'" in text
    assert "NO" in text and "memcpy" in text


def test_table_marks_the_in_place_transport_and_fits_long_names():
    in_place = dict(FAKE[1], transport="shared_memory", ok=True)
    copied = dict(FAKE[1], transport=bench.copied_out("shared_memory").name, ok=True)
    text = bench.table(FAKE + [in_place, copied])
    assert "shared_memory: read in place, no copy by the reader" in text
    rows = [line for line in text.splitlines() if "spawn" in line and "skipped" not in line]
    assert len({line.index("spawn") for line in rows}) == 1  # the start column lines up
    figure = plots.plot_bandwidth(FAKE + [in_place, copied])
    legend = {t.get_text() for t in figure.axes[0].get_legend().get_texts()}
    assert {"shared_memory (in place)", copied["transport"]} <= legend
    matplotlib.pyplot.close("all")


def test_charts_draw_bench_records():
    more = [dict(r, nbytes=4 * MiB) for r in FAKE]
    assert plots.plot_bandwidth(FAKE + more).axes
    assert plots.plot_transport_speeds(FAKE).axes
    fork = [dict(r, start_method="fork") for r in FAKE[1:]]
    fork[1] = dict(FAKE[1], transport="fork_global", start_method="fork")
    assert plots.plot_start_methods(FAKE + fork).axes
    latency = [{"channel": "pipe", "what": "x", "start_method": "spawn", "repeat": 2, "seconds_min": 2e-5,
                "seconds_median": 3e-5}]
    assert plots.plot_latency(latency).axes
    matplotlib.pyplot.close("all")


def test_bench_panel_has_the_controls():
    panel = widgets.bench_panel(transports="pipe_bytes,rawarray", start_method="spawn", run_now=False)
    controls = panel.children[0].children
    assert controls[0].value == MiB and controls[1].value == ("pipe_bytes", "rawarray")
    assert controls[2].value == "spawn"
    assert panel.children[1].children[0].description == "Run"
