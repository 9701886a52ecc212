"""results/REPORT.md: one section per profile (acceptance checks, runs, points-to-X% and accuracy tables next to the
paper, beyond-the-paper comparisons, figures) from a `batchbald.analysis.results.load_runs` frame. Markdown only; the
figures are drawn by batchbald.analysis.plots and the fidelity section comes from batchbald.fidelity.summary.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from batchbald.analysis import checks, curves, official_logs, paper_numbers, plots
from batchbald.analysis import figure_groups as FG
from batchbald.analysis import results as R
from batchbald.analysis.baselines import baselines_section, median_seconds
from batchbald.analysis.markdown import (
    fmt_acc,
    fmt_points,
    fmt_quartiles,
    fmt_seconds,
    hardware_text,
    table,
    trials_text,
)
from batchbald.fidelity import acquisition_summary, own_states, run_level
from batchbald.fidelity import summary as fidelity

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


def label_of(experiment: str, groups=FG.GROUPS) -> str:
    for group in groups:
        for name, label in group.members:
            if name == experiment:
                return f"{label} (`{experiment}`)"
    return f"`{experiment}`"


# ------------------------------------------------------------------------------------------------ report


def check_line(check: checks.Check) -> str:
    return f"- ({check.key}) {check.claim}: **{check.verdict}**. {check.detail}."


def _same_seed_log_marks(df: pd.DataFrame, experiment: str, threshold: float, seeds) -> str:
    """The official logs' marks over the logged runs of our seeds, by our rule: "q25/median/q75 (n)", or "—"."""
    b = df.loc[df["experiment"] == experiment, "batch_size"].dropna()
    marks = official_logs.log_marks(experiment, threshold, int(b.iloc[0]), seeds=seeds) if len(b) else None
    if marks is None:
        return "— (logs ran other seeds)" if official_logs.logged_group(experiment) else "—"
    return f"{fmt_quartiles(marks.q25, marks.median, marks.q75)} ({marks.n_trials})"


