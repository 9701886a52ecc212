"""Paper-style figures (SPEC §8) for appendix Figs 10-15, drawn from ``batchbald.analysis.results.load_runs`` frames.

Every ``figNN_*`` function takes a frame holding one profile and returns a matplotlib ``Figure``, or None when
none of its runs is present. Members of a group without runs are left out and named in a note under the
plot. Titles name the dataset, the profile and the number of trials. Figures are built without pyplot, so
nothing depends on the interactive backend.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from batchbald.analysis import curves, official_logs
from batchbald.analysis import figure_groups as FG
from batchbald.analysis import results as R

COLORS = ("C2", "C1", "C3", "C0", "C4")
FIGSIZE = (7, 5)
PDF_DPI = 300
PNG_DPI = 150
STYLE = "seaborn-v0_8-colorblind"
FIGURE_NAMES = {
    "fig10": "fig10_rmnist_repetitions",
    "fig11": "fig11_rmnist_others",
    "fig12": "fig12_emnist_examples",
    "fig13": "fig13_emnist_accuracy",
    "fig14": "fig14_emnist_label_entropy",
    "fig15": "fig15_emnist_label_histograms",
}


@contextmanager
def paper_style():
    """The paper's look: seaborn-colorblind colours, grid on."""
    styles = [STYLE] if STYLE in matplotlib.style.available else []
    with matplotlib.style.context(styles), matplotlib.rc_context({"axes.grid": True, "grid.alpha": 0.5}):
        yield


def _profile_of(df: pd.DataFrame) -> str:
    profiles = sorted(df["profile"].dropna().unique()) if len(df) else []
    return ", ".join(profiles) if profiles else "unknown"


def _dataset_of(rows: pd.DataFrame, fallback: str) -> str:
    descriptions = sorted({str(d) for d in rows["dataset_description"].dropna()})
    return descriptions[0] if len(descriptions) == 1 else fallback


def _trials_text(counts: list[int]) -> str:
    if not counts:
        return "no trials"
    lo, hi = min(counts), max(counts)
    if lo == hi:
        return "1 trial each" if lo == 1 else f"{lo} trials each"
    return f"{lo}-{hi} trials per method"


def _n_runs(rows: pd.DataFrame) -> int:
    return rows["run_dir"].nunique()


def _unfinished(rows: pd.DataFrame) -> int:
    runs = rows.drop_duplicates("run_dir")
    return int(runs["status"].isin(["running", "failed"]).sum())


def _label(label: str, rows: pd.DataFrame) -> str:
    text = f"{label} (n={_n_runs(rows)}"
    unfinished = _unfinished(rows)
    return text + (f", {unfinished} unfinished)" if unfinished else ")")


def _band(ax, x, curve: pd.DataFrame, label: str, color: str) -> None:
    """Median line, quartile lines (alpha 0.5) and the band between them (alpha 0.1)."""
    color = to_rgba(color)  # resolve "CN" now, inside the style context, not at save time
    ax.plot(x, curve["median"], color=color, label=label)
    ax.plot(x, curve["q25"], color=color, alpha=0.5, linewidth=0.8)
    ax.plot(x, curve["q75"], color=color, alpha=0.5, linewidth=0.8)
    ax.fill_between(x, curve["q25"], curve["q75"], color=color, alpha=0.1)


def _missing_note(fig: Figure, group: FG.RunGroup, present: set[str]) -> list[str]:
    missing = [f"{label} ({exp})" for exp, label in group.members if exp not in present]
    if missing:
        fig.text(0.01, 0.005, "No runs for: " + "; ".join(missing), fontsize=7, ha="left", va="bottom", wrap=True)
    return missing


def _draw_bands(ax, df: pd.DataFrame, group: FG.RunGroup, curves, x_column: str) -> list[int]:
    """One median line + quartile band per group member with runs; returns the trial counts drawn."""
    counts = []
    for i, (experiment, label) in enumerate(group.members):
        rows = df[df["experiment"] == experiment]
        if rows.empty:
            continue
        curve = curves(rows, experiment)
        if curve.empty:
            continue
        counts.append(_n_runs(rows))
        _band(ax, curve[x_column], curve, _label(label, rows), COLORS[i % len(COLORS)])
    return counts


