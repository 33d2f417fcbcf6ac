"""Tiny test data for the embedding tests: a compact backbone and a flat-colour dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from houseprice.vision.backbones import BackboneConfig

TINY = BackboneConfig(name="compact", widths=(8, 8, 8), blocks=(1, 1, 1))


class ColourDataset(Dataset[dict[str, Any]]):
    """Class ``c`` = a flat colour (distinct per class) plus noise, 16 x 16."""

    def __init__(self, n_classes: int, per_class: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        palette = torch.rand(n_classes, 3, 1, 1, generator=torch.Generator().manual_seed(99))
        self.labels = np.repeat(np.arange(n_classes), per_class)
        base = palette[torch.as_tensor(self.labels)] * 4 - 2
        self.images = base + 0.3 * torch.randn(len(self.labels), 3, 16, 16, generator=gen)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "label": int(self.labels[i])}
