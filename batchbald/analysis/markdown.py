"""Markdown formatting shared by the report sections: numbers (points, quartiles, accuracies, durations), cells,
tables, and the run-count and hardware texts of an experiment (batchbald.analysis.checks.experiment_info)."""

from __future__ import annotations

import math


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
