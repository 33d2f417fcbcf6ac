"""Decoded CUB images held in memory, and their training augmentation done a batch at a time.

This module owns :class:`DecodedImages` - every image of a :class:`~.dataset.CUBDataset` split
decoded once (its evaluation transform: shorter side to ``S``, centre crop ``S``) into one
``uint8`` tensor ``(N, 3, S, S)`` - and :func:`augment_batch`, the tensor counterpart of the
dataset's per-sample PIL augmentation: a random resized crop (area ``scale``, aspect ``ratio``),
a random rotation (``rotation_deg``, as the synthetic-birds generator rotates its birds) and a
horizontal flip, all folded into one affine ``grid_sample`` per batch. Training then decodes
no JPEG per sample (the loader used to decode every sample of every epoch with no workers).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from houseprice.data.cub.dataset import CUBAugConfig, CUBDataset
from houseprice.data.cub.normalisation import IMAGENET_MEAN, IMAGENET_STD

_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def normalise(images: Tensor) -> Tensor:
    """``uint8 (B, 3, S, S)`` -> ImageNet-normalised float ``(B, 3, S, S)``."""
    return (images.float() / 255.0 - _MEAN.to(images.device)) / _STD.to(images.device)


def _affine(b: int, aug: CUBAugConfig, g: torch.Generator) -> Tensor:
    """``(B, 2, 3)`` output->input sampling matrices in normalised coordinates."""
    u = torch.rand(b, 5, generator=g, dtype=torch.float64)
    lo, hi = aug.scale
    area = lo + (hi - lo) * u[:, 0]
    log_r = math.log(aug.ratio[0]) + (math.log(aug.ratio[1]) - math.log(aug.ratio[0])) * u[:, 1]
    ratio = torch.exp(log_r)
    sx = torch.sqrt(area * ratio).clamp(max=1.0)  # crop width / image width
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    tx = (1.0 - sx) * (2.0 * u[:, 2] - 1.0)  # crop centre, inside the image
    ty = (1.0 - sy) * (2.0 * u[:, 3] - 1.0)
    angle = math.radians(aug.rotation_deg) * (2.0 * u[:, 4] - 1.0)
    flip = torch.where(torch.rand(b, generator=g, dtype=torch.float64) < aug.hflip_p, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1] = sx * cos * flip, -sy * sin
    theta[:, 1, 0], theta[:, 1, 1] = sx * sin * flip, sy * cos
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    return theta.float()


def augment_batch(
    images: Tensor, aug: CUBAugConfig, generator: torch.Generator, size: int | None = None
) -> Tensor:
    """Random resized crop + rotation + flip of ``uint8 (B, 3, S, S)`` images, one
    ``grid_sample``; returns ImageNet-normalised float ``(B, 3, size, size)``.

    Rotated crops sample outside the image near the corners; those pixels reflect the image.
    Draws from ``generator`` only (deterministic given its seed).
    """
    b = images.shape[0]
    side = size or images.shape[-1]
    theta = _affine(b, aug, generator).to(images.device)
    grid = F.affine_grid(theta, [b, 3, side, side], align_corners=False)
    out = F.grid_sample(
        normalise(images), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    return out


class DecodedImages(Dataset[dict[str, Any]]):
    """A CUB split decoded once: ``images`` uint8 ``(N, 3, S, S)``, ``labels`` ``(N,)``.

    Samples are ``{"image": normalised (3, S, S), "label": int}`` (the evaluation transform of
    ``CUBDataset``). :meth:`batch` returns a training batch augmented by :func:`augment_batch`.
    """

    def __init__(self, dataset: CUBDataset) -> None:
        if dataset.train_aug:
            raise ValueError("decode the evaluation transform (train_aug=False); augmentation is "
                             "applied per batch by DecodedImages.batch")  # fmt: skip
        s = dataset.image_size
        self.images = torch.empty((len(dataset), 3, s, s), dtype=torch.uint8)
        for i in range(len(dataset)):
            x = dataset[i]["image"]  # (3, S, S) normalised
            pixels = (x * _STD[0] + _MEAN[0]) * 255.0
            self.images[i] = pixels.round().clamp(0, 255).to(torch.uint8)
        self.labels: np.ndarray = dataset.labels.copy()
        self.image_size = s

    @classmethod
    def from_tensors(cls, images: Tensor, labels: np.ndarray) -> DecodedImages:
        """Wrap uint8 images ``(N, 3, S, S)`` and labels ``(N,)`` (already decoded)."""
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 (N, 3, S, S), got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
        out = object.__new__(cls)
        out.images, out.labels = images, np.asarray(labels, dtype=np.int64)
        out.image_size = int(images.shape[-1])
        return out

    def subset(self, keep: np.ndarray) -> DecodedImages:
        """The samples at indices ``keep`` (copies)."""
        return DecodedImages.from_tensors(self.images[torch.from_numpy(keep)], self.labels[keep])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": normalise(self.images[i : i + 1])[0], "label": int(self.labels[i])}

    def batch(
        self,
        indices: list[int],
        aug: CUBAugConfig | None,
        generator: torch.Generator,
        size: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(images (B, 3, size, size), labels (B,))``, augmented unless ``aug`` is None."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.images[idx]
        if aug is None:
            images = normalise(x)
            if size is not None and size != self.image_size:
                images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
        else:
            images = augment_batch(x, aug, generator, size)
        return images, torch.from_numpy(self.labels[idx.numpy()])
