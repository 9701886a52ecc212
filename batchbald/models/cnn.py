"""The paper's MC-dropout CNNs (SPEC §4) and consistent MC-dropout scoring.

`draw_masks` draws K dropout masks once; `mc_log_probs` scores any number of inputs with exactly those K
sub-networks (consistent MC dropout). `forward_masked` is the plain reference (input replicated K times).
`mc_log_probs` computes the same numbers (to float32 rounding) with less work, using only exact identities:

- a per-channel mask is >= 0, so it commutes with max-pool and ReLU, and a bias commutes with max-pool:
  the first conv block runs once per image, masks and biases are applied after pooling;
- MNIST net: conv2 of a channel-masked input is linear in the mask, conv2(m_k * h) = sum_c m_k[c] conv2_c(h_c),
  so the 32 per-input-channel partial convolutions are computed once per image and mixed for all K masks in
  one matrix product (5x5 kernels: the mixing costs 1/25 of the convolution);
- EMNIST net: masks take the values {0, s}, and a dropped unit contributes nothing, so per mask k conv2 and
  conv3 run only over kept input and output channels (about 1/4 of the multiply-adds each) and fc1 only over
  kept inputs and outputs, with the scales s folded into the weights; conv3 is computed only at the 8x8
  positions the floor max-pool reads;
- convolutions followed by a 2x2 max-pool are computed as im2col matrix products whose rows are ordered
  (pool offset, pooled position), so the pool is a max over 4 contiguous blocks.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from batchbald.models.dropout import DropoutMasks, MCDropout, _row_masks

MODEL_NAMES = ("mnist_cnn", "emnist_cnn")


def _kept(mask_row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of kept units and their mask values; an all-dropped row keeps unit 0 with value 0."""
    idx = torch.nonzero(mask_row).flatten()
    if idx.numel() == 0:
        idx = torch.zeros(1, dtype=torch.long, device=mask_row.device)
    return idx, mask_row[idx]


def _pool_patches(x: torch.Tensor, kernel: int, out_hw: int) -> torch.Tensor:
    """im2col of a valid conv whose [out_hw x out_hw] output feeds a 2x2 max-pool.

    x [B, C, H, W] (any strides) -> [C, 4 * B * (out_hw/2)^2, kernel^2], rows ordered (pool offset, b, pooled pos).
    """
    b, c = x.shape[:2]
    sb, sc, sh, sw = x.stride()
    q = out_hw // 2
    view = x.as_strided(
        (c, 2, 2, b, q, q, kernel, kernel), (sc, sh, sw, sb, 2 * sh, 2 * sw, sh, sw), x.storage_offset()
    )
    return view.reshape(c, b * 4 * q * q, kernel * kernel)


def _conv_pool_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, out_hw: int) -> torch.Tensor:
    """relu(maxpool2(conv(x))) for a 1-channel input x [B, 1, H, W] -> [C_out, B, out_hw/2, out_hw/2].

    One matrix product with im2col columns ordered (pool offset, b, pooled pos); the pool is a max over 4 blocks.
    """
    b = x.shape[0]
    c_out, _, kernel, _ = weight.shape
    sb, _, sh, sw = x.stride()
    q = out_hw // 2
    cols = x.as_strided((kernel, kernel, 2, 2, b, q, q), (sh, sw, sh, sw, sb, 2 * sh, 2 * sw), x.storage_offset())
    z = torch.mm(weight.reshape(c_out, -1), cols.reshape(kernel * kernel, -1)).view(c_out, 4, b, q, q)
    return z.amax(1).add_(bias.view(-1, 1, 1, 1)).relu_()