def _draw_log_bands(ax, group: FG.RunGroup, present: set[str]) -> bool:
    """The official logs of each member with runs, under our curves: grey quartile band, dashed median in the
    member's colour. Returns whether anything was drawn (no logs here: nothing)."""
    drawn = False
    for i, (experiment, _) in enumerate(group.members):
        curve = official_logs.log_curves(experiment) if experiment in present else None
        if curve is None or curve.empty:
            continue
        x = curve["labelled_size"]
        ax.fill_between(x, curve["q25"], curve["q75"], color="grey", alpha=0.18, linewidth=0)
        color = to_rgba(COLORS[i % len(COLORS)])
        ax.plot(x, curve["median"], color=color, linestyle="--", linewidth=0.9, alpha=0.8)
        drawn = True
    if drawn:
        ax.plot([], [], color="grey", linestyle="--", label="paper's logs: median (dashed), quartiles (grey)")
    return drawn


def _accuracy_figure(
    df: pd.DataFrame, group: FG.RunGroup, title: str, *, ylim_bottom: float | None = None
) -> Figure | None:
    present = list(R.iter_group_frames(df, group))
    if not present:
        return None
    with paper_style():
        fig = Figure(figsize=FIGSIZE)
        ax = fig.add_subplot()
        if _profile_of(df) in official_logs.PROFILES_WITH_LOGS:
            _draw_log_bands(ax, group, {e for e, _, _ in present})
        counts = _draw_bands(ax, df, group, curves.accuracy_curves, "labelled_size")
        dataset = _dataset_of(pd.concat([rows for _, _, rows in present]), group.dataset_label)
        ax.set_title(f"{title}\n{dataset}, {_profile_of(df)} profile, {_trials_text(counts)}", fontsize=10)
        ax.set_xlabel("Acquired dataset size")
        ax.set_ylabel("Accuracy")
        if ylim_bottom is not None:
            ax.axhline(
                ylim_bottom, color="grey", linestyle=":", linewidth=0.8, label=f"chance 1/{round(1 / ylim_bottom)}"
            )
            ax.set_ylim(bottom=ylim_bottom * 0.9)
        ax.legend(loc="lower right", fontsize=8)
        _missing_note(fig, group, {e for e, _, _ in present})
        fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def fig10_rmnist_repetitions(df: pd.DataFrame) -> Figure | None:
    """Fig 10: BALD with 0/1/2/4 repetitions and BatchBALD with 4 repetitions (K=10, b=10)."""
    group = FG.GROUPS_BY_KEY["fig10_rmnist_repetitions"]
    return _accuracy_figure(df, group, "Fig 10: RMNIST repetition ablation")


def fig11_rmnist_others(df: pd.DataFrame) -> Figure | None:
    """Fig 11: BatchBALD, BALD, Var Ratios, Mean STD and random on Repeated MNIST (2 repetitions)."""
    group = FG.GROUPS_BY_KEY["fig11_rmnist_others"]
    return _accuracy_figure(df, group, "Fig 11: RMNIST, other acquisition functions")


def _num_classes(rows: pd.DataFrame) -> int:
    values = pd.to_numeric(rows["num_classes"], errors="coerce").dropna()
    return int(values.max()) if len(values) else 47


def fig13_emnist_accuracy(df: pd.DataFrame) -> Figure | None:
    """Fig 13: EMNIST accuracy of BatchBALD, BALD and random (b=5, no initial data); y from chance."""
    group = FG.GROUPS_BY_KEY["emnist"]
    rows = df[df["experiment"].isin([e for e, _ in group.members])]
    chance = 1.0 / _num_classes(rows) if len(rows) else 1.0 / 47
    return _accuracy_figure(df, group, "Fig 13: EMNIST accuracy", ylim_bottom=chance)


