"""Which experiments are drawn and tabled together: the figure groups of `configs/figures.yaml`.

groups = load_groups()                       # the repository's configs/figures.yaml
groups = load_groups(path)                   # or any file of the same layout
groups = with_ungrouped(groups, experiments_by_dataset)   # + one group per dataset for runs in no group
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "configs" / "figures.yaml"
RUN_SETS = ("figures", "table1", "beyond", "baselines", "none")
DATASET_LABELS = {
    "mnist": "MNIST",
    "repeated_mnist": "Repeated MNIST",
    "emnist": "EMNIST",
    "fashion_mnist": "Fashion-MNIST",
}


@dataclass(frozen=True)
class RunGroup:
    """Experiments shown together: ``members`` are (experiment name, display label) in colour order."""

    key: str
    title: str
    dataset_label: str
    members: tuple[tuple[str, str], ...]
    thresholds: tuple[float, ...]
    run: str = "none"  # which scripts/reproduce.py set runs its experiments (RUN_SETS)


class FigureConfigError(ValueError):
    """A bad figure-group file; the message names the file and the entry."""


def load_groups(path: str | Path = DEFAULT_FILE) -> tuple[RunGroup, ...]:
    """The groups of a figures YAML file, in file order."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise FigureConfigError(f"{path}: cannot read figure groups ({type(e).__name__}: {e})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("groups"), dict):
        raise FigureConfigError(f"{path}: expected a mapping `groups: {{<key>: {{title, members, ...}}}}`")
    groups = []
    for key, entry in raw["groups"].items():
        where = f"{path}: groups.{key}"
        if not isinstance(entry, dict) or not isinstance(entry.get("members"), dict) or not entry["members"]:
            raise FigureConfigError(f"{where}: needs `members`, a mapping experiment -> label")
        thresholds = entry.get("thresholds") or []
        if not all(isinstance(t, (int, float)) and 0 < t <= 1 for t in thresholds):
            raise FigureConfigError(f"{where}.thresholds: numbers in (0, 1], got {thresholds!r}")
        run = entry.get("run", "none")
        if run not in RUN_SETS:
            raise FigureConfigError(f"{where}.run: one of {', '.join(RUN_SETS)}, got {run!r}")
        groups.append(
            RunGroup(
                key=str(key),
                title=str(entry.get("title", key)),
                dataset_label=str(entry.get("dataset_label", "")),
                members=tuple((str(e), str(label)) for e, label in entry["members"].items()),
                thresholds=tuple(float(t) for t in thresholds),
                run=run,
            )
        )
    return tuple(groups)


def experiments_to_run(groups: tuple[RunGroup, ...], sets: tuple[str, ...]) -> list[str]:
    """Experiments of the groups in the given run sets, each once; EMNIST and b=1 first (slowest first, so parallel
    jobs finish together)."""
    seen: list[str] = []
    for group in groups:
        if group.run in sets:
            seen += [e for e, _ in group.members if e not in seen]
    return sorted(seen, key=lambda e: (not (e.startswith("emnist") or e.endswith("_b1")), seen.index(e)))


def with_ungrouped(groups: tuple[RunGroup, ...], experiments_by_dataset: dict[str, list[str]]) -> tuple[RunGroup, ...]:
    """`groups` plus one group per dataset holding the experiments that are in no group (labelled by name)."""
    grouped = {e for g in groups for e, _ in g.members}
    extra = []
    for dataset, experiments in sorted(experiments_by_dataset.items()):
        rest = sorted(e for e in experiments if e not in grouped)
        if rest:
            label = DATASET_LABELS.get(dataset, dataset)
            extra.append(
                RunGroup(
                    key=f"other_{dataset}",
                    title=f"Other experiments: {label}",
                    dataset_label=label,
                    members=tuple((e, e) for e in rest),
                    thresholds=() if dataset == "emnist" else (0.90,),
                )
            )
    return tuple(groups) + tuple(extra)


GROUPS = load_groups() if DEFAULT_FILE.exists() else ()  # the repository's groups
GROUPS_BY_KEY = {g.key: g for g in GROUPS}
