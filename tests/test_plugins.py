"""Your own acquisition function and model from config (`_target_`): the generic MC-dropout path, the checks on
user parts, and end-to-end runs from the command line with parts defined outside `batchbald/`."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest
import torch
from torch import nn

from batchbald.acquisition import AcquisitionBatch, acquisition_kind, bald_scores, select, top_k
from batchbald.models import DropoutMasks, MnistCNN, forward_masked, mc_log_probs
from batchbald.models.generic import draw_generic_masks, generic_log_probs
from batchbald.plugins import check_acquisition, check_model, import_target, probe_log_probs
from tests.test_driver import run, tiny

PLUGINS = textwrap.dedent(
    '''
    import torch
    import torch.nn.functional as F
    from torch import nn


    def margin_score(log_probs_N_K_C):
        """Smallest margin between the two most likely classes of the mean prediction (higher = more uncertain)."""
        top2 = log_probs_N_K_C.exp().mean(1).topk(2, dim=1).values
        return 1.0 - (top2[:, 0] - top2[:, 1])


    def first_points(log_probs_N_K_C, batch_size, *, seed):
        return list(range(batch_size))


    def two_args(a, b):
        return a


    def wrong_shape(log_probs_N_K_C):
        return log_probs_N_K_C.sum(1)


    class TinyNet(nn.Module):
        def __init__(self, num_classes, hidden=32):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 5, stride=2)
            self.drop2d = nn.Dropout2d(0.25)
            self.fc1 = nn.Linear(8 * 12 * 12, hidden)
            self.drop = nn.Dropout(0.5)
            self.fc2 = nn.Linear(hidden, num_classes)

        def forward(self, x):
            x = self.drop2d(F.relu(self.conv(x))).flatten(1)
            return F.log_softmax(self.fc2(self.drop(F.relu(self.fc1(x)))), dim=1)


    class NoDropout(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.fc = nn.Linear(784, num_classes)

        def forward(self, x):
            return F.log_softmax(self.fc(x.flatten(1)), dim=1)


    class Logits(TinyNet):
        def forward(self, x):
            return super().forward(x) * 3.0


    class NoLinear(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.conv = nn.Conv2d(1, num_classes, 28)
            self.drop = nn.Dropout2d(0.5)

        def forward(self, x):
            return F.log_softmax(self.drop(self.conv(x)).flatten(1), dim=1)


    SEEN = {}


    def targets_and_features(log_probs_N_K_C, batch_size, *, target_log_probs_M_K_C, pool_features_N_D,
                             labelled_features_L_D, seed):
        """Asks for three inputs; writes their shapes where the test can read them."""
        import json, os
        with open(os.environ["SEEN_FILE"], "a") as f:
            f.write(json.dumps([list(log_probs_N_K_C.shape), list(target_log_probs_M_K_C.shape),
                                list(pool_features_N_D.shape), list(labelled_features_L_D.shape)]) + "\\n")
        return list(range(batch_size))
    '''
)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("userpkg")
    (d / "myplugins.py").write_text(PLUGINS)
    return d


@pytest.fixture(scope="module")
def user(plugin_dir, monkeypatch_module):
    import importlib

    monkeypatch_module.syspath_prepend(str(plugin_dir))
    return importlib.import_module("myplugins")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


class _Wrapped(nn.Module):
    """The paper's MNIST net without its fast path: only `forward`, so scoring takes the generic path."""

    def __init__(self):
        super().__init__()
        self.net = MnistCNN(10)

    def forward(self, x):
        return self.net(x)


def test_generic_path_equals_the_masked_reference():
    torch.manual_seed(0)
    model, x = _Wrapped().eval(), torch.randn(7, 1, 28, 28)
    masks = draw_generic_masks(model, 4, torch.Generator().manual_seed(1), x)
    assert [tuple(m.shape) for m in masks.layers] == [(4, 32, 1, 1), (4, 64, 1, 1), (4, 128)]
    expected = forward_masked(model.net, x, DropoutMasks(tuple(m.flatten(1) for m in masks.layers)))
    got = generic_log_probs(model, x, masks, batch_size=3)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # and the model's own fast path with the same masks agrees too
    fast = mc_log_probs(model.net, x, DropoutMasks(tuple(m.flatten(1) for m in masks.layers)))
    torch.testing.assert_close(got, fast, atol=1e-4, rtol=0)
    assert not model.training


