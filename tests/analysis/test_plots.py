"""Tests for batchbald.analysis.plots and scripts/make_figures.py on crafted runs (no training, no data)."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from batchbald.analysis import plots as P
from batchbald.analysis import results as R

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake = _load("_fake_runs_for_plots", HERE / "test_results.py")  # write_run / make_profile
make_figures = _load("_make_figures", HERE.parents[1] / "scripts" / "make_figures.py")


@pytest.fixture(autouse=True)
def low_dpi(monkeypatch):
    """Smaller rasters keep the tests fast; the figures are the same."""
    monkeypatch.setattr(P, "PNG_DPI", 50)
    monkeypatch.setattr(P, "PDF_DPI", 72)


@pytest.fixture(scope="module")
def full_df(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return R.load_runs(fake.make_profile(root, seeds=(1, 2)))


def _titles(fig) -> str:
    return " ".join(
        [ax.get_title() for ax in fig.axes]
        + [t.get_text() for t in fig.texts]
        + ([fig._suptitle.get_text()] if fig._suptitle else [])
    )


def test_draw_all_writes_every_figure(full_df, tmp_path):
    data = SimpleNamespace(
        train=SimpleNamespace(x=np.random.default_rng(0).normal(size=(94, 1, 28, 28)), y=np.arange(94) % 47),
        classes=[str(i) for i in range(47)],
        description="Fake EMNIST",
    )
    out = P.draw_all(full_df, tmp_path, dataset=data)
    assert set(out) == set(P.FIGURE_NAMES)
    for key, paths in out.items():
        assert isinstance(paths, list), (key, paths)
        assert [p.suffix for p in paths] == [".png", ".pdf"]
        assert all(p.exists() and p.stat().st_size > 1000 for p in paths)


def test_titles_name_profile_dataset_and_trials(full_df):
    fig = P.fig11_rmnist_others(full_df)
    text = _titles(fig)
    assert "quick profile" in text and "Repeated MNIST (3 copies)" in text and "2 trials each" in text
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["BatchBALD (n=2)", "BALD (n=2)", "Var Ratios (n=2)", "Mean STD (n=2)", "Random (b=5) (n=2)"]
    assert fig.axes[0].get_xlabel() == "Acquired dataset size" and fig.axes[0].get_ylabel() == "Accuracy"
    assert tuple(fig.get_size_inches()) == P.FIGSIZE
    assert "EMNIST stand-in" in _titles(P.fig13_emnist_accuracy(full_df))


def test_fig14_marks_maximum_entropy(full_df):
    fig = P.fig14_label_entropy(full_df)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Acquisition step"
    flat = [line for line in ax.get_lines() if np.allclose(line.get_ydata(), math.log(47))]
    assert flat, "ln(47) line missing"
    # the BatchBALD median line: entropy of 5 distinct labels after the first step
    assert ax.get_lines()[0].get_ydata()[0] == pytest.approx(math.log(5))


def test_fig15_one_trial_per_method(full_df):
    fig = P.fig15_label_histograms(full_df)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "BatchBALD: seed 1, 100 acquired points"
    heights = [p.get_height() for p in fig.axes[1].patches]
    assert heights == sorted(heights) and sum(heights) == 100 and len(heights) == 47
    fig = P.fig15_label_histograms(full_df, seed=2)
    assert fig.axes[0].get_title().startswith("BatchBALD: seed 2")
    fig = P.fig15_label_histograms(full_df, seed=99)
    assert "seed 1 (seed 99 not present)" in fig.axes[0].get_title()


def test_missing_groups_are_skipped_with_a_note(tmp_path):
    runs = fake.make_profile(
        tmp_path / "runs",
        seeds=(1,),
        skip=("rmnist_var_ratios", "rmnist_mean_std", "emnist_batchbald", "emnist_bald", "emnist_random"),
    )
    df = R.load_runs(runs)
    out = P.draw_all(df, tmp_path / "figs")
    assert isinstance(out["fig11"], list) and all(p.stat().st_size > 0 for p in out["fig11"])
    for key in ("fig12", "fig13", "fig14", "fig15"):
        assert isinstance(out[key], str), key
        assert not (tmp_path / "figs" / f"{P.FIGURE_NAMES[key]}.png").exists()
    note = _titles(P.fig11_rmnist_others(df))
    assert "No runs for: Var Ratios (rmnist_var_ratios); Mean STD (rmnist_mean_std)" in note
    empty = df.iloc[0:0]
    assert all(isinstance(v, str) for v in P.draw_all(empty, tmp_path / "none").values())


def test_fig12_with_fake_dataset_and_torch_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    classes = ["0", "1", "A", "b"]
    data = SimpleNamespace(
        train=SimpleNamespace(x=torch.rand(8, 1, 28, 28), y=torch.tensor([0, 1, 2, 3] * 2)),
        classes=classes,
        description="EMNIST stand-in (split 'standin')",
    )
    fig = P.fig12_emnist_examples(data, profile="quick")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == classes
    assert "EMNIST stand-in" in fig._suptitle.get_text() and "quick profile" in fig._suptitle.get_text()
    paths = P.save_figure(fig, tmp_path, "fig12")
    assert all(p.stat().st_size > 0 for p in paths)


# ------------------------------------------------------------------------------------------ the CLI / report


def _report(tmp_path, *args) -> str:
    results = tmp_path / "results"
    code = make_figures.main(
        [
            "--runs",
            str(tmp_path / "runs"),
            "--results-dir",
            str(results),
            "--data-root",
            str(tmp_path / "no-data"),
            *args,
        ]
    )
    assert code == 0
    return (results / "REPORT.md").read_text()


def _verdict(report: str, key: str, profile: str | None = None) -> str:
    if profile is not None:
        report = report.split(f"## Profile `{profile}`", 1)[1].split("\n## Profile", 1)[0]
    match = re.search(rf"^- \({key}\) .*?: \*\*([^*]+)\*\*", report, re.M)
    assert match, f"acceptance line ({key}) missing"
    return match.group(1)


def test_report_when_batchbald_is_better(tmp_path):
    fake.make_profile(tmp_path / "runs", seeds=(1, 2))
    report = _report(tmp_path, "--no-figures")
    assert report.startswith("# ") and "Generated file — do not edit by hand" in report.splitlines()[2]
    two_seeds = "not shown at this scale (n=2 < 5 seeds)"
    assert [_verdict(report, k) for k in "ab"] == [two_seeds, two_seeds]
    assert _verdict(report, "c") == "not shown at this scale"
    assert "- quick: 2 seeds, pool subset" in report  # profile notes from run.json
    assert "| BatchBALD (`rmnist_batchbald`) | 2 | 90/90/100 | 120/120/130 |" in report  # nearest: median of 2 = lower
    assert "| Fake CPU (cpu) | 2.0 min |" in report  # hardware and summed compute (2 runs x 60 s)
    assert (tmp_path / "results" / "quick" / "tables" / "thresholds.csv").exists()


def test_report_lists_each_version_of_the_profile_notes_with_its_runs(tmp_path):
    fake.make_profile(tmp_path / "runs", seeds=(1,))
    for run_json in (tmp_path / "runs").rglob("emnist_*/**/run.json"):  # a later sweep changed the EMNIST settings
        meta = json.loads(run_json.read_text())
        meta["config"]["profile_notes"] = "quick: EMNIST pool 200/class"
        run_json.write_text(json.dumps(meta))
    report = _report(tmp_path, "--no-figures")
    assert "- Runs of `emnist_bald`, `emnist_batchbald`, `emnist_random`: quick: EMNIST pool 200/class" in report
    old = next(line for line in report.splitlines() if line.endswith(": quick: 2 seeds, pool subset"))
    assert "`rmnist_batchbald`" in old and "emnist" not in old


def test_report_when_batchbald_is_worse(tmp_path):
    fake.make_profile(tmp_path / "runs", seeds=(1, 2, 3, 4, 5), batchbald_better=False)
    report = _report(tmp_path, "--no-figures")
    assert [_verdict(report, k) for k in "ac"] == ["reversed"] * 2
    assert _verdict(report, "b").startswith("reversed")


def test_report_sections_per_profile_with_figures(tmp_path):
    fake.make_profile(tmp_path / "runs", "quick", seeds=(1,))
    fake.make_profile(
        tmp_path / "runs",
        "paper",
        seeds=(1,),
        batchbald_better=False,
        notes=None,
        skip=("emnist_batchbald", "emnist_bald", "emnist_random"),
    )
    report = _report(tmp_path)
    assert report.index("## Profile `quick`") < report.index("## Profile `paper`")
    one_seed = "not shown at this scale (n=1 < 5 seeds)"
    assert [_verdict(report, k, "quick") for k in "ab"] == [one_seed, one_seed]
    assert [_verdict(report, k, "paper") for k in "ac"] == [one_seed, "not checked"]
    assert "paper profile: the paper's settings" in report  # no profile_notes -> from the profile name
    assert "![Fig 10: RMNIST repetition ablation" in report and "(figures/quick/fig10_rmnist_repetitions.png)" in report
    assert "Fig 12: one example of each EMNIST class: skipped" in report
    assert "Fig 13: EMNIST accuracy: skipped — no runs for this figure" in report.split("## Profile `paper`")[1]
    figs = tmp_path / "results" / "figures"
    assert (figs / "quick" / "fig15_emnist_label_histograms.pdf").stat().st_size > 0
    assert not (figs / "paper" / "fig13_emnist_accuracy.png").exists()
    # redrawing only one profile keeps the other's section (and its figures) in the report
    again = _report(tmp_path, "--profile", "paper")
    assert "## Profile `quick`" in again and "(figures/quick/fig10_rmnist_repetitions.png)" in again


def test_no_runs_leaves_the_report_alone(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "REPORT.md").write_text("old")
    assert make_figures.main(["--runs", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]) == 1
    assert (tmp_path / "results" / "REPORT.md").read_text() == "old"


# ------------------------------------------------------------------------------------------ figure groups


def test_figure_groups_from_config(tmp_path):
    from batchbald.analysis import figure_groups as FG

    keys = [g.key for g in FG.GROUPS]
    assert keys[:4] == ["fig10_rmnist_repetitions", "fig11_rmnist_others", "emnist", "table1_mnist"]
    assert FG.GROUPS_BY_KEY["beyond_rmnist"].members[1] == ("rmnist_power_bald", "PowerBALD")
    bad = tmp_path / "bad.yaml"
    for text, message in (
        ("groups: [1, 2]", "expected a mapping `groups:"),
        ("groups:\n  g: {title: x}", "groups.g: needs `members`"),
        ("groups:\n  g: {members: {e: E}, thresholds: [90]}", "groups.g.thresholds: numbers in (0, 1]"),
        (
            "groups:\n  g: {members: {e: E}, run: sometimes}",
            "groups.g.run: one of figures, table1, beyond, baselines, none",
        ),
        ("groups: {g: [", "cannot read figure groups"),
    ):
        bad.write_text(text)
        with pytest.raises(FG.FigureConfigError, match=re.escape(message)):
            FG.load_groups(bad)
    extra = FG.with_ungrouped(FG.GROUPS, {"emnist": ["emnist_bald", "emnist_mine"], "mnist": ["mnist_new"]})
    assert [(g.key, g.members, g.thresholds) for g in extra[len(FG.GROUPS) :]] == [
        ("other_emnist", (("emnist_mine", "emnist_mine"),), ()),
        ("other_mnist", (("mnist_new", "mnist_new"),), (0.9,)),
    ]


def test_figures_for_any_sweep(tmp_path):
    """A sweep of experiments the figure config does not know: grouped by dataset, drawn, reported beside it."""
    runs = tmp_path / "my_sweep"
    for experiment, tau in (("my_bald", 60), ("my_margin", 40)):
        for seed in (1, 2):
            sizes = list(range(20, 201, 10))
            fake.write_run(
                runs, profile="quick", experiment=experiment, seed=seed, sizes=sizes, accuracies=fake.curve(sizes, tau)
            )
    assert make_figures.main(["--runs", str(runs), "--no-examples"]) == 0
    report = (runs / "report" / "REPORT.md").read_text()
    assert "![Other experiments: Repeated MNIST](figures/quick/group_other_repeated_mnist.png)" in report
    assert (runs / "report" / "figures" / "quick" / "group_other_repeated_mnist.pdf").exists()
    assert "| `my_margin` | 0.9" not in report and "`my_margin`" in report
    assert "Fidelity to the official logs" not in report  # that section belongs to the repository's report
    assert "![Other experiments: Repeated MNIST (acquired labels, one trial)]" in report

    # the same runs, one curve per value of a run key
    assert make_figures.main(["--runs", str(runs), "--no-examples", "--group-by", "acquisition"]) == 0
    assert "`acquisition=bald`" in (runs / "report" / "REPORT.md").read_text()
    assert make_figures.main(["--runs", str(runs), "--group-by", "colour"]) == 2


def test_beyond_the_paper_section(tmp_path):
    runs = tmp_path / "runs"
    fake.make_profile(runs, seeds=(1, 2, 3), skip=("emnist_batchbald", "emnist_bald", "emnist_random"))
    for seed in (1, 2, 3):
        sizes = list(range(20, 301, 10))
        fake.write_run(
            runs,
            profile="quick",
            experiment="rmnist_power_bald",
            seed=seed,
            sizes=sizes,
            accuracies=fake.curve(sizes, 50 * (1 + 0.05 * seed)),
        )
    report = _report(tmp_path, "--no-examples")
    section = report.split("\n### Beyond the paper\n", 1)[1].split("\n### ", 1)[0]
    assert report.count("#### Beyond the paper: PowerBALD on RMNIST") == 1
    assert "| PowerBALD (`rmnist_power_bald`) | 3 |" in section
    assert "PowerBALD − BatchBALD, points to 90%, paired by seed: per-seed differences 1: " in section
    assert "labels to reach 90% PowerBALD 100, BatchBALD 110, BALD 225" in section
    assert "group_beyond_rmnist.png" in report and "Beyond the paper: PowerBALD on EMNIST" not in section


def test_trials_text_counts_in_words():
    assert P._trials_text([1, 1]) == "1 trial each"
    assert P._trials_text([3, 3]) == "3 trials each"
    assert P._trials_text([2, 5, 3]) == "2-5 trials per method"
    assert P._trials_text([]) == "no trials"


def _official_log(path: Path, group: str, accuracies_by_seed: dict[int, list[float]]) -> None:
    from batchbald.data import PAPER_INITIAL_MNIST_INDICES

    runs = []
    for seed, accuracies in accuracies_by_seed.items():
        its = [
            {
                "num_epochs": 4,
                "test_metrics": {"accuracy": a, "nll": 1.0},
                "chosen_samples": list(range(i * 10, i * 10 + 10)),
            }
            for i, a in enumerate(accuracies)
        ]
        runs.append(
            {
                "run": f"{group}_{seed}",
                "args": {"seed": seed},
                "initial_samples": list(PAPER_INITIAL_MNIST_INDICES),
                "iterations": its,
            }
        )
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{group}.json").write_text(__import__("json").dumps({"group": group, "runs": runs}))


def test_paper_profile_draws_the_official_logs_and_tables_their_same_seed_marks(tmp_path, monkeypatch):
    from matplotlib.collections import PolyCollection

    logs = tmp_path / "logs"
    # seed 211889 reaches 90% at 70 labels (mark 60); seed 5 at 30 (mark 20): only 211889 is one of our seeds
    _official_log(
        logs,
        "rmnist_w_noise_multibald_bald_k10_b10",
        {211889: [0.80 + 0.02 * i for i in range(12)], 5: [0.85 + 0.05 * i for i in range(3)] + [0.99] * 9},
    )
    monkeypatch.setenv("BATCHBALD_OFFICIAL_LOGS", str(logs))
    fake.make_profile(
        tmp_path / "runs",
        "paper",
        seeds=(211889, 1),
        notes=None,
        skip=("emnist_batchbald", "emnist_bald", "emnist_random"),
    )
    fake.make_profile(tmp_path / "runs", "quick", seeds=(211889,))
    df = R.load_runs(tmp_path / "runs")
    paper = P.fig11_rmnist_others(df[df["profile"] == "paper"])
    ax = paper.axes[0]
    assert "paper's logs: median (dashed), quartiles (grey)" in [t.get_text() for t in ax.get_legend().get_texts()]
    grey = [
        c
        for c in ax.collections
        if isinstance(c, PolyCollection) and c.get_facecolor()[0][:3].tolist() == [0.5019607843137255] * 3
    ]
    assert len(grey) == 1  # BatchBALD's logs only: the other members have no log file here
    quick = P.fig11_rmnist_others(df[df["profile"] == "quick"])
    assert "paper's logs" not in " ".join(t.get_text() for t in quick.axes[0].get_legend().get_texts())
    report = _report(tmp_path)
    paper_section = report.split("## Profile `paper`")[1]
    lines = paper_section.splitlines()
    at = next(i for i, line in enumerate(lines) if "90% logs, same seeds" in line and "85%" not in line)  # Fig 11's
    header = lines[at]
    row = next(line for line in lines[at:] if line.startswith("| BatchBALD (`rmnist_batchbald`)"))
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["90% logs, same seeds"] == "60/60/60 (1)"
    assert "logs, same seeds" not in report.split("## Profile `paper`")[0]  # the quick profile has no logs column


def test_baselines_section_pairs_every_method_with_batchbald(tmp_path):
    """Margin crafted faster than BatchBALD on all 6 seeds (better), EPIG slower on all (worse), CoreSet the same
    curve (tie); BADGE has no runs and a running CoreSet seed is left out of the marks."""
    runs = tmp_path / "runs"
    seeds = (1, 2, 3, 4, 5, 6)
    fake.make_profile(runs, seeds=seeds, skip=("emnist_batchbald", "emnist_bald", "emnist_random"))
    sizes = list(range(20, 301, 10))
    for experiment, tau in (("rmnist_margin", 20), ("rmnist_epig", 120), ("rmnist_coreset", 45)):
        for seed in seeds:
            fake.write_run(
                runs,
                profile="quick",
                experiment=experiment,
                seed=seed,
                sizes=sizes,
                accuracies=fake.curve(sizes, tau * (1 + 0.05 * seed)),
            )
    fake.write_run(
        runs,
        profile="quick",
        experiment="rmnist_coreset",
        seed=7,
        sizes=sizes[:3],
        accuracies=[0.5] * 3,
        status="running",
    )
    report = _report(tmp_path, "--no-examples")
    section = report.split("#### Beyond the paper: baselines on RMNIST (b=10)\n", 1)[1].split("\n#### ", 1)[0]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines() if line.startswith("| ")}
    assert rows["BatchBALD (`rmnist_batchbald`)"].endswith("| — |")
    assert rows["Margin (`rmnist_margin`)"].endswith(", better |") and "(n=6)" in rows["Margin (`rmnist_margin`)"]
    assert rows["EPIG (`rmnist_epig`)"].endswith(", worse |")
    assert rows["CoreSet (`rmnist_coreset`)"].endswith("+0 [+0, +0] (n=6), tie (interval includes 0) |")
    assert (
        rows["BADGE (`rmnist_badge`)"]
        == "| BADGE (`rmnist_badge`) | 0 | no runs | no runs | no runs | no runs | no runs |"
    )
    assert "Reference, their setting (Repeated MNIST x4, K=100" in section and "margin (10) 86" in section
    assert "#### Beyond the paper: baselines on the EMNIST stand-in (b=5)" not in report  # no runs at all