def _take(weight: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """weight[rows][:, cols] by index_select (fast contiguous gathers)."""
    return weight.index_select(0, rows).index_select(1, cols)


def _max4(y: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool of [..., 2H, 2W] (even sizes) by elementwise maxima of strided views."""
    return torch.maximum(
        torch.maximum(y[..., 0::2, 0::2], y[..., 0::2, 1::2]), torch.maximum(y[..., 1::2, 0::2], y[..., 1::2, 1::2])
    )


class MnistCNN(nn.Module):
    """SPEC §4 MNIST/RMNIST net: 2 x [conv5x5, 2d dropout, max-pool, relu], fc 1024-128-C.

    input_shape (C, H, W) sizes conv1's input channels and fc1's inputs for other images (a dataset factory's);
    the exact fast scoring path exists for the paper's 1 x 28 x 28 only, other shapes take the generic path.
    """

    def __init__(self, num_classes: int = 10, p: float = 0.5, input_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        channels, height, width = (int(v) for v in input_shape)
        out_h, out_w = ((height - 4) // 2 - 4) // 2, ((width - 4) // 2 - 4) // 2
        if channels < 1 or out_h < 1 or out_w < 1:
            raise ValueError(f"MnistCNN needs images of at least 1 x 16 x 16, got {tuple(input_shape)}")
        self.fast_path = (channels, height, width) == (1, 28, 28)
        self.conv1 = nn.Conv2d(channels, 32, kernel_size=5)
        self.drop1 = MCDropout(32, p)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=5)
        self.drop2 = MCDropout(64, p)
        self.fc1 = nn.Linear(64 * out_h * out_w, 128)
        self.drop3 = MCDropout(128, p)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor, masks: DropoutMasks | None = None) -> torch.Tensor:
        m = _row_masks(masks, x.shape[0], 3)
        x = F.relu(F.max_pool2d(self.drop1(self.conv1(x), m[0]), 2))
        x = F.relu(F.max_pool2d(self.drop2(self.conv2(x), m[1]), 2))
        x = F.relu(self.drop3(self.fc1(x.flatten(1)), m[2]))
        return F.log_softmax(self.fc2(x), dim=1)

    def scoring_plan(self, masks: DropoutMasks) -> dict:
        """Mask-dependent constants for mc_forward, built once per mc_log_probs call."""
        return {
            "masks": masks.layers,
            "w2": self.conv2.weight.reshape(64, 32, 25).permute(1, 2, 0),  # [C_in, 25, C_out]
            # fc1 columns reordered from (channel, pos) to (pos, channel): features stay channels-last
            "w_fc1": self.fc1.weight.reshape(-1, 64, 16).transpose(1, 2).reshape(-1, 1024).t(),
        }

    def mc_forward(self, x: torch.Tensor, plan: dict) -> torch.Tensor:
        """Fast exact equivalent of forward_masked for one chunk: logits_K_B_C (log-softmax not applied)."""
        m1, m2, m3 = plan["masks"]
        k, b = m1.shape[0], x.shape[0]
        h1 = _conv_pool_relu(x, self.conv1.weight, self.conv1.bias, 24).transpose(0, 1)  # [B, 32, 12, 12] view
        partial = torch.bmm(_pool_patches(h1, 5, 8), plan["w2"]).view(32, 4, b * 16 * 64)
        # mix the partial convolutions with the masks, pool offset by pool offset, and take the running max
        z2 = torch.mm(m1, partial[:, 0])  # [K, B * 16 pos * 64 ch]
        tmp = torch.empty_like(z2)
        for d in range(1, 4):
            torch.mm(m1, partial[:, d], out=tmp)
            torch.maximum(z2, tmp, out=z2)
        h2 = z2.view(k, b, 16, 64).add_(self.conv2.bias).relu_().mul_(m2.view(k, 1, 1, 64))
        h3 = torch.addmm(self.fc1.bias, h2.view(k * b, 1024), plan["w_fc1"]).relu_()
        h3 = h3.view(k, b, -1).mul_(m3.view(k, 1, -1))
        return torch.addmm(self.fc2.bias, h3.view(k * b, -1), self.fc2.weight.t()).view(k, b, -1)

    @staticmethod
    def scoring_bytes_per_image(k: int) -> int:
        return 4 * (2 * 25 * 576 + 2 * 32 * 4096 + 2 * k * 1024 + 3 * k * 128)


class EmnistCNN(nn.Module):
    """SPEC §4 EMNIST net: 3 conv3x3 blocks (32/64/128, pool after 1st and 3rd), fc 2048-512-C."""

    def __init__(self, num_classes: int = 47, p: float = 0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.drop1 = MCDropout(32, p)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.drop2 = MCDropout(64, p)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3)
        self.drop3 = MCDropout(128, p)
        self.fc1 = nn.Linear(2048, 512)
        self.drop4 = MCDropout(512, p)
        self.fc2 = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor, masks: DropoutMasks | None = None) -> torch.Tensor:
        m = _row_masks(masks, x.shape[0], 4)
        x = F.relu(F.max_pool2d(self.drop1(self.conv1(x), m[0]), 2))
        x = F.relu(self.drop2(self.conv2(x), m[1]))
        x = F.relu(F.max_pool2d(self.drop3(self.conv3(x), m[2]), 2))
        x = F.relu(self.drop4(self.fc1(x.flatten(1)), m[3]))
        return F.log_softmax(self.fc2(x), dim=1)

    def scoring_plan(self, masks: DropoutMasks) -> dict:
        """Per mask k: kept units of each layer and the weights restricted to them, mask scales folded in.

        About 1.1 MB per mask, mostly fc1's restricted weights (gathering them per chunk instead is slower).
        """
        fc1_rows = self.fc1.weight.reshape(-1, 16)  # row (unit, channel): the channel's 16 pooled positions
        layers = []
        for m1, m2, m3, m4 in zip(*masks.layers):
            (s1, v1), (s2, v2), (s3, v3), (s4, v4) = _kept(m1), _kept(m2), _kept(m3), _kept(m4)
            layers.append(
                {
                    "s1": s1,
                    "w2": _take(self.conv2.weight, s2, s1) * v1.view(1, -1, 1, 1),
                    "b2": self.conv2.bias[s2],
                    # mask 3 (>= 0) scales conv3's outputs: it commutes with pool and relu, so fold it into conv3
                    "w3": _take(self.conv3.weight, s3, s2) * (v3.view(-1, 1) * v2).view(len(s3), -1, 1, 1),
                    "b3": (self.conv3.bias[s3] * v3).view(-1, 1, 1),
                    "w_fc1": fc1_rows.index_select(0, (s4.view(-1, 1) * 128 + s3).flatten()).view(len(s4), -1).t(),
                    "b_fc1": self.fc1.bias[s4],
                    "w_fc2": (self.fc2.weight[:, s4] * v4).t(),
                }
            )
        return {"k": masks.k, "layers": layers}

    def mc_forward(self, x: torch.Tensor, plan: dict) -> torch.Tensor:
        """Fast exact equivalent of forward_masked for one chunk: logits_K_B_C (log-softmax not applied)."""
        b = x.shape[0]
        h1 = _conv_pool_relu(x, self.conv1.weight, self.conv1.bias, 26)  # [32, B, 13, 13]
        # conv2 -> conv3 (valid 3x3) -> floor pool reads conv3 at 8x8, conv2 at 10x10, h1 at 12x12 only
        h1 = h1[:, :, :12, :12].transpose(0, 1).contiguous()  # [B, 32, 12, 12]
        logits = torch.empty(plan["k"], b, self.fc2.out_features, device=x.device)
        for k, p in enumerate(plan["layers"]):
            z2 = F.conv2d(h1.index_select(1, p["s1"]), p["w2"], p["b2"]).relu_()  # [B, n2, 10, 10]
            z3 = _max4(F.conv2d(z2, p["w3"])).add_(p["b3"]).relu_()  # [B, n3, 4, 4]
            h4 = torch.addmm(p["b_fc1"], z3.view(b, -1), p["w_fc1"]).relu_()
            torch.addmm(self.fc2.bias, h4, p["w_fc2"], out=logits[k])
        return logits

    @staticmethod
    def scoring_bytes_per_image(k: int) -> int:
        return 4 * (2 * 9 * 676 + 32 * 676 + 48 * 144 + 32 * 100 + 80 * 64 + 256 + 47 * k)


MODELS = {"mnist_cnn": MnistCNN, "emnist_cnn": EmnistCNN}


def build_model(name_or_factory, num_classes: int, input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """A freshly initialised model (default PyTorch init): a name in MODEL_NAMES, or any factory called as
    factory(num_classes=C) that returns an nn.Module with dropout whose forward gives log-probabilities [B, C].
    input_shape (C, H, W of the images) also goes to factories that take an `input_shape` parameter (MnistCNN)."""
    if not callable(name_or_factory):
        if name_or_factory not in MODELS:
            raise ValueError(f"unknown model {name_or_factory!r}; allowed: {', '.join(MODEL_NAMES)}")
        name_or_factory = MODELS[name_or_factory]
    kwargs = {"num_classes": num_classes}
    if input_shape is not None and _takes(name_or_factory, "input_shape"):
        kwargs["input_shape"] = tuple(int(v) for v in input_shape)
    return name_or_factory(**kwargs)


def _takes(factory, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
