"""Bring what `make device-check` sent back into the repository.

    python scripts/device_import.py /work/.device/<call>/files     # or: make device-import FROM=<that folder>
    python scripts/device_import.py --list device-runs              # one line per run: status, rounds, seconds, device

From the folder the check's files came back to (runs.tar.gz, benchmark-loop.md, env.txt, cuda-tests.log,
device-check.log, bench.log):
- runs.tar.gz is unpacked into device-runs/ (rounds.csv, run.json, checkpoint.pt per run): carry that folder to the
  next `make device-check` and its runs resume after their last finished round;
- each run's rounds.csv and run.json go to results/runs/<profile>/<experiment>/seed<n>/ for `make figures`, unless
  another run of that seed is there already (it is kept, e.g. a committed CPU run; the device's stays in device-runs/);
- the logs and the benchmark go to results/device/<time>/, the benchmark also to
  results/benchmarks/device_check_<time>.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOGS = ("env.txt", "cuda-tests.log", "device-check.log", "bench.log", "benchmark-loop.md")
RUN_FILES = ("rounds.csv", "run.json")


def unpack(archive: Path, dest: Path) -> list[Path]:
    """Extract the check's run archive into dest; the run folders (those with a run.json), relative to dest."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")  # refuses absolute paths, links out of dest and the like
        names = [Path(m.name) for m in tar.getmembers() if m.isfile() and Path(m.name).name == "run.json"]
    return sorted(n.parent for n in names)  # pathlib drops the archive's leading "./"


def place_run(src: Path, dest: Path) -> str:
    """Copy one run's table and record to dest, unless another run holds that place (a run is the same when its
    device and start time are: a resumed run keeps its start time); a line saying what happened."""
    meta = json.loads((src / "run.json").read_text())
    if (dest / "run.json").exists():
        there = json.loads((dest / "run.json").read_text())
        if (there.get("device"), there.get("start_time")) != (meta.get("device"), meta.get("start_time")):
            return (
                f"kept {dest} (another run: {there.get('device')}, started {there.get('start_time')}); "
                f"the {meta.get('device')} run stays in {src}"
            )
    dest.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dest / name)
    return f"{dest}: {describe_run(dest)}"


def describe_run(run_dir: Path) -> str:
    """A run's status, finished rounds, seconds and device, from its run.json and rounds.csv."""
    meta = json.loads((run_dir / "run.json").read_text())
    rounds = (run_dir / "rounds.csv").read_text().count("\n") - 1 if (run_dir / "rounds.csv").exists() else 0
    return f"{meta.get('status')}, {rounds} rounds, {meta.get('elapsed_seconds') or 0:.0f}s on {meta.get('device')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the folder the device check's files came back to")
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--resume", type=Path, default=REPO / "device-runs", help="where the runs' checkpoints go")
    parser.add_argument("--list", action="store_true", help="only describe the runs under SOURCE, one line each")
    args = parser.parse_args(argv)
    if args.list:
        for run in sorted(args.source.glob("*/*/seed*/run.json")):
            print(f"{run.parent.relative_to(args.source)}: {describe_run(run.parent)}")
        return 0
    found = [name for name in (*LOGS, "runs.tar.gz") if (args.source / name).is_file()]
    if not found:
        print(f"error: no device-check files in {args.source} (expected runs.tar.gz, {', '.join(LOGS)})")
        return 2
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    logs = args.results / "device" / stamp
    logs.mkdir(parents=True, exist_ok=True)
    for name in LOGS:
        if (args.source / name).is_file():
            shutil.copy2(args.source / name, logs / name)
    if (args.source / "benchmark-loop.md").is_file():
        bench = args.results / "benchmarks" / f"device_check_{stamp}.md"
        bench.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(args.source / "benchmark-loop.md", bench)
        print(f"benchmark: {bench}")
    print(f"logs: {logs}")
    if (args.source / "runs.tar.gz").is_file():
        for run in unpack(args.source / "runs.tar.gz", args.resume):
            print(place_run(args.resume / run, args.results / "runs" / run))
        print(f"checkpoints: {args.resume} (carry it to the next device check to resume); then: make figures")
    else:
        print("no runs.tar.gz: the check stopped before its runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