def test_generic_masks_are_consistent_across_inputs(user):
    torch.manual_seed(0)
    model = user.TinyNet(4)
    x = torch.randn(3, 1, 28, 28)
    x = torch.cat([x, x[:1]])  # the first image again, in another chunk below
    masks = draw_generic_masks(model, 5, torch.Generator().manual_seed(2), x)
    assert [tuple(m.shape) for m in masks.layers] == [(5, 8, 1, 1), (5, 32)]  # channel-wise, element-wise
    lp = generic_log_probs(model, x, masks, batch_size=2)
    assert lp.shape == (4, 5, 4)
    torch.testing.assert_close(lp[3], lp[0], atol=1e-6, rtol=0)  # sample k is one sub-network for every input
    assert (lp[0, 0] - lp[0, 1]).abs().max() > 1e-4  # and the samples differ
    again = draw_generic_masks(model, 5, torch.Generator().manual_seed(2), x)
    assert all(torch.equal(a, b) for a, b in zip(masks.layers, again.layers))


def test_select_with_user_functions(user):
    lp = probe_log_probs(n=20, k=4, c=5, seed=3)
    assert acquisition_kind(user.margin_score) == "score" and acquisition_kind(user.first_points) == "batch"
    batch = select(user.margin_score, lp, 4)
    assert batch.indices == top_k(user.margin_score(lp), 4).indices
    assert select(user.first_points, lp, 3, seed=5) == AcquisitionBatch([0, 1, 2], [0.0] * 3)
    assert select(bald_scores, lp, 4) == select("bald", lp, 4)  # built-ins by name and by callable: one path
    sampled = select(user.margin_score, lp, 4, stochastic="power", seed=1)
    assert len(set(sampled.indices)) == 4


@pytest.mark.parametrize(
    "name, message",
    [
        ("two_args", "is neither a per-point score fn(log_probs_N_K_C, [inputs]) nor a batch function"),
        ("wrong_shape", "must return a score tensor of shape [N] = (12,), got (12, 4)"),
    ],
)
def test_bad_acquisition_functions(user, name, message):
    with pytest.raises(ValueError) as err:
        check_acquisition(getattr(user, name))
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="batch function; acquisition.stochastic needs a per-point score"):
        check_acquisition(user.first_points, stochastic="power")


def test_model_checks(user):
    x = torch.randn(2, 1, 28, 28)
    assert check_model(user.TinyNet(4), 4, x) == "generic" and check_model(MnistCNN(10), 10, x) == "fast"
    for model, classes, message in (
        (user.NoDropout(4), 4, "has no dropout layer"),
        (user.Logits(4), 4, "must return log-probabilities: end forward with F.log_softmax"),
        (user.TinyNet(3), 4, "must return log-probabilities of shape [B, 4]"),
        ("not a model", 4, "not a torch.nn.Module"),
    ):
        with pytest.raises(ValueError) as err:
            check_model(model, classes, x)
        assert message in str(err.value) and "\n" not in str(err.value)


def test_import_target_errors(user):
    assert import_target("batchbald.acquisition.bald_scores") is bald_scores
    for path, message in (
        ("nopkg.fn", "cannot import nopkg.fn (ModuleNotFoundError"),
        ("myplugins.missing", "myplugins has no attribute 'missing'"),
        ("justaname", "is not a dotted path"),
    ):
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            import_target(path)


