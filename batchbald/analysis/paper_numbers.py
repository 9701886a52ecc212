"""The paper's reported numbers (SPEC §9) and the stochastic-acquisition paper's, as reference values for tables.

Quartiles are (q25, median, q75); nan where a paper gives only the median; inf = never reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INF = math.inf
NAN = math.nan

Quartiles = tuple[float, float, float]  # (q25, median, q75); nan where the paper gives only the median

# Our experiment name -> where its paper row comes from.
PAPER_ROWS: dict[str, str] = {
    "mnist_batchbald_b10": "Table 1: BatchBALD (b=10, K=100)",
    "mnist_bald_b10": "Table 1: BALD (b=10, K=100)",
    "mnist_bald_b1": "NB: BALD (b=1, K=100)",
    "rmnist_rep0_bald": "App. D: BALD, 0 reps",
    "rmnist_rep1_bald": "App. D: BALD, 1 rep",
    "rmnist_rep2_bald": "App. D / Fig 2: BALD, 2 reps (= RMNIST)",
    "rmnist_rep4_bald": "App. D: BALD, 4 reps",
    "rmnist_rep4_batchbald": "App. D: BatchBALD, 4 reps",
    "rmnist_batchbald": "Fig 2 / App. E: BatchBALD",
    "rmnist_random": "Fig 2 / App. E: Random (b=5)",
    "rmnist_var_ratios": "App. E: Var Ratios",
    "rmnist_mean_std": "App. E: Mean STD",
    "emnist_batchbald": "Fig 7/13: BatchBALD",
    "emnist_bald": "Fig 7/13: BALD",
    "emnist_random": "Fig 13: Random",
}

# Points-to-threshold marks (SPEC §9, computed with the §5 rule), q25/median/q75; inf = never reached.
PAPER_MARKS: dict[str, dict[float, Quartiles]] = {
    "mnist_batchbald_b10": {0.90: (70, 90, 110), 0.95: (190, 200, 230)},
    "mnist_bald_b10": {0.90: (120, 120, 170), 0.95: (250, 250, INF)},
    "mnist_bald_b1": {0.90: (85, 96, 101), 0.95: (197, 206, 226)},
    "rmnist_rep0_bald": {0.85: (70, 90, 100), 0.90: (120, 120, 160), 0.95: (250, 270, 290)},
    "rmnist_rep1_bald": {0.85: (80, 100, 130), 0.90: (160, 160, 190), 0.95: (INF, INF, INF)},
    "rmnist_rep2_bald": {0.85: (140, 170, 180), 0.90: (260, 280, INF), 0.95: (INF, INF, INF)},
    "rmnist_rep4_bald": {0.85: (130, 160, 200), 0.90: (240, 300, INF), 0.95: (INF, INF, INF)},
    "rmnist_rep4_batchbald": {0.85: (50, 60, 70), 0.90: (90, 100, 110), 0.95: (250, 260, 270)},
    "rmnist_batchbald": {0.90: (120, 120, 130), 0.95: (260, 260, 280)},
    "rmnist_random": {0.90: (185, 195, 225), 0.95: (INF, INF, INF)},
    "rmnist_var_ratios": {0.90: (110, 110, 230), 0.95: (INF, INF, INF)},
    "rmnist_mean_std": {0.90: (180, 190, 200), 0.95: (INF, INF, INF)},
}
# Table 1's reference row (Gal et al. 2017, not rerun by the paper): one number per threshold.
PAPER_GAL_2017 = {0.90: 145, 0.95: 335}
# Other numbers in the paper's logs without an experiment of ours (SPEC §9, App. D "also in the logs").
PAPER_EXTRA_MARKS = {
    "rmnist_rep1_batchbald": {0.90: (80, 90, 100)},
    "rmnist_rep1_random": {0.90: (150, 160, 170)},
    "rmnist_rep4_random": {0.90: (140, 140, 180)},
}


@dataclass(frozen=True)
class PaperAccuracy:
    """Paper test accuracy at 100 and 200 labelled points and at the end (``final_size`` points)."""

    at_100: Quartiles
    at_200: Quartiles
    final: Quartiles
    final_size: int


PAPER_ACCURACY: dict[str, PaperAccuracy] = {
    "mnist_batchbald_b10": PaperAccuracy((0.883, 0.896, 0.901), (0.946, 0.947, 0.948), (0.954, 0.959, 0.961), 280),
    "mnist_bald_b10": PaperAccuracy((NAN, 0.861, NAN), (NAN, 0.920, NAN), (NAN, 0.944, NAN), 280),
    "mnist_bald_b1": PaperAccuracy((NAN, 0.891, NAN), (NAN, 0.938, NAN), (NAN, 0.961, NAN), 295),
    "rmnist_batchbald": PaperAccuracy((NAN, 0.884, NAN), (NAN, 0.925, NAN), (NAN, 0.950, NAN), 280),
    "rmnist_rep2_bald": PaperAccuracy((NAN, 0.771, NAN), (NAN, 0.856, NAN), (NAN, 0.891, NAN), 280),
    "rmnist_random": PaperAccuracy((NAN, 0.814, NAN), (NAN, 0.881, NAN), (NAN, 0.910, NAN), 280),
    "emnist_batchbald": PaperAccuracy((NAN, 0.306, NAN), (NAN, 0.419, NAN), (NAN, 0.517, NAN), 295),
    "emnist_random": PaperAccuracy((NAN, 0.285, NAN), (NAN, 0.417, NAN), (NAN, 0.482, NAN), 295),
    "emnist_bald": PaperAccuracy((NAN, 0.255, NAN), (NAN, 0.378, NAN), (NAN, 0.453, NAN), 295),
}
# Final acquired-label entropy on EMNIST (Fig 8/14, nats, median at acquisition 60).
PAPER_FINAL_LABEL_ENTROPY = {"emnist_batchbald": 3.79, "emnist_bald": 3.72, "emnist_random": 3.785}


# Kirsch et al., "Stochastic Batch Acquisition: A Simple Baseline for Deep Active Learning" (TMLR 2023), from that
# paper's logs, in *its* settings (not ours): Repeated MNIST x4 with b=5 (labels to reach 90%, median), and EMNIST
# balanced (final accuracy; PowerBALD with b=10, BatchBALD with b=5).
STOCHASTIC_PAPER = {
    "setting_rmnist": "Repeated MNIST x4, b=5",
    "points_to_90_rmnist": {"PowerBALD": 100, "BatchBALD": 110, "BALD": 225},
    "setting_emnist": "EMNIST balanced (PowerBALD b=10, BatchBALD b=5)",
    "final_accuracy_emnist": {"PowerBALD": 0.525, "BatchBALD": 0.489, "BALD": 0.440},
}
