"""Upload every offline wandb run under a results directory, once.

    python scripts/wandb_sync.py --runs results/runs        # or: make wandb-sync RUNS=results/runs

Runs already uploaded (wandb leaves `<run>.wandb.synced` beside the log) are skipped. Without a wandb login or
network access it stops with one line before uploading anything; the offline runs stay where they are.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def offline_runs(root: Path) -> list[Path]:
    """Offline run directories under root, oldest first."""
    return sorted(p for p in root.rglob("offline-run-*") if p.is_dir() and any(p.glob("run-*.wandb")))


def is_synced(run_dir: Path) -> bool:
    return any(run_dir.glob("run-*.wandb.synced"))


def has_login() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("results/runs"), help="folder searched for offline runs")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    args = parser.parse_args(argv)
    runs = offline_runs(args.runs)
    todo = [r for r in runs if not is_synced(r)]
    print(f"{len(runs)} offline runs under {args.runs}, {len(runs) - len(todo)} already uploaded, {len(todo)} to go")
    if args.dry_run or not todo:
        for run in todo:
            print(f"  {run}")
        return 0
    if not has_login():
        print(
            "error: no wandb login (WANDB_API_KEY or ~/.netrc); run `wandb login` where there is network, then "
            "again; the offline runs stay in place",
            file=sys.stderr,
        )
        return 2
    wandb = str(Path(sys.executable).parent / "wandb")
    failed = 0
    for run in todo:
        proc = subprocess.run([wandb, "sync", str(run)], capture_output=True, text=True)
        ok = proc.returncode == 0 and is_synced(run)
        failed += not ok
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        print(f"{'uploaded' if ok else 'FAILED  '} {run}" + ("" if ok else f": {last[0]}"))
    if failed:
        print(f"error: {failed} of {len(todo)} uploads failed (no network?); run again to retry them", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
