"""Uniform baseline (Chen §4.1 baseline 1): every pixel weighs the same.

Its heatmap ratio inside a region equals the region's area fraction, an approximate lower bound
for the localisation metrics.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from houseprice.explain.base import Explainer, LowRes, Normalize, Target


class UniformCAM(Explainer):
    """Constant maps of ones whatever ``normalize`` says; no model computation is done."""

    name: ClassVar[str] = "uniform"

    def __init__(
        self,
        model: nn.Module | None = None,
        target_layer: nn.Module | None = None,
        *,
        normalize: Normalize = "max",
    ) -> None:
        super().__init__(model if model is not None else nn.Identity(), None, normalize=normalize)
        del target_layer  # accepted for a uniform factory signature, unused

    def _compute(self, x: Tensor, target: Target) -> LowRes:
        del target
        return LowRes(raw=torch.ones(x.shape[0], 1, 1, device=x.device))

    def postprocess(self, raw: Tensor, size: tuple[int, int]) -> Tensor:
        return torch.ones(raw.shape[0], *size, device=raw.device)
