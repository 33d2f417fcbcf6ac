"""The P x K class-balanced batch sampler of metric-learning training."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch import Tensor
from torch.utils.data import Sampler


class PKBatchSampler(Sampler[list[int]]):
    """Class-balanced batches: ``P`` distinct classes, ``K`` images each (``P * K`` indices).

    Classes are drawn without replacement per batch (all classes when fewer than ``P`` have
    at least two images); images of a class without replacement when it has at least ``K``,
    else with replacement. Classes with a single image are never drawn (no positive).
    Deterministic: batch ``i`` of epoch ``e`` depends only on ``(seed, e)``; call
    :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | Tensor,
        classes_per_batch: int,
        images_per_class: int,
        n_batches: int,
        *,
        seed: int = 0,
    ) -> None:
        lab = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
        if lab.ndim != 1 or lab.size == 0:
            raise ValueError("labels must be a non-empty 1-d sequence")
        if n_batches < 1:
            raise ValueError(f"n_batches must be >= 1, got {n_batches}")
        self.by_class = {
            int(c): np.flatnonzero(lab == c) for c in np.unique(lab) if (lab == c).sum() >= 2
        }
        if len(self.by_class) < 2:
            raise ValueError(
                "a class-balanced batch needs at least 2 classes with at least 2 images each; "
                f"got {len(self.by_class)}"
            )
        self.p = min(classes_per_batch, len(self.by_class))
        self.k = images_per_class
        self.n_batches = n_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches :meth:`__iter__` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 0x9B])
        classes = np.array(sorted(self.by_class))
        for _ in range(self.n_batches):
            batch: list[int] = []
            for c in rng.choice(classes, size=self.p, replace=False):
                members = self.by_class[int(c)]
                take = rng.choice(members, size=self.k, replace=len(members) < self.k)
                batch.extend(int(i) for i in take)
            yield batch