def fig14_label_entropy(df: pd.DataFrame, group: FG.RunGroup | None = None, title: str = "Fig 14") -> Figure | None:
    """Fig 14: entropy (nats) of all labels acquired so far per acquisition step; ln(C) marked."""
    group = group or FG.GROUPS_BY_KEY["emnist"]
    present = list(R.iter_group_frames(df, group))
    if not present:
        return None
    with paper_style():
        fig = Figure(figsize=FIGSIZE)
        ax = fig.add_subplot()
        counts = _draw_bands(ax, df, group, curves.label_entropy_curves, "step")
        all_rows = pd.concat([rows for _, _, rows in present])
        classes = _num_classes(all_rows)
        ax.axhline(
            math.log(classes),
            color="grey",
            linestyle="--",
            linewidth=1,
            label=f"maximum ln {classes} = {math.log(classes):.2f}",
        )
        dataset = _dataset_of(all_rows, group.dataset_label)
        ax.set_title(
            f"{title}: entropy of acquired labels\n{dataset}, {_profile_of(df)} profile, {_trials_text(counts)}",
            fontsize=10,
        )
        ax.set_xlabel("Acquisition step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("Entropy (nats)")
        ax.legend(loc="lower right", fontsize=8)
        _missing_note(fig, group, {e for e, _, _ in present})
        fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def fig15_label_histograms(
    df: pd.DataFrame,
    *,
    seed: int | None = None,
    classes: list[str] | None = None,
    group: FG.RunGroup | None = None,
    title: str = "Fig 15",
) -> Figure | None:
    """Fig 15: per method, counts of acquired labels of ONE trial, classes sorted by count.

    The trial is ``seed`` when that method has it, else its lowest seed (the panel title says which and
    how many points). The less-acquired half of the classes is drawn opaque, the rest faded, as in the paper.
    ``classes`` (display characters) label the x ticks when given.
    """
    group = group or FG.GROUPS_BY_KEY["emnist"]
    present = list(R.iter_group_frames(df, group))
    if not present:
        return None
    with paper_style():
        fig = Figure(figsize=(FIGSIZE[0], 2.2 * len(present) + 1.0))
        axes = fig.subplots(len(present), 1, squeeze=False)[:, 0]
        dataset = _dataset_of(pd.concat([rows for _, _, rows in present]), group.dataset_label)
        colour_of = {e: COLORS[i % len(COLORS)] for i, (e, _) in enumerate(group.members)}
        for ax, (experiment, label, rows) in zip(axes, present):
            seeds = sorted(int(s) for s in rows["seed"].unique())
            chosen = seed if seed is not None and seed in seeds else seeds[0]
            run = rows[rows["seed"] == chosen]
            run = run[run["run_dir"] == run["run_dir"].iloc[0]]
            num_classes = _num_classes(run)
            counts = curves.run_label_counts(run, num_classes)
            order = np.argsort(counts, kind="stable")
            half = len(order) // 2
            colours = [to_rgba(colour_of[experiment], 1.0 if i < half else 0.35) for i in range(len(order))]
            ax.bar(np.arange(len(order)), counts[order], color=colours)
            ax.set_xticks(range(len(order)))
            names = [classes[c] if classes and c < len(classes) else str(c) for c in order]
            ax.set_xticklabels(names, fontsize=6)
            ax.set_xlim(-0.7, len(order) - 0.3)
            ax.set_ylabel("Acquisition count")
            note = "" if seed is None or seed == chosen else f" (seed {seed} not present)"
            ax.set_title(f"{label}: seed {chosen}{note}, {int(counts.sum())} acquired points", fontsize=9)
            ax.grid(axis="x", visible=False)
        axes[-1].set_xlabel("Label (sorted by count)")
        fig.suptitle(
            f"{title}: acquired labels of one trial per method\n{dataset}, {_profile_of(df)} profile", fontsize=10
        )
        _missing_note(fig, group, {e for e, _, _ in present})
        fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def _to_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu()
    return np.asarray(array)


def fig12_emnist_examples(dataset, *, profile: str | None = None) -> Figure:
    """Fig 12: the first training image of every class, titled with its character.

    ``dataset``: an object with ``.train.x`` [N, 1, 28, 28] (or [N, 28, 28]), ``.train.y`` [N], ``.classes``
    (display characters) and ``.description``, as returned by ``batchbald.data.load_dataset("emnist", ...)``.
    """
    x = _to_numpy(dataset.train.x)
    y = _to_numpy(dataset.train.y).astype(np.int64)
    classes = list(dataset.classes)
    cols = 8
    rows = max(1, math.ceil(len(classes) / cols))
    with paper_style():
        fig = Figure(figsize=(cols * 0.9, rows * 1.0 + 0.8))
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for cls, name in enumerate(classes):
            where = np.flatnonzero(y == cls)
            ax = axes.ravel()[cls]
            if len(where):
                image = x[where[0]].reshape(x.shape[-2], x.shape[-1])
                ax.imshow(image, cmap="gray", interpolation="nearest")
            ax.set_title(str(name), fontsize=9)
        suffix = f", {profile} profile" if profile else ""
        fig.suptitle(
            f"Fig 12: one example of each of the {len(classes)} classes\n"
            f"{getattr(dataset, 'description', 'EMNIST')}{suffix}",
            fontsize=10,
        )
        top = 1 - 0.75 / fig.get_size_inches()[1]  # room for the two-line title; tight_layout is slow here
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=top, wspace=0.15, hspace=0.45)
    return fig