def test_user_acquisition_and_model_from_the_command_line(root, plugin_dir, tmp_path):
    """The loop runs a score function and a model defined outside batchbald/, named only in overrides."""
    out = tmp_path / "run"
    proc = run(
        tiny(
            root,
            f"hydra.run.dir={out}",
            "wandb.mode=disabled",
            "acquisition._target_=myplugins.margin_score",
            "model._target_=myplugins.TinyNet",
            "+model.hidden=16",
        ),
        env_extra={"PYTHONPATH": str(plugin_dir)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "has no fast consistent-MC-dropout path" in proc.stderr
    df = pd.read_csv(out / "rounds.csv")
    assert df["labelled_size"].tolist() == [0, 3, 6]
    scores = [json.loads(s) for s in df["acquisition_scores"][:2]]
    assert all(a >= b for s in scores for a, b in zip(s, s[1:]))  # top-k of the user's score, highest first
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["acquisition"]["name"] == "margin_score" and config["model"]["name"] == "TinyNet"
    assert config["model"]["hidden"] == 16

    # a batch function from the directory the command runs in (no PYTHONPATH)
    out2 = tmp_path / "run2"
    proc = run(
        tiny(root, f"hydra.run.dir={out2}", "wandb.mode=disabled", "acquisition._target_=myplugins.first_points"),
        cwd=plugin_dir,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pd.read_csv(out2 / "rounds.csv")["labelled_size"].tolist() == [0, 3, 6]


@pytest.mark.parametrize(
    "override, message",
    [
        ("acquisition._target_=nopkg.score", "acquisition._target_=nopkg.score: cannot import nopkg.score"),
        ("acquisition._target_=myplugins.two_args", "acquisition._target_=myplugins.two_args: myplugins.two_args("),
        ("acquisition._target_=myplugins.wrong_shape", "must return a score tensor of shape [N]"),
        ("model._target_=myplugins.NoDropout", "model._target_=myplugins.NoDropout: NoDropout has no dropout layer"),
        ("model._target_=myplugins.Logits", "model._target_=myplugins.Logits: Logits must return log-probabilities"),
        ("model._target_=myplugins.nothing", "model._target_=myplugins.nothing: myplugins has no attribute"),
        ("+model.depth=3", "model._target_=batchbald.models.EmnistCNN: building it failed:"),
        (
            "acquisition=badge model._target_=myplugins.NoLinear",
            "model._target_=myplugins.NoLinear: the acquisition asks for penultimate features, but NoLinear has no "
            "nn.Linear layer",
        ),
        ("acquisition=coreset model._target_=myplugins.NoLinear", "NoLinear has no nn.Linear layer"),
    ],
)
def test_bad_targets_stop_before_any_work(root, plugin_dir, tmp_path, override, message):
    out = tmp_path / "run"
    proc = run(
        tiny(root, f"hydra.run.dir={out}", "wandb.mode=disabled", *override.split()),
        env_extra={"PYTHONPATH": str(plugin_dir)},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (out / "rounds.csv").exists()


def test_a_user_function_gets_the_inputs_it_names(root, plugin_dir, tmp_path):
    """Targets under the pool's masks, pool and labelled features of a user model: computed because the function
    names them, with the shapes of this run (pool shrinking, labelled set growing, per_round targets)."""
    out, seen = tmp_path / "run", tmp_path / "seen.jsonl"
    proc = run(
        tiny(
            root,
            f"hydra.run.dir={out}",
            "wandb.mode=disabled",
            "acquisition._target_=myplugins.targets_and_features",
            "model._target_=myplugins.TinyNet",
            "+acquisition.target.size=40",
            "+acquisition.target.per_round=7",
        ),
        env_extra={"PYTHONPATH": str(plugin_dir), "SEEN_FILE": str(seen)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    shapes = [json.loads(line) for line in seen.read_text().splitlines()][1:]  # line 0: the check on a probe
    pool = 400 - 20 - 40  # tiny split: 400 train, 20 validation, 40 held-out targets, no initial points
    assert shapes == [
        [[pool, 3, 4], [7, 3, 4], [pool, 32], [0, 32]],
        [[pool - 3, 3, 4], [7, 3, 4], [pool - 3, 32], [3, 32]],
    ]
