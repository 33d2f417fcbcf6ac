"""The data side of a rank-siamese training step (Chen §4.2): dihedral augmentation, in-batch
pairs and the rank cross-entropy.

Top-down imagery has no "up", so augmentation draws a 90° rotation and a flip per tile. Pairs
are formed *inside* each mini-batch (every tile encoded once per step, O(B²) pairs); pairs whose
|Δ target| is below ``tie_margin`` are skipped. :mod:`houseprice.vision.siamese.train` runs the
steps; the draws are split from their application so that data-parallel ranks
(:mod:`houseprice.vision.siamese.distributed`) can share one draw of the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from houseprice.vision.siamese.model import RankSiamese


def dihedral_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random 90° rotation and horizontal flip per sample (top-down imagery has no 'up')."""
    # x: (B, C, H, W)
    return apply_dihedral(x, *dihedral_draws(x.shape[0], generator))


def dihedral_draws(b: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The draws of :func:`dihedral_augment` for ``b`` samples: rotations ``k`` and flips."""
    k = torch.randint(0, 4, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    return k, flip


def apply_dihedral(x: Tensor, k: Tensor, flip: Tensor) -> Tensor:
    """Rotate sample ``b`` of ``x (B, C, H, W)`` by ``k[b]``·90°, then flip it if ``flip[b]``."""
    out = x.clone()
    for r in range(1, 4):
        idx = (k == r).nonzero().flatten().to(x.device)
        if len(idx):
            out[idx] = torch.rot90(x[idx], r, dims=(2, 3))
    fidx = flip.nonzero().flatten().to(x.device)
    if len(fidx):
        out[fidx] = out[fidx].flip(3)
    return out


def batch_pairs(targets: Tensor, tie_margin: float) -> tuple[Tensor, Tensor, Tensor]:
    """All i<j pairs of a batch whose targets differ by more than ``tie_margin``.

    Returns index tensors ``(i, j)`` and labels ``[t_i > t_j]`` (long).
    """
    n = targets.shape[0]
    i, j = torch.triu_indices(n, n, offset=1, device=targets.device)
    diff = targets[i] - targets[j]
    keep = diff.abs() > tie_margin
    return i[keep], j[keep], (diff[keep] > 0).long()


def pair_loss(
    model: RankSiamese,
    feats: Tensor,
    targets: Tensor,
    tie_margin: float,
    head: nn.Module | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean rank cross-entropy (Chen §4.2) over the batch's pairs; also returns the accuracy.

    ``head`` is the pair head FC(d×2) to use (default: the model's main head ``fc``).
    """
    i, j, y = batch_pairs(targets, tie_margin)
    if len(y) == 0:
        zero = feats.sum() * 0.0
        return zero, torch.zeros((), device=feats.device)
    logits = model.pair_logits(feats[i], feats[j], head)  # (P, 2)
    loss = F.cross_entropy(logits, y)
    correct = (logits.argmax(1) == y).float().sum()
    return loss, correct / len(y)
