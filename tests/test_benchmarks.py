"""The benchmark scripts run end to end on tiny settings, and their load meter tells foreign from own CPU work."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchbald.tracking import LoadMeter

REPO = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat")


@linux_only
def test_load_meter_counts_another_process_but_not_our_own_work():
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"])
    try:
        time.sleep(0.3)  # let the child start spinning
        with LoadMeter() as other:
            time.sleep(0.8)
    finally:
        busy.wait()
    with LoadMeter() as own:
        end = time.perf_counter() + 0.8
        while time.perf_counter() < end:
            pass
    assert other.foreign > 0.5, other.foreign  # one spinning child = about one foreign core
    assert own.foreign < other.foreign - 0.3, (own.foreign, other.foreign)


def test_acquisition_benchmark_writes_a_report(tmp_path):
    out = tmp_path / "acq.md"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts/benchmark_acquisition.py"),
            "--case",
            "60,5,3,4,20",
            "--no-redux",
            "--no-baal",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = out.read_text()
    assert "| (60, 5, 3, 4, 20) | 3/4 |" in text  # exact while 3^i <= 20 (i = 0, 1, 2 points chosen), then sampled
    assert "Picks:" in text and "ours [" in text


def test_loop_benchmark_smoke_writes_a_report(tmp_path):
    out, raw = tmp_path / "loop.md", tmp_path / "times.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts/benchmark_loop.py"), "--smoke", "--threads", "1", "--out", str(out)]
        + ["--raw", str(raw), "--processes", "2"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = out.read_text()
    assert "SMOKE RUN" in text and "foreign load" in text
    assert "- cpu kernels: AVX2 (BATCHBALD_CPU_ISA=avx2, as the loop)" in text  # the loop's pinned kernels
    cases = [("mnist_cnn", 10), ("mnist_cnn", 100), ("emnist_cnn", 10), ("emnist_cnn", 100)]
    for model, k in cases:
        assert f"scoring model={model} K={k} speedup=" in run.stdout
        assert f"| {model} | {k} | 8 |" in text
    assert "## One paper-settings round per dataset" in text
    assert "scoring process 2/2 (1 rounds): mnist_cnn K=10 " in run.stdout
    scoring = json.loads(raw.read_text())["scoring"]
    assert [(r["model"], r["K"]) for r in scoring] == cases
    for r in scoring:  # one round in each of 2 processes: one pair each, pooled
        assert r["times"]["ref_first"] == [True, False]  # the pair's order alternates across the processes too
        assert r["max_abs_diff"] < 1e-4  # outputs compared (in the first process)
        ratios = [ref / ours for ref, ours in zip(r["times"]["ref"], r["times"]["ours"])]
        assert r["process_speedups"] == pytest.approx(ratios)
        assert r["speedup"] == pytest.approx(sum(r["times"]["ref"]) / sum(r["times"]["ours"]))
        assert r["median_ratio"] == pytest.approx(sum(ratios) / 2)  # the median of two
        assert r["best_speedup"] == pytest.approx(min(r["times"]["ref"]) / min(r["times"]["ours"]))
        assert f"| **{r['speedup']:.2f}x** | {r['median_ratio']:.2f} (" in text
        assert f"| {r['best_speedup']:.2f}x | {ratios[0]:.2f}, {ratios[1]:.2f} |" in text


@pytest.mark.parametrize("option", ["--rounds", "--processes", "--threads"])
def test_loop_benchmark_refuses_counts_below_one(tmp_path, option):
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts/benchmark_loop.py"), option, "0", "--out", str(tmp_path / "loop.md")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert f"error: {option} must be at least 1, got 0" in run.stderr
    assert not (tmp_path / "loop.md").exists()


@pytest.mark.parametrize("script", ["benchmark_loop.py", "benchmark_acquisition.py"])
def test_a_benchmark_never_overwrites_a_committed_record(script):
    committed = REPO / "results" / "benchmarks" / ("loop.md" if script == "benchmark_loop.py" else "acquisition.md")
    before = committed.read_text()
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), "--out", str(committed)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "is a committed benchmark record" in run.stderr
    assert committed.read_text() == before


def test_the_default_output_is_a_new_dated_file(tmp_path):
    from scripts.benchmark_output import output_path

    path = output_path(None, "loop", REPO)
    assert path.parent == REPO / "results" / "benchmarks" and path.name.startswith("loop-") and not path.exists()
    assert output_path(tmp_path / "mine.md", "loop", REPO) == tmp_path / "mine.md"
