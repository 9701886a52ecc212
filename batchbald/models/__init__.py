"""Models: the paper's MC-dropout CNNs and consistent MC-dropout scoring.

- `cnn`: MnistCNN and EmnistCNN (SPEC §4) with their exact fast scoring path, `build_model`;
- `dropout`: the MC-dropout layer, a model's K consistent masks, finding and seeding dropout layers;
- `scoring`: `draw_masks` and `mc_log_probs` (the fast path, or `generic` for any other model), `forward_masked`;
- `generic`: consistent MC dropout for any user model with standard dropout layers (K plain passes);
- `features`: the deterministic net's penultimate features and log-probs (CoreSet's and BADGE's inputs).
Configs name the built-ins as `batchbald.models.MnistCNN` / `batchbald.models.EmnistCNN`.
"""

from batchbald.models.cnn import MODEL_NAMES, MODELS, EmnistCNN, MnistCNN, build_model
from batchbald.models.dropout import DropoutMasks, MCDropout, dropout_generator, dropout_layers
from batchbald.models.features import DeterministicOutputs, FeatureError, deterministic_outputs, last_linear
from batchbald.models.scoring import default_scoring_batch_size, draw_masks, forward_masked, mc_log_probs, model_device

__all__ = [
    "MODEL_NAMES",
    "MODELS",
    "DeterministicOutputs",
    "DropoutMasks",
    "EmnistCNN",
    "FeatureError",
    "MCDropout",
    "MnistCNN",
    "build_model",
    "default_scoring_batch_size",
    "deterministic_outputs",
    "draw_masks",
    "dropout_generator",
    "dropout_layers",
    "forward_masked",
    "last_linear",
    "mc_log_probs",
    "model_device",
]
