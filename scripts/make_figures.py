#!/usr/bin/env python
"""Collect runs -> tidy tables -> paper figures -> results/REPORT.md.

    python scripts/make_figures.py --runs results/runs --profile quick [--data-root data]
    python scripts/make_figures.py --runs outputs/multirun/<date>/ [--figures my_groups.yaml]   # any sweep

Tables go to ``<results>/<profile>/tables/``, figures (PNG + PDF) to ``<results>/figures/<profile>/`` and the
report, with one section per profile found under ``--runs``, to ``<results>/REPORT.md``; ``<results>`` is
``results/`` for ``results/runs`` and ``<runs>/report`` for any other sweep. Figures: the paper's (10-15) and one
per figure group of ``--figures`` (configs/figures.yaml); runs of experiments in no group are grouped by dataset.
Only runs are read (and the EMNIST data for fig12, skipped when it is not there), so a redraw takes seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from batchbald.analysis import figure_groups as FG  # noqa: E402
from batchbald.analysis import plots  # noqa: E402
from batchbald.analysis import results as R  # noqa: E402
from batchbald.analysis.report import build_report  # noqa: E402

# ------------------------------------------------------------------------------------------------ main


def load_emnist(data_root: Path, df: pd.DataFrame):
    """The EMNIST dataset for fig12, or (None, why)."""
    if not data_root.exists():
        return None, f"data root {data_root} not found"
    try:
        from batchbald.data import load_dataset
    except Exception as exc:  # data module missing or broken: fig12 is optional
        return None, f"batchbald.data not importable ({exc})"
    splits = [str(s) for s in df.loc[df["dataset"] == "emnist", "split"].dropna().unique()]
    splits += [s for s in ("balanced", "standin") if s not in splits]  # the stand-in when balanced is missing
    reasons = []
    for split in splits:
        try:
            return load_dataset("emnist", data_root, split=str(split), download=False), None
        except Exception as exc:
            first = str(exc).split(". ")[0].strip() or type(exc).__name__
            reasons.append(f"split {split!r}: {first}")
    return None, "; ".join(reasons)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("results/runs"), help="root of the run directories")
    parser.add_argument(
        "--profile",
        default="all",
        help="profile to tabulate and draw (quick, paper, ...; default all); the report always "
        "covers every profile found",
    )
    parser.add_argument("--data-root", type=Path, default=Path("data"), help="dataset root for fig12")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="where tables/, figures/ and REPORT.md go (default: results/ for results/runs, else <runs>/report)",
    )
    parser.add_argument(
        "--figures", type=Path, default=FG.DEFAULT_FILE, help="figure groups (default configs/figures.yaml)"
    )
    parser.add_argument(
        "--group-by",
        default="experiment",
        help="one curve per value of this run key instead of per experiment (acquisition, batch_size, mc_samples, "
        "num_samples, repetitions, dataset, ...: a column of the runs table)",
    )
    parser.add_argument("--report", type=Path, default=None, help="report path (default <results>/REPORT.md)")
    parser.add_argument("--seed", type=int, default=None, help="trial shown in fig15 (default: lowest seed)")
    parser.add_argument("--no-examples", action="store_true", help="skip fig12 (no data loading)")
    parser.add_argument("--no-figures", action="store_true", help="tables and report only")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.results_dir is None:
        official = args.runs.resolve() == (REPO / "results" / "runs").resolve()
        args.results_dir = REPO / "results" if official else args.runs / "report"
    report_path = args.report or args.results_dir / "REPORT.md"

    df = R.load_runs(args.runs)
    if args.group_by != "experiment" and len(df):
        if args.group_by not in df.columns or args.group_by in ("run_dir", "round"):
            keys = ", ".join(c for c in R.META_COLUMNS if c not in ("experiment", "run_dir"))
            print(f"error: --group-by {args.group_by!r} is not a run key; choose one of {keys}", file=sys.stderr)
            return 2
        df = df.assign(experiment=[f"{args.group_by}={v}" for v in df[args.group_by]])
    try:
        groups = FG.load_groups(args.figures)
    except FG.FigureConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    by_dataset = {str(d): sorted(part["experiment"].unique()) for d, part in df.groupby("dataset")} if len(df) else {}
    groups = FG.with_ungrouped(groups, by_dataset)
    for run_dir, why in df.attrs.get("skipped_runs", []):
        print(f"skipped run {run_dir}: {why}")
    profiles = sorted(df["profile"].unique())
    if not profiles:  # a wrong --runs must not overwrite a good report
        print(f"no runs (rounds.csv) found under {args.runs}; nothing written")
        return 1
    selected = profiles if args.profile == "all" else [args.profile]
    if args.profile != "all" and args.profile not in profiles:
        print(f"no runs of profile '{args.profile}' under {args.runs} (found: {', '.join(profiles) or 'none'})")
    print(f"loaded {df['run_dir'].nunique()} runs, {len(df)} rounds, profiles: {', '.join(profiles) or 'none'}")

    dataset, why = (None, "--no-examples given") if args.no_examples else (None, None)
    figures: dict[str, dict] = {}
    for profile in [p for p in selected if p in profiles]:
        pdf = df[df["profile"] == profile]
        for path in R.write_tables(pdf, args.results_dir):
            print(f"table  {path}")
        if args.no_figures:
            print(f"figures {profile}: skipped (--no-figures)")
            figures[profile] = {key: "--no-figures given" for key in plots.FIGURE_NAMES}
            continue
        if dataset is None and why is None:
            dataset, why = load_emnist(args.data_root, df)
            if dataset is None:
                print(f"fig12 skipped: {why}")
        fig_dir = args.results_dir / "figures" / profile
        drawn = plots.draw_all(pdf, fig_dir, dataset=dataset, seed=args.seed)
        if dataset is None:
            drawn["fig12"] = f"EMNIST data not available ({why})"
            if (fig_dir / f"{plots.FIGURE_NAMES['fig12']}.png").exists():
                drawn["fig12"] = None  # examples drawn by an earlier call stay valid: they depend on data only
        for key, outcome in drawn.items():  # a figure without data now must not leave a stale file behind
            if isinstance(outcome, str) and key != "fig12":
                for suffix in (".png", ".pdf"):
                    (fig_dir / f"{plots.FIGURE_NAMES[key]}{suffix}").unlink(missing_ok=True)
        for key, outcome in drawn.items():
            print(
                f"{key}  {profile}: "
                + (
                    ", ".join(map(str, outcome))
                    if isinstance(outcome, list)
                    else f"skipped ({outcome})"
                    if outcome
                    else "kept from an earlier call"
                )
            )
        for stale in fig_dir.glob("group_*"):  # group figures are redrawn from scratch
            stale.unlink()
        for key, paths in plots.group_figures(pdf, groups, fig_dir).items():
            print(f"{key}  {profile}: {', '.join(map(str, paths))}")
            drawn[key] = paths
        figures[profile] = drawn

    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(
        build_report(
            df,
            runs_root=args.runs,
            results_dir=args.results_dir,
            report_path=report_path,
            figures=figures,
            groups=groups,
            fidelity_section=args.results_dir.resolve() == (REPO / "results").resolve(),
        )
    )
    print(f"report {report_path} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