PAPER_FIGURE_GROUPS = ("fig10_rmnist_repetitions", "fig11_rmnist_others", "emnist")  # drawn as Figs 10-15


def group_figures(df: pd.DataFrame, groups, out_dir: str | Path) -> dict[str, list[Path]]:
    """Per group that is not one of the paper's figures and has runs: accuracy (``group_<key>``), acquired labels
    of one trial per method (``group_<key>_labels``), and for EMNIST groups the acquired-label entropy
    (``group_<key>_label_entropy``). Returns name -> paths."""
    out = {}
    for group in groups:
        if group.key in PAPER_FIGURE_GROUPS or not list(R.iter_group_frames(df, group)):
            continue
        rows = df[df["experiment"].isin([e for e, _ in group.members])]
        emnist = bool((rows["dataset"] == "emnist").any())
        chance = 1.0 / _num_classes(rows) if emnist else None
        fig = _accuracy_figure(df, group, group.title, ylim_bottom=chance)
        out[f"group_{group.key}"] = save_figure(fig, out_dir, f"group_{group.key}")
        fig = fig15_label_histograms(df, group=group, title=group.title)
        out[f"group_{group.key}_labels"] = save_figure(fig, out_dir, f"group_{group.key}_labels")
        if emnist:
            fig = fig14_label_entropy(df, group, title=group.title)
            out[f"group_{group.key}_label_entropy"] = save_figure(fig, out_dir, f"group_{group.key}_label_entropy")
    return out


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``<name>.png`` (dpi 150) and ``<name>.pdf`` (dpi 300) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=PNG_DPI, bbox_inches="tight")  # long titles stay inside the image
    fig.savefig(paths[1], dpi=PDF_DPI, bbox_inches="tight", metadata={"CreationDate": None})  # same data, same bytes
    return paths


def draw_all(
    df: pd.DataFrame, out_dir: str | Path, *, dataset=None, seed: int | None = None
) -> dict[str, list[Path] | str]:
    """Draw every figure for one profile's frame into ``out_dir``; returns name -> paths, or -> a note why
    it was skipped. ``dataset`` (EMNIST) enables fig12 and tick labels of fig15."""
    profile = _profile_of(df)
    classes = list(dataset.classes) if dataset is not None else None
    makers = {
        "fig10": lambda: fig10_rmnist_repetitions(df),
        "fig11": lambda: fig11_rmnist_others(df),
        "fig12": lambda: fig12_emnist_examples(dataset, profile=profile) if dataset is not None else None,
        "fig13": lambda: fig13_emnist_accuracy(df),
        "fig14": lambda: fig14_label_entropy(df),
        "fig15": lambda: fig15_label_histograms(df, seed=seed, classes=classes),
    }
    out = {}
    for key, make in makers.items():
        fig = make()
        if fig is None:
            out[key] = "no EMNIST data to draw examples from" if key == "fig12" else "no runs for this figure"
            continue
        out[key] = save_figure(fig, out_dir, FIGURE_NAMES[key])
    return out
