#!/usr/bin/env python
"""Collect runs -> tidy tables -> paper figures -> results/REPORT.md.

    python scripts/make_figures.py --runs results/runs --profile quick [--data-root data]

Tables go to ``<results>/<profile>/tables/``, figures (PNG + PDF) to ``<results>/figures/<profile>/`` and the
report, with one section per profile found under ``--runs``, to ``<results>/REPORT.md``. Only runs are read
(and the EMNIST data for fig12, skipped when it is not there), so a redraw takes seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from batchbald import fidelity, plots  # noqa: E402
from batchbald import results as R  # noqa: E402

PROFILE_ORDER = ("quick", "paper")
DEFAULT_NOTES = {
    "quick": "quick profile: reduced settings for a fast end-to-end check (no profile_notes recorded in "
    "run.json; see configs/ for the exact reductions)",
    "paper": "paper profile: the paper's settings (SPEC §2), no reductions recorded",
}
FIGURE_CAPTIONS = {
    "fig10": "Fig 10: RMNIST repetition ablation (BALD 0/1/2/4 reps, BatchBALD 4 reps)",
    "fig11": "Fig 11: RMNIST with other acquisition functions",
    "fig12": "Fig 12: one example of each EMNIST class",
    "fig13": "Fig 13: EMNIST accuracy",
    "fig14": "Fig 14: entropy of acquired labels on EMNIST",
    "fig15": "Fig 15: histograms of acquired labels on EMNIST (one trial per method)",
}


# ------------------------------------------------------------------------------------------------ formatting


def fmt_points(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return "∞" if value == math.inf else f"{value:g}"


def fmt_quartiles(q25: float, median: float, q75: float, fmt=fmt_points) -> str:
    if all(isinstance(v, float) and math.isnan(v) for v in (q25, median, q75)):
        return "—"
    if isinstance(q25, float) and math.isnan(q25) and isinstance(q75, float) and math.isnan(q75):
        return fmt(median)
    return "/".join(fmt(v) for v in (q25, median, q75))


def fmt_acc(value: float) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.3f}".lstrip("0") if value < 1 else f"{value:.3f}"


def fmt_seconds(seconds: float) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def trials_text(info: dict) -> str:
    others = ", ".join(f"{n} {s}" for s, n in sorted(info["status"].items()) if s != "finished")
    return f"{info['n_runs']}" + (f" ({others})" if others else "")


def hardware_text(info: dict) -> str:
    hardware = "; ".join(info["hardware"]) or "—"
    devices = ", ".join(info["device"])
    return f"{hardware} ({devices})" if devices else hardware


def label_of(experiment: str) -> str:
    for group in R.GROUPS:
        for name, label in group.members:
            if name == experiment:
                return f"{label} (`{experiment}`)"
    return f"`{experiment}`"


# ------------------------------------------------------------------------------------------------ report


def check_line(check: R.Check) -> str:
    verdict = {True: "yes", False: "no", None: "not checked"}[check.passed]
    return f"- ({check.key}) {check.claim}: **{verdict}**. {check.detail}."


def profile_section(df: pd.DataFrame, profile: str, figures: dict, report_dir: Path, fig_dir: Path) -> list[str]:
    lines = [f"## Profile `{profile}`", ""]
    notes = R.profile_notes(df, profile)
    lines += ["Reductions / settings of this profile (from run.json `config.profile_notes`):", ""]
    if len(notes) == 1:
        lines += [f"- {notes[0][0]}", ""]
    elif notes:  # the notes changed between sweeps: say which runs each text belongs to
        lines += [f"- Runs of {', '.join(f'`{e}`' for e in exps)}: {note}" for note, exps in notes] + [""]
    else:
        lines += [f"- {DEFAULT_NOTES.get(profile, f'profile {profile!r} (no notes recorded)')}", ""]

    order = [e for g in R.GROUPS for e, _ in g.members]
    experiments = sorted(df["experiment"].unique(), key=lambda e: (order.index(e) if e in order else len(order), e))
    infos = {e: R.experiment_info(df, e) for e in experiments}
    total = sum(i["compute_seconds"] for i in infos.values())
    lines += [
        f"{len(experiments)} experiments, {sum(i['n_runs'] for i in infos.values())} runs, total compute "
        f"{fmt_seconds(total)} (sum of run wall times).",
        "",
    ]

    lines += ["### Acceptance", "", "The paper's findings, checked on this profile's runs (medians over trials):", ""]
    lines += [check_line(c) for c in R.acceptance_checks(df)] + [""]

    lines += ["### Runs", ""]
    rows = []
    for e in experiments:
        first = df[df["experiment"] == e].iloc[0]
        info = infos[e]
        rows.append(
            [
                label_of(e),
                trials_text(info),
                ", ".join(map(str, info["seeds"])),
                first["dataset_description"],
                fmt_points(first["batch_size"]),
                fmt_points(first["mc_samples"]),
                hardware_text(info),
                fmt_seconds(info["compute_seconds"]),
            ]
        )
    lines += table(["run", "trials", "seeds", "dataset", "b", "K", "hardware", "compute"], rows) + [""]

    thresholds = R.threshold_table(df)
    lines += [
        "### Points to reach an accuracy (q25/median/q75)",
        "",
        "Mark = labelled-set size of the first evaluation at or above the accuracy − b (SPEC §5, the "
        "rule behind Table 1); quartiles over trials with numpy's `nearest` percentile; ∞ = never "
        "reached. Running/failed runs that have not reached an accuracy are left out.",
        "",
    ]
    for group in R.GROUPS:
        if not group.thresholds:
            continue
        names = [e for e, _ in group.members if e in infos]
        if not names:
            lines += [f"#### {group.title}", "", "No runs in this group.", ""]
            continue
        header = ["run", "n"]
        for t in group.thresholds:
            header += [f"{t:.0%} ours", f"{t:.0%} paper"]
        header += ["hardware", "compute"]
        rows = []
        for e in names:
            row = [label_of(e), None]
            n = set()
            for t in group.thresholds:
                hit = thresholds[(thresholds["experiment"] == e) & (thresholds["threshold"] == t)]
                if hit.empty:
                    row += ["—", "—"]
                    continue
                h = hit.iloc[0]
                n.add(int(h["n_trials"]))
                left = int(h["left_out_unfinished"])
                ours = fmt_quartiles(h["q25"], h["median"], h["q75"]) + (
                    f" ({left} unfinished left out)" if left else ""
                )
                row += [ours, fmt_quartiles(h["paper_q25"], h["paper_median"], h["paper_q75"])]
            row[1] = "/".join(str(v) for v in sorted(n)) or "0"
            row += [hardware_text(infos[e]), fmt_seconds(infos[e]["compute_seconds"])]
            rows.append(row)
        missing = [f"{label} (`{e}`)" for e, label in group.members if e not in infos]
        lines += [f"#### {group.title}", ""] + table(header, rows) + [""]
        if group.key == "table1_mnist":
            lines += [
                f"Paper reference row, Gal et al. 2017: 90% at {R.PAPER_GAL_2017[0.90]}, 95% at "
                f"{R.PAPER_GAL_2017[0.95]}.",
                "",
            ]
        if missing:
            lines += ["No runs for: " + "; ".join(missing) + ".", ""]
    grouped = {e for g in R.GROUPS if g.thresholds for e, _ in g.members}
    others = sorted(set(thresholds["experiment"]) - grouped)
    if others:
        rows = []
        for e in others:
            for _, h in thresholds[thresholds["experiment"] == e].iterrows():
                rows.append(
                    [
                        label_of(e),
                        f"{h['threshold']:.0%}",
                        int(h["n_trials"]),
                        fmt_quartiles(h["q25"], h["median"], h["q75"]),
                        hardware_text(infos[e]),
                        fmt_seconds(infos[e]["compute_seconds"]),
                    ]
                )
        lines += ["#### Other runs", ""] + table(["run", "accuracy", "n", "ours", "hardware", "compute"], rows)
        lines += [""]

    accuracy = R.accuracy_table(df)
    lines += [
        "### Test accuracy at 100 and 200 labelled points and at the end",
        "",
        "Median (q25–q75) over trials; runs that stopped early are padded with their last accuracy. "
        "Sizes include the 20 initial points for the MNIST family; EMNIST starts from 0. The paper "
        "gives only medians for most rows (SPEC §9).",
        "",
    ]
    rows = []
    for e in experiments:
        part = accuracy[accuracy["experiment"] == e].set_index("at")
        if part.empty:
            continue
        row = [label_of(e), trials_text(infos[e])]
        for at in ("100", "200", "final"):
            a = part.loc[at]
            if a["labelled_size"] is None or pd.isna(a["labelled_size"]):
                ours = "not reached"
            else:
                ours = f"{fmt_acc(a['median'])} ({fmt_acc(a['q25'])}–{fmt_acc(a['q75'])})"
                if at == "final" or int(a["labelled_size"]) != int(at):
                    ours += f" @{int(a['labelled_size'])}"
            paper = fmt_quartiles(a["paper_q25"], a["paper_median"], a["paper_q75"], fmt_acc)
            if at == "final" and paper != "—":
                paper += f" @{int(a['paper_size'])}"
            row += [ours, paper]
        row += [hardware_text(infos[e]), fmt_seconds(infos[e]["compute_seconds"])]
        rows.append(row)
    lines += table(
        ["run", "trials", "at 100", "paper", "at 200", "paper", "final", "paper", "hardware", "compute"], rows
    ) + [""]
    if "emnist_batchbald" in infos or "emnist_bald" in infos:
        ent_rows = []
        for e, _ in R.GROUPS_BY_KEY["emnist"].members:
            if e not in infos:
                continue
            curve = R.label_entropy_curves(df, e)
            if curve.empty:
                continue
            last = curve.iloc[-1]
            ent_rows.append(
                [
                    label_of(e),
                    trials_text(infos[e]),
                    f"{last['median']:.3f} ({last['q25']:.3f}–{last['q75']:.3f}) @step {int(last['step'])}",
                    f"{R.PAPER_FINAL_LABEL_ENTROPY.get(e, math.nan):.2f} @step 60",
                ]
            )
        if ent_rows:
            lines += ["Final entropy of the acquired labels (nats; maximum ln C):", ""]
            lines += table(["run", "trials", "ours", "paper (≈, read off Fig 8/14)"], ent_rows) + [""]

    lines += ["### Figures", ""]
    for key, name in plots.FIGURE_NAMES.items():
        png = fig_dir / f"{name}.png"
        outcome = figures.get(key)
        if png.exists() and not isinstance(outcome, str):
            rel = os.path.relpath(png, report_dir)
            lines += [
                f"**{FIGURE_CAPTIONS[key]}** ([PDF]({os.path.relpath(png.with_suffix('.pdf'), report_dir)}))",
                "",
                f"![{FIGURE_CAPTIONS[key]}]({rel})",
                "",
            ]
        else:
            reason = outcome if isinstance(outcome, str) else "not drawn in this call (other profile)"
            lines += [f"- {FIGURE_CAPTIONS[key]}: skipped — {reason}.", ""]
    return lines


def build_report(
    df: pd.DataFrame, *, runs_root: Path, results_dir: Path, report_path: Path, figures: dict[str, dict]
) -> str:
    """The whole REPORT.md text: header, then one section per profile in ``df``."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# BatchBALD reproduction: results report",
        "",
        "> **Generated file — do not edit by hand.** Written by `scripts/make_figures.py` from the runs under "
        f"`{runs_root}` on {now}. Regenerate with `python scripts/make_figures.py --runs {runs_root} "
        "--profile <quick|paper>`.",
        "",
        "Paper numbers are those of SPEC §9 (recomputed from the paper's run logs). Figures follow SPEC §8.",
        "",
    ]
    profiles = sorted(
        df["profile"].unique(), key=lambda p: (PROFILE_ORDER.index(p) if p in PROFILE_ORDER else len(PROFILE_ORDER), p)
    )
    if not profiles:
        lines += ["No runs found.", ""]
    skipped = df.attrs.get("skipped_runs", [])
    if skipped:
        lines += ["Runs not read: " + "; ".join(f"`{d}` ({why})" for d, why in skipped) + ".", ""]
    lines += ["Profiles: " + ", ".join(f"[{p}](#profile-{p})" for p in profiles), ""] if profiles else []
    for profile in profiles:
        lines += profile_section(
            df[df["profile"] == profile],
            profile,
            figures.get(profile, {}),
            report_path.parent,
            results_dir / "figures" / profile,
        )
    lines += fidelity.report_section(results_dir / "fidelity", report_path.parent)
    return "\n".join(lines).rstrip() + "\n"


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
        "--results-dir", type=Path, default=Path("results"), help="where tables/, figures/ and REPORT.md go"
    )
    parser.add_argument("--report", type=Path, default=None, help="report path (default <results>/REPORT.md)")
    parser.add_argument("--seed", type=int, default=None, help="trial shown in fig15 (default: lowest seed)")
    parser.add_argument("--no-examples", action="store_true", help="skip fig12 (no data loading)")
    parser.add_argument("--no-figures", action="store_true", help="tables and report only")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report_path = args.report or args.results_dir / "REPORT.md"

    df = R.load_runs(args.runs)
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
        drawn = plots.draw_all(pdf, args.results_dir / "figures" / profile, dataset=dataset, seed=args.seed)
        fig_dir = args.results_dir / "figures" / profile
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
        figures[profile] = drawn

    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(
        build_report(df, runs_root=args.runs, results_dir=args.results_dir, report_path=report_path, figures=figures)
    )
    print(f"report {report_path} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
