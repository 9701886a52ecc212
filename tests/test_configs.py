"""Every config composes, resolves and validates; bad values fail with one clear line."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from batchbald.config import ConfigError, check_sizes, validate_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


def compose_dict(overrides=(), return_hydra_config=False):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config)
    return cfg


def resolved(overrides=()):
    return OmegaConf.to_container(compose_dict(overrides), resolve=True)


def test_default_config_validates():
    cfg = resolved()
    validate_config(cfg)
    assert cfg["dataset"]["name"] == "mnist" and cfg["acquisition"]["name"] == "batchbald"


def test_there_is_an_experiment_for_every_figure_group():
    expected = {
        "rmnist_rep0_bald",
        "rmnist_rep1_bald",
        "rmnist_rep2_bald",
        "rmnist_rep4_bald",
        "rmnist_rep4_batchbald",
        "rmnist_batchbald",
        "rmnist_var_ratios",
        "rmnist_mean_std",
        "rmnist_random",
        "emnist_batchbald",
        "emnist_bald",
        "emnist_random",
        "mnist_batchbald_b10",
        "mnist_bald_b10",
        "mnist_bald_b1",
    }
    assert expected <= set(EXPERIMENTS)


@pytest.mark.parametrize("profile", ["paper", "quick"])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_validates(experiment, profile):
    cfg = resolved([f"experiment={experiment}", f"profile={profile}"])
    validate_config(cfg)
    assert cfg["experiment_name"] == experiment
    assert cfg["wandb"]["group"] == experiment
    if experiment.startswith("emnist"):
        assert cfg["model"]["name"] == "emnist_cnn" and cfg["acquisition"]["batch_size"] == 5
        assert cfg["dataset"]["initial"] == 0
        assert cfg["dataset"]["split"] == ("balanced" if profile == "paper" else "standin")
    elif experiment.startswith("fashion"):  # a dataset factory: no paper initial set
        assert cfg["dataset"]["_target_"] == "batchbald.data.fashion_mnist.fashion_mnist"
        assert cfg["model"]["name"] == "mnist_cnn" and cfg["dataset"]["initial"] == 2
    else:
        assert cfg["model"]["name"] == "mnist_cnn" and cfg["dataset"]["initial"] == "paper"
    if cfg["acquisition"]["name"] == "epig":
        assert cfg["acquisition"]["target"] == {"set": "heldout", "size": 1000, "per_round": 100}


def test_paper_settings_follow_spec():
    rmnist = resolved(["experiment=rmnist_batchbald"])
    assert rmnist["dataset"]["repetitions"] == 2 and rmnist["mc_samples"] == 10
    assert rmnist["dataset"]["validation_size"] == 3072 and rmnist["train"]["max_epochs"] == 40
    assert resolved(["experiment=rmnist_random"])["acquisition"]["batch_size"] == 5
    assert resolved(["experiment=rmnist_rep0_bald"])["dataset"]["validation_size"] == 1024
    mnist = resolved(["experiment=mnist_bald_b1"])
    assert mnist["mc_samples"] == 100 and mnist["acquisition"]["batch_size"] == 1 and mnist["train"]["max_epochs"] == 30
    emnist = resolved(["experiment=emnist_batchbald"])
    assert emnist["train"]["epoch_samples"] == 20224 and emnist["dataset"]["validation_size"] == 16384


MAIN_RUN_GROUPS = {
    "rmnist_batchbald",
    "rmnist_rep2_bald",
    "rmnist_random",
    "mnist_bald_b1",
    "mnist_bald_b10",
    "mnist_batchbald_b10",
    "emnist_bald",
    "emnist_batchbald",
    "emnist_random",
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_paper_profile_stops_each_group_as_its_logs_did(experiment):
    """Main-run groups score the labelled set with the run's K-sample MC prediction on the paper profile (README
    "Training protocol"); the ablation groups and every quick-profile group score the held-out validation set with
    the deterministic net, as the released code does."""
    paper = resolved([f"experiment={experiment}", "profile=paper"])
    quick = resolved([f"experiment={experiment}", "profile=quick"])["train"]
    main = experiment in MAIN_RUN_GROUPS
    assert paper["train"]["validation_set"] == ("labelled" if main else "heldout")
    assert paper["train"]["validation_samples"] == (paper["mc_samples"] if main else 0)
    assert (quick["validation_set"], quick["validation_samples"]) == ("heldout", 0)


def test_validation_set_can_be_overridden_on_the_command_line():
    cfg = resolved(["experiment=rmnist_batchbald", "train.validation_set=heldout"])
    assert cfg["train"]["validation_set"] == "heldout"
    assert resolved([])["train"]["validation_set"] == "heldout"
    cfg = resolved(["experiment=mnist_batchbald_b10", "profile=paper", "train.validation_samples=0"])
    assert (cfg["train"]["validation_set"], cfg["train"]["validation_samples"]) == ("labelled", 0)


@pytest.mark.parametrize("launcher", ["local", "slurm", "submitit_local"])
def test_launchers_compose(launcher):
    cfg = compose_dict([f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert "_target_" in cfg.hydra.launcher


@pytest.mark.parametrize(
    "override, message",
    [
        ("budget=0", "budget must be an integer >= 1"),
        ("acquisition.batch_size=-3", "acquisition.batch_size must be an integer >= 1"),
        ("acquisition.batch_size=500", "must not exceed budget"),
        ("mc_samples=0", "mc_samples must be"),
        ("device=tpu", "device must be one of auto, cpu, cuda"),
        ("wandb.mode=sometimes", "wandb.mode must be one of"),
        ("target_accuracy=1.5", "target_accuracy must be null or a number in (0, 1]"),
        ("dataset.validation_size=-1", "dataset.validation_size must be"),
        ("dataset.name=cifar", "dataset.name must be one of mnist, repeated_mnist, emnist"),
        ("acquisition.name=coreset", "acquisition.name='coreset' does not match acquisition._target_="),
        ("acquisition.name=bald", "choose a built-in with acquisition=<random, bald"),
        ("model.name=resnet", "model.name='resnet' does not match model._target_=batchbald.models.MnistCNN"),
        ("train.max_epochs=0", "train.max_epochs must be"),
        ("train.validation_set=test", "train.validation_set must be one of heldout, labelled"),
    ],
)
def test_bad_values_fail_with_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        validate_config(resolved([override]))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_targets_and_labels():
    """Built-ins named without `_target_` get theirs; a user target gets its last path component as label."""
    cfg = resolved([])
    del cfg["acquisition"]["_target_"], cfg["model"]["_target_"]
    validate_config(cfg)
    assert cfg["acquisition"]["_target_"] == "batchbald.acquisition.batchbald_acquire"
    assert cfg["model"]["_target_"] == "batchbald.models.MnistCNN"
    cfg = resolved(["acquisition._target_=mypkg.acq.my_score", "model._target_=mypkg.nets.TinyNet"])
    validate_config(cfg)
    assert cfg["acquisition"]["name"] == "my_score" and cfg["model"]["name"] == "TinyNet"
    cfg = resolved(["acquisition._target_=mypkg.acq.my_score", "acquisition.name=mine"])
    validate_config(cfg)
    assert cfg["acquisition"]["name"] == "mine"
    cfg = resolved([])
    del cfg["model"]["_target_"]
    cfg["model"]["name"] = "vit"
    with pytest.raises(ConfigError, match="model.name must be one of mnist_cnn, emnist_cnn, or set model._target_"):
        validate_config(cfg)


def test_budget_larger_than_pool():
    with pytest.raises(ConfigError, match=r"budget \(500\) is larger than the pool \(100 points"):
        check_sizes(500, 100, 1024)
    check_sizes(100, 100, 1024)


def test_stochastic_acquisition_config():
    cfg = resolved(["experiment=rmnist_power_bald"])
    validate_config(cfg)
    assert cfg["acquisition"] == {
        "_target_": "batchbald.acquisition.bald_scores",
        "name": "bald",
        "batch_size": 10,
        "num_samples": None,
        "stochastic": "power",
        "coldness": 1.0,
    }
    assert resolved(["experiment=emnist_power_bald"])["acquisition"]["batch_size"] == 5
    for override, message in (
        ("acquisition.stochastic=gibbs", "acquisition.stochastic must be null or one of"),
        ("acquisition.coldness=-2", "acquisition.coldness must be a finite number >= 0"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate_config(resolved(["acquisition=power_bald", override]))
    bad = resolved(["acquisition=power_bald"])
    bad["acquisition"].update(name="batchbald", _target_="batchbald.acquisition.batchbald_acquire")
    with pytest.raises(ConfigError, match="needs a per-point score"):
        validate_config(bad)
