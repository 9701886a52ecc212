"""Tests for batchbald.models: architectures, dropout, consistent MC dropout and its fast exact path."""

import pytest
import torch
import torch.nn.functional as F

from batchbald.models import (
    DropoutMasks,
    MCDropout,
    build_model,
    draw_masks,
    dropout_generator,
    dropout_layers,
    forward_masked,
    mc_log_probs,
)

NETS = [("mnist_cnn", 10), ("emnist_cnn", 47)]


pytestmark = pytest.mark.usefixtures("one_thread")


def make(name, num_classes, seed=0):
    torch.manual_seed(seed)
    return build_model(name, num_classes)


def images(n, seed=0):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_architecture_shapes_and_parameter_counts():
    mnist, emnist = make("mnist_cnn", 10), make("emnist_cnn", 47)
    shapes = {name: tuple(p.shape) for name, p in mnist.named_parameters()}
    assert shapes == {
        "conv1.weight": (32, 1, 5, 5),
        "conv1.bias": (32,),
        "conv2.weight": (64, 32, 5, 5),
        "conv2.bias": (64,),
        "fc1.weight": (128, 1024),
        "fc1.bias": (128,),
        "fc2.weight": (10, 128),
        "fc2.bias": (10,),
    }
    assert sum(p.numel() for p in mnist.parameters()) == 184_586
    shapes = {name: tuple(p.shape) for name, p in emnist.named_parameters()}
    assert shapes == {
        "conv1.weight": (32, 1, 3, 3),
        "conv1.bias": (32,),
        "conv2.weight": (64, 32, 3, 3),
        "conv2.bias": (64,),
        "conv3.weight": (128, 64, 3, 3),
        "conv3.bias": (128,),
        "fc1.weight": (512, 2048),
        "fc1.bias": (512,),
        "fc2.weight": (47, 512),
        "fc2.bias": (47,),
    }
    assert sum(p.numel() for p in emnist.parameters()) == 1_165_871
    assert [(d.units, d.p) for d in dropout_layers(mnist)] == [(32, 0.5), (64, 0.5), (128, 0.5)]
    assert [(d.units, d.p) for d in dropout_layers(emnist)] == [(32, 0.5), (64, 0.5), (128, 0.5), (512, 0.5)]
    for model, c in ((mnist, 10), (emnist, 47)):
        out = model.eval()(images(3))
        assert out.shape == (3, c)
        torch.testing.assert_close(out.exp().sum(1), torch.ones(3))
    assert build_model("emnist_cnn", 20).fc2.out_features == 20
    with pytest.raises(ValueError, match="mnist_cnn"):
        build_model("resnet", 10)


def manual_mnist_forward(model, x, m1, m2, m3):
    """SPEC §4 written out for one mask: conv, channel dropout, pool, relu (x2), fc, dropout, relu, fc."""
    h = F.relu(F.max_pool2d(model.conv1(x) * m1.view(1, -1, 1, 1), 2))
    h = F.relu(F.max_pool2d(model.conv2(h) * m2.view(1, -1, 1, 1), 2))
    h = F.relu(model.fc1(h.flatten(1)) * m3)
    return F.log_softmax(model.fc2(h), dim=1)


def test_forward_masked_applies_mask_k_to_copy_k():
    model = make("mnist_cnn", 10).eval()
    x = images(4)
    masks = draw_masks(model, 3, gen())
    ref = forward_masked(model, x, masks)
    assert ref.shape == (4, 3, 10)
    with torch.no_grad():
        for k in range(3):
            expected = manual_mnist_forward(model, x, *(m[k] for m in masks.layers))
            torch.testing.assert_close(ref[:, k], expected, rtol=0, atol=1e-6)


def test_eval_mode_is_deterministic_and_dropout_free():
    for name, c in NETS:
        model = make(name, c).eval()
        x = images(5)
        a, b = model(x), model(x)
        assert torch.equal(a, b)
        ones = DropoutMasks(tuple(torch.ones(1, d.units) for d in dropout_layers(model)))
        torch.testing.assert_close(forward_masked(model, x, ones)[:, 0], a, rtol=0, atol=1e-6)


def test_train_mode_redraws_masks_per_call_and_per_sample():
    for name, c in NETS:
        model = make(name, c).train()
        x = images(1).repeat(2, 1, 1, 1)
        with torch.no_grad():
            a, b = model(x), model(x)
        assert not torch.allclose(a, b)  # fresh masks per call
        assert not torch.allclose(a[0], a[1])  # and per sample


def test_train_mode_masks_come_from_the_given_generator():
    model = make("mnist_cnn", 10).train()
    x = images(8)
    outs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        with torch.no_grad(), dropout_generator(model, gen(5)):
            outs.append(model(x))
    assert torch.equal(outs[0], outs[1])
    assert all(d.generator is None for d in dropout_layers(model))


