"""Tiny seeded CNNs and images shared by the explainer tests (CPU, milliseconds each)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

SIZE = 64  # input resolution
BOX = (32, 16, 56, 48)  # planted region, xyxy pixels: 24 wide x 32 high, off-centre
BOX_B = (4, 36, 24, 60)  # second region for the two-class net


def box_mask(box: tuple[int, int, int, int], size: int = SIZE) -> Tensor:
    x0, y0, x1, y1 = box
    mask = torch.zeros(size, size)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def trunk(width: int = 32) -> nn.Sequential:
    """Bias-free patch trunk: a 4 x 4 stride-4 conv then 1 x 1 convs, so each cell of the
    16 x 16 explained map sees exactly its own 4 x 4 pixels and a zero region stays zero."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 4, stride=4, bias=False),
        nn.ReLU(),
        nn.Conv2d(16, width, 1, bias=False),
        nn.ReLU(),
        nn.Conv2d(width, width, 1, bias=False),
        nn.ReLU(),
    )


class RegionGate(nn.Module):
    """Multiplies channels ``0..n_signal-1`` by the cell mask of ``BOX`` and the others by its
    complement: signal channels fire only inside the box, distractors only outside it."""

    def __init__(self, width: int, n_signal: int) -> None:
        super().__init__()
        cells = nn.functional.avg_pool2d(box_mask(BOX)[None, None], 4)[0, 0]  # (16, 16), 0/1
        gate = torch.cat(
            [cells.expand(n_signal, -1, -1), (1 - cells).expand(width - n_signal, -1, -1)]
        )
        self.register_buffer("gate", gate[None])  # (1, width, 16, 16)

    def forward(self, a: Tensor) -> Tensor:
        return a * self.gate


class PlantedNet(nn.Module):
    """CNN whose output depends only on the pixels inside ``BOX``, with distractor channels.

    The explained layer (``features[-1]``, a 16 x 16 map of ``width`` channels) has
    ``width // 2`` *signal* channels that are non-zero only inside ``BOX`` and read by the
    head, and ``width // 2`` *distractor* channels that fire only outside ``BOX`` (on the same
    patch features, so just as strongly) but have zero head weights: they do not drive the
    output. Correct channel weights (gradients of the output) are exactly zero on the
    distractors, so the map stays inside the box; wrong weights (e.g. random numbers) light up
    the distractors outside it. With ``sign=+1`` every output grows with the planted evidence
    (non-negative head weights on the signal channels); ``sign=-1`` flips that. Exposes
    ``forward_features`` / ``forward_head`` like the application's networks.
    """

    def __init__(self, out_dim: int = 8, width: int = 32, seed: int = 0, sign: int = 1) -> None:
        super().__init__()
        self.n_signal = width // 2
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.features = nn.Sequential(*trunk(width), RegionGate(width, self.n_signal))
            linear = nn.Linear(width, out_dim, bias=False)
        with torch.no_grad():
            linear.weight.copy_(sign * linear.weight.abs())
            linear.weight[:, self.n_signal :] = 0.0  # distractors do not drive the output
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)

    @property
    def target_layer(self) -> nn.Module:
        return self.features[-1]

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, a: Tensor) -> Tensor:
        return self.head(a)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class TwoRegionNet(nn.Module):
    """Two-class CNN: logit 0 depends only on ``BOX``, logit 1 only on ``BOX_B``.

    Channels ``0..7`` of the explained layer are masked to ``BOX``, ``8..15`` to ``BOX_B``;
    the linear layer maps each group to its own logit with positive weights.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.features = trunk(16)
            self.fc = nn.Linear(16, 2)
        with torch.no_grad():
            self.fc.weight.abs_()
            self.fc.weight[0, 8:] = 0.0
            self.fc.weight[1, :8] = 0.0
        small = nn.functional.interpolate
        masks = torch.stack([box_mask(BOX), box_mask(BOX_B)])[:, None]
        masks = small(masks, size=(SIZE // 4, SIZE // 4), mode="area")[:, 0]  # (2, 16, 16)
        group = torch.cat([masks[0].expand(8, -1, -1), masks[1].expand(8, -1, -1)])
        self.register_buffer("group_mask", group[None])
        self.gate = nn.Identity()  # explained layer: the masked activations

    @property
    def target_layer(self) -> nn.Module:
        return self.gate

    def forward_head(self, a: Tensor) -> Tensor:
        return self.fc(a.mean(dim=(2, 3)))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.gate(self.features(x) * self.group_mask))


def images(n: int, seed: int, size: int = SIZE) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=generator)
