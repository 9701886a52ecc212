"""Analysis: committed runs become tables, verdicts, figures and REPORT.md.

- `results`: loading run directories into one tidy frame, the result tables;
- `curves`: accuracy and label-entropy curves, points-to-X% marks (SPEC §5);
- `checks`: the paper's findings checked on a profile's runs (paired verdicts);
- `paper_numbers`: the paper's reported numbers; `official_logs`: the paper's own runs beside ours;
- `figure_groups`: which experiments are drawn together (configs/figures.yaml);
- `plots`: the appendix figures 10-15 and group figures; `report`: REPORT.md.
"""

from batchbald.analysis.curves import accuracy_curves, points_to_threshold
from batchbald.analysis.results import load_runs, write_tables

__all__ = ["accuracy_curves", "load_runs", "points_to_threshold", "write_tables"]