def profile_section(
    df: pd.DataFrame, profile: str, figures: dict, report_dir: Path, fig_dir: Path, groups=FG.GROUPS
) -> list[str]:
    lines = [f"## Profile `{profile}`", ""]
    notes = R.profile_notes(df, profile)
    lines += ["Reductions / settings of this profile (from run.json `config.profile_notes`):", ""]
    if len(notes) == 1:
        lines += [f"- {notes[0][0]}", ""]
    elif notes:  # the notes changed between sweeps: say which runs each text belongs to
        lines += [f"- Runs of {', '.join(f'`{e}`' for e in exps)}: {note}" for note, exps in notes] + [""]
    else:
        lines += [f"- {DEFAULT_NOTES.get(profile, f'profile {profile!r} (no notes recorded)')}", ""]

    order = [e for g in groups for e, _ in g.members]
    experiments = sorted(df["experiment"].unique(), key=lambda e: (order.index(e) if e in order else len(order), e))
    infos = {e: checks.experiment_info(df, e) for e in experiments}
    total = sum(i["compute_seconds"] for i in infos.values())
    lines += [
        f"{len(experiments)} experiments, {sum(i['n_runs'] for i in infos.values())} runs, total compute "
        f"{fmt_seconds(total)} (sum of run wall times).",
        "",
    ]

    lines += ["### Acceptance", "", "The paper's findings, checked on this profile's runs (medians over trials):", ""]
    lines += [check_line(c) for c in checks.acceptance_checks(df)] + [""]

    lines += ["### Runs", ""]
    rows = []
    for e in experiments:
        first = df[df["experiment"] == e].iloc[0]
        info = infos[e]
        rows.append(
            [
                label_of(e, groups),
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

    thresholds = checks.threshold_table(df)
    lines += [
        "### Points to reach an accuracy (q25/median/q75)",
        "",
        "Mark = labelled-set size of the first evaluation at or above the accuracy − b (SPEC §5, the "
        "rule behind Table 1); quartiles over trials with numpy's `nearest` percentile; ∞ = never "
        "reached. Running/failed runs that have not reached an accuracy are left out.",
        "",
    ]
    for group in groups:
        if not group.thresholds or group.run in ("beyond", "baselines"):  # these have their own section
            continue
        names = [e for e, _ in group.members if e in infos]
        if not names:
            lines += [f"#### {group.title}", "", "No runs in this group.", ""]
            continue
        with_logs = profile in official_logs.PROFILES_WITH_LOGS and any(official_logs.logged_group(e) for e in names)
        header = ["run", "n"]
        for t in group.thresholds:
            header += [f"{t:.0%} ours", f"{t:.0%} paper"] + ([f"{t:.0%} logs, same seeds"] if with_logs else [])
        header += ["hardware", "compute"]
        rows = []
        for e in names:
            row = [label_of(e, groups), None]
            n = set()
            for t in group.thresholds:
                hit = thresholds[(thresholds["experiment"] == e) & (thresholds["threshold"] == t)]
                if hit.empty:
                    row += ["—", "—"] + (["—"] if with_logs else [])
                    continue
                h = hit.iloc[0]
                n.add(int(h["n_trials"]))
                left = int(h["left_out_unfinished"])
                ours = fmt_quartiles(h["q25"], h["median"], h["q75"]) + (
                    f" ({left} unfinished left out)" if left else ""
                )
                row += [ours, fmt_quartiles(h["paper_q25"], h["paper_median"], h["paper_q75"])]
                if with_logs:
                    row.append(_same_seed_log_marks(df, e, t, infos[e]["seeds"]))
            row[1] = "/".join(str(v) for v in sorted(n)) or "0"
            row += [hardware_text(infos[e]), fmt_seconds(infos[e]["compute_seconds"])]
            rows.append(row)
        missing = [f"{label} (`{e}`)" for e, label in group.members if e not in infos]
        lines += [f"#### {group.title}", ""] + table(header, rows) + [""]
        if group.key == "table1_mnist":
            lines += [
                f"Paper reference row, Gal et al. 2017: 90% at {paper_numbers.PAPER_GAL_2017[0.90]}, 95% at "
                f"{paper_numbers.PAPER_GAL_2017[0.95]}.",
                "",
            ]
        if missing:
            lines += ["No runs for: " + "; ".join(missing) + ".", ""]
    grouped = {e for g in groups if g.thresholds for e, _ in g.members}
    others = sorted(set(thresholds["experiment"]) - grouped)
    if others:
        rows = []
        for e in others:
            for _, h in thresholds[thresholds["experiment"] == e].iterrows():
                rows.append(
                    [
                        label_of(e, groups),
                        f"{h['threshold']:.0%}",
                        int(h["n_trials"]),
                        fmt_quartiles(h["q25"], h["median"], h["q75"]),
                        hardware_text(infos[e]),
                        fmt_seconds(infos[e]["compute_seconds"]),
                    ]
                )
        lines += ["#### Other runs", ""] + table(["run", "accuracy", "n", "ours", "hardware", "compute"], rows)
        lines += [""]

    accuracy = checks.accuracy_table(df)
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
        row = [label_of(e, groups), trials_text(infos[e])]
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
        for e, _ in next((g for g in groups if g.key == "emnist"), FG.GROUPS_BY_KEY["emnist"]).members:
            if e not in infos:
                continue
            curve = curves.label_entropy_curves(df, e)
            if curve.empty:
                continue
            last = curve.iloc[-1]
            ent_rows.append(
                [
                    label_of(e, groups),
                    trials_text(infos[e]),
                    f"{last['median']:.3f} ({last['q25']:.3f}–{last['q75']:.3f}) @step {int(last['step'])}",
                    f"{paper_numbers.PAPER_FINAL_LABEL_ENTROPY.get(e, math.nan):.2f} @step 60",
                ]
            )
        if ent_rows:
            lines += ["Final entropy of the acquired labels (nats; maximum ln C):", ""]
            lines += table(["run", "trials", "ours", "paper (≈, read off Fig 8/14)"], ent_rows) + [""]

    beyond = beyond_section(df, groups, infos) + baselines_section(df, groups, infos)
    lines += (["### Beyond the paper", ""] + beyond) if beyond else []

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
    titles = {f"group_{g.key}": g.title for g in groups}
    for key, paths in figures.items():
        if key.startswith("group_") and isinstance(paths, list):
            png = next(p for p in paths if str(p).endswith(".png"))
            base = key.removesuffix("_label_entropy").removesuffix("_labels")
            what = {"_labels": " (acquired labels, one trial)", "_label_entropy": " (acquired-label entropy)"}
            title = titles.get(key) or titles.get(base, base) + what[key[len(base) :]]
            lines += [f"**{title}**", "", f"![{title}]({os.path.relpath(png, report_dir)})", ""]
    return lines


def beyond_section(df: pd.DataFrame, groups, infos: dict) -> list[str]:
    """Comparisons beyond the paper (groups with run: beyond), e.g. PowerBALD vs BatchBALD, BALD and random:
    points to 90%, final accuracy and label entropy, selection seconds, and paired per-seed differences."""
    lines = []
    for group in groups:
        if group.run != "beyond" or not any(e in infos for e, _ in group.members):
            continue
        emnist = group.dataset_label == "EMNIST"
        header = ["method", "n", "points to 90%" if not emnist else "final label entropy", "final accuracy"]
        header += ["select s/round", "score s/round"]
        rows = []
        for e, label in group.members:
            if e not in infos:
                rows.append([f"{label} (`{e}`)", 0] + ["no runs"] * 4)
                continue
            part = df[df["experiment"] == e]
            acc = curves.accuracy_curves(df, e).iloc[-1]
            final = (
                f"{fmt_acc(acc['median'])} ({fmt_acc(acc['q25'])}–{fmt_acc(acc['q75'])}) @{int(acc['labelled_size'])}"
            )
            if emnist:
                ent = curves.label_entropy_curves(df, e).iloc[-1]
                third = f"{ent['median']:.3f} ({ent['q25']:.3f}–{ent['q75']:.3f})"
            else:
                m = curves.experiment_marks(df, e, 0.90)[0]
                third = fmt_quartiles(m.q25, m.median, m.q75)
            seconds = [f"{median_seconds(part, c):.2f}" for c in ("select_seconds", "score_seconds")]
            rows.append([f"{label} (`{e}`)", infos[e]["n_runs"], third, final, *seconds])
        lines += [f"#### {group.title}", ""] + table(header, rows) + [""]
        lines += [
            "Quartiles over seeds (q25/median/q75). Seconds: median over rounds, on the 2-core box of each run's "
            "record; runs made while other jobs loaded the box are slower, so compare seconds only between runs made "
            "under the same load.",
            "",
        ]
        power = next((e for e, _ in group.members if "power" in e and e in infos), None)
        for other in [e for e, _ in group.members if e != power and e in infos and "batchbald" in e] if power else []:
            measure = "final_accuracy" if emnist else "points"
            p = checks.paired(checks.per_seed(df, power, measure), checks.per_seed(df, other, measure))
            what = "final accuracy" if emnist else "points to 90%"
            sign = 1 if emnist else -1  # Kirsch et al. 2023: PowerBALD at least as good as BatchBALD
            lines += [
                f"PowerBALD − BatchBALD, {what}, paired by seed: "
                + checks.paired_text(p, "", "+.3f" if emnist else "g").replace("paper's", "PowerBALD's")
                + f" → PowerBALD better: {checks.verdict(p, sign)[1]}.",
                "",
            ]
        ref = paper_numbers.STOCHASTIC_PAPER
        if emnist:
            nums = ", ".join(f"{k} {fmt_acc(v)}" for k, v in ref["final_accuracy_emnist"].items())
            lines += [
                f"Reference, Kirsch et al. (TMLR 2023), their setting ({ref['setting_emnist']}): final accuracy "
                f"{nums}. Not comparable with a reduced profile or the EMNIST stand-in.",
                "",
            ]
        else:
            nums = ", ".join(f"{k} {v}" for k, v in ref["points_to_90_rmnist"].items())
            lines += [
                f"Reference, Kirsch et al. (TMLR 2023), their setting ({ref['setting_rmnist']}): labels to "
                f"reach 90% {nums}. Ours: Repeated MNIST with this profile's settings (see above).",
                "",
            ]
    return lines


def build_report(
    df: pd.DataFrame,
    *,
    runs_root: Path,
    results_dir: Path,
    report_path: Path,
    figures: dict[str, dict],
    groups=FG.GROUPS,
    fidelity_section: bool = True,
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
            groups,
        )
    if fidelity_section:
        lines += fidelity.report_section(results_dir / "fidelity", report_path.parent)
        lines += acquisition_summary.report_section(results_dir / "fidelity" / "acquisition", report_path.parent)
        lines += run_level.report_section(df, lambda e: label_of(e, groups))
        lines += own_states.report_section(results_dir / "fidelity")
    return "\n".join(lines).rstrip() + "\n"
