"""make wandb-sync: finds offline runs, skips uploaded ones, stops with one line without a login."""

from __future__ import annotations

from scripts import wandb_sync


def make_run(root, name, synced=False):
    run = root / "exp" / "seed1" / "wandb" / f"offline-run-{name}"
    run.mkdir(parents=True)
    (run / f"run-{name}.wandb").write_bytes(b"log")
    if synced:
        (run / f"run-{name}.wandb.synced").write_bytes(b"")
    return run


def test_only_unsynced_runs_are_listed(tmp_path, capsys):
    make_run(tmp_path, "a", synced=True)
    todo = make_run(tmp_path, "b")
    assert wandb_sync.main(["--runs", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 offline runs" in out and "1 already uploaded, 1 to go" in out and str(todo) in out


def test_nothing_to_do_is_fine(tmp_path, capsys):
    make_run(tmp_path, "a", synced=True)
    assert wandb_sync.main(["--runs", str(tmp_path)]) == 0
    assert "0 to go" in capsys.readouterr().out


def test_no_login_is_one_line(tmp_path, capsys, monkeypatch):
    make_run(tmp_path, "b")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert wandb_sync.main(["--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no wandb login")
