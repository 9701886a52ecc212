"""BatchBALD reproduction. The active-learning core: `acquisition/`, `models/`, `data/`, and at the top the run's own
path (`loop`, `train`, `config`, `plugins`, `tracking`, `numerics`); `analysis/` turns runs into tables, figures and
the report; `fidelity/` replays the paper's official logs."""
