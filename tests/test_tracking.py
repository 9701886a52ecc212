"""Run provenance: the commit recorded beside every result."""

import shutil
import subprocess

import pytest

from batchbald.tracking import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def test_git_commit_is_dirty_for_code_changes_but_not_for_results_or_docs(tmp_path):
    def git(*args):
        subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True,
            capture_output=True,
        )

    (tmp_path / "results").mkdir()
    (tmp_path / "results/table.csv").write_text("a\n1\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("docs\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/notes.md").write_text("docs\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "init")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert git_commit(tmp_path) == head.strip()
    (tmp_path / "results/table.csv").write_text("a\n2\n")  # a regenerated result
    (tmp_path / "README.md").write_text("edited docs\n")
    (tmp_path / "docs/notes.md").write_text("more docs\n")
    assert git_commit(tmp_path) == head.strip()
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head.strip() + "+dirty"


def test_git_commit_outside_a_repository(tmp_path):
    assert git_commit(tmp_path) == "unknown"
