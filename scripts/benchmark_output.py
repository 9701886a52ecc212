"""Where a benchmark writes its record: a new dated file by default, or the path given, never a committed record."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path


def is_committed(path: Path, repo: Path) -> bool:
    """True if git tracks `path` in `repo` (False without git or outside the repository)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "--error-unmatch", str(Path(path).resolve())],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def output_path(given: Path | None, stem: str, repo: Path) -> Path:
    """`given`, or results/benchmarks/<stem>-<UTC date and time>.md; ValueError for a committed file."""
    if given is None:
        return repo / "results" / "benchmarks" / f"{stem}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.md"
    if is_committed(given, repo):
        raise ValueError(
            f"--out {given} is a committed benchmark record; a run never overwrites one: give a new path, or leave "
            "--out out for a new dated file"
        )
    return given
