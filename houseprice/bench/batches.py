"""The images a benchmark explains: class-stratified subsets, loaded once in batches with their
ground-truth boxes and masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from houseprice.data.cub import CUBDataset


@dataclass
class Batch:
    """One batch of evaluation images with their ground truth."""

    x: Tensor  # (B, 3, S, S) normalised images
    labels: Tensor  # (B,) test-class labels
    boxes: np.ndarray  # (B, 4) xyxy pixels
    masks: np.ndarray | None  # (B, S, S) bool, or None without segmentations
    has_mask: np.ndarray  # (B,) bool
    positions: np.ndarray  # (B,) positions in the evaluation subset


def stratified(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """``n`` indices spread evenly over classes (round-robin over shuffled members)."""
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 0xE7A1])
    pools = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    picked: list[int] = []
    depth = 0
    while len(picked) < n:
        for pool in pools:
            if depth < len(pool) and len(picked) < n:
                picked.append(pool[depth])
        depth += 1
    return np.sort(np.asarray(picked, dtype=np.int64))


def load_batches(
    dataset: CUBDataset, indices: np.ndarray, batch_size: int, progress: bool, desc: str
) -> list[Batch]:
    """Load the samples at ``indices`` once, in batches."""
    out: list[Batch] = []
    for start in tqdm(
        range(0, len(indices), batch_size), desc=desc, disable=not progress, leave=False
    ):
        chunk = indices[start : start + batch_size]
        samples = [dataset[int(i)] for i in chunk]
        masks = None
        if dataset.has_masks:
            masks = torch.stack([s["mask"] for s in samples]).numpy()
        out.append(
            Batch(
                x=torch.stack([s["image"] for s in samples]),
                labels=torch.tensor([s["label"] for s in samples]),
                boxes=torch.stack([s["bbox"] for s in samples]).numpy().astype(np.float64),
                masks=masks,
                has_mask=np.array([bool(s["has_mask"]) for s in samples]),
                positions=np.arange(start, start + len(chunk)),
            )
        )
    return out