def test_draw_masks_shapes_values_and_seed():
    model = make("emnist_cnn", 47)
    masks = draw_masks(model, 200, gen(3))
    assert masks.k == 200
    assert [tuple(m.shape) for m in masks.layers] == [(200, 32), (200, 64), (200, 128), (200, 512)]
    for m in masks.layers:
        assert m.dtype == torch.float32
        assert set(m.unique().tolist()) == {0.0, 2.0}
        assert 0.45 < (m > 0).float().mean().item() < 0.55
    again = draw_masks(model, 200, gen(3))
    assert all(torch.equal(a, b) for a, b in zip(masks.layers, again.layers))
    other = draw_masks(model, 200, gen(4))
    assert not torch.equal(masks.layers[0], other.layers[0])
    keep = MCDropout(1000, p=0.25).draw(3, "cpu", gen())
    assert keep.unique().tolist() == [0.0, torch.tensor(1 / 0.75).item()]
    with pytest.raises(ValueError):
        draw_masks(model, 0, gen())


@pytest.mark.parametrize("name,num_classes", NETS)
@pytest.mark.parametrize("k", [1, 3, 10])
def test_fast_path_equals_forward_masked(name, num_classes, k):
    model = make(name, num_classes)
    x = images(9, seed=k)
    masks = draw_masks(model, k, gen(k))
    ref = forward_masked(model, x, masks)
    fast = mc_log_probs(model, x, masks)
    assert fast.shape == (9, k, num_classes) and fast.dtype == torch.float32
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,num_classes", NETS)
def test_fast_path_with_unusual_masks(name, num_classes):
    """All-dropped layers, all-kept layers and a non-default keep scale still match the reference."""
    model = make(name, num_classes)
    x = images(4)
    layers = []
    for i, d in enumerate(dropout_layers(model)):
        m = draw_masks(model, 4, gen(i)).layers[i] * 0.75  # scale 1.5 instead of 2
        m[0] = 0.0  # mask 0 drops every unit of every layer
        m[1] = 1.0  # mask 1 keeps all (eval-mode network)
        layers.append(m)
    masks = DropoutMasks(tuple(layers))
    fast = mc_log_probs(model, x, masks)
    torch.testing.assert_close(fast, forward_masked(model, x, masks), rtol=0, atol=1e-5)
    torch.testing.assert_close(fast[:, 1], model.eval()(x), rtol=0, atol=1e-5)
    assert torch.allclose(fast[0, 0], fast[1, 0])  # all-dropped network ignores its input


@pytest.mark.parametrize("name,num_classes", NETS)
def test_same_masks_same_outputs_across_calls_and_chunks(name, num_classes):
    model = make(name, num_classes)
    x = images(40)
    masks = draw_masks(model, 6, gen())
    full = mc_log_probs(model, x, masks)
    assert torch.equal(full, mc_log_probs(model, x, masks))
    for batch_size in (1, 7, 40, 1000):
        # identical up to float32 rounding (BLAS kernels may change with the chunk's row count)
        torch.testing.assert_close(mc_log_probs(model, x, masks, batch_size=batch_size), full, rtol=0, atol=2e-6)
    torch.testing.assert_close(mc_log_probs(model, x[13:17], masks), full[13:17], rtol=0, atol=2e-6)
    torch.testing.assert_close(full.logsumexp(2), torch.zeros(40, 6), rtol=0, atol=1e-5)


def test_different_masks_give_different_outputs():
    for name, c in NETS:
        model = make(name, c)
        log_probs = mc_log_probs(model, images(6), draw_masks(model, 5, gen()))
        for i in range(5):
            for j in range(i + 1, 5):
                assert (log_probs[:, i] - log_probs[:, j]).abs().max() > 1e-4


def test_mc_log_probs_edge_cases():
    model = make("mnist_cnn", 10)
    masks = draw_masks(model, 4, gen())
    assert mc_log_probs(model, torch.empty(0, 1, 28, 28), masks).shape == (0, 4, 10)
    x = images(3)
    ref = mc_log_probs(model, x, masks)
    torch.testing.assert_close(mc_log_probs(model, x.double(), masks), ref, rtol=0, atol=1e-6)  # cast to f32
    strided = torch.randn(3, 1, 30, 30)[:, :, 1:29, 2:30]
    strided.copy_(x)
    torch.testing.assert_close(mc_log_probs(model, strided, masks), ref, rtol=0, atol=0)


def test_fast_path_survives_channels_last_weights():
    model = make("emnist_cnn", 47).to(memory_format=torch.channels_last)
    x = images(3)
    masks = draw_masks(model, 2, gen())
    torch.testing.assert_close(mc_log_probs(model, x, masks), forward_masked(model, x, masks), rtol=0, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fast_path_on_cuda():
    for name, c in NETS:
        model = make(name, c).cuda()
        masks = draw_masks(model, 5, torch.Generator("cuda").manual_seed(0))
        x = images(7)
        out = mc_log_probs(model, x, masks)
        assert out.device.type == "cuda"
        torch.testing.assert_close(out, forward_masked(model, x, masks), rtol=0, atol=1e-4)
