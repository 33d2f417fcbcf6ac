"""Localisation metrics for heatmaps: heatmap mass ratio and weakly supervised localisation.

* heatmap ratio (Chen §4.1, Bachhawat §4.1): heatmap mass inside a bounding box or mask divided
  by the total mass, per image;
* weakly supervised localisation (WSOL, Chen §4.1): binarise at ``t * max``, keep the largest
  connected component (8-connected, ``scipy.ndimage.label``), take its bounding box, count a
  hit when IoU with the ground-truth box is at least 0.5; and a sweep over thresholds;
* pointing game (Zhang et al. 2018, "Top-down neural attention by excitation backprop", §4.1):
  a hit when the map's maximum lies within a pixel tolerance of the mask (15 px at 224 px in
  the paper); ties among maximal pixels count as the share of tied pixels that hit, i.e. the
  expected hit of a uniformly random tie-break (a constant map scores the chance rate);
* signed mass: positive and negative mass of a signed map inside a mask (sign agreement).

Inputs are numpy arrays or torch tensors, batched: maps ``(B, H, W)``, boxes ``(B, 4)`` as
``(x0, y0, x1, y1)`` in continuous pixel coordinates (pixel ``(row i, col j)`` covers
``[j, j+1) x [i, i+1)``; it is inside a box when its centre ``(j+0.5, i+0.5)`` is), masks
``(B, H, W)`` booleans.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from torch import Tensor

ArrayLike = np.ndarray | Tensor | Sequence[float]

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _np(a: ArrayLike) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _maps(maps: ArrayLike) -> np.ndarray:
    m = _np(maps).astype(np.float64, copy=False)
    if m.ndim != 3:
        raise ValueError(f"maps must have shape (B, H, W), got {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("maps contain NaN or infinite values")
    return m


def _boxes(boxes: ArrayLike, batch: int | None = None) -> np.ndarray:
    b = _np(boxes).astype(np.float64, copy=False)
    if b.ndim != 2 or b.shape[1] != 4 or (batch is not None and b.shape[0] != batch):
        expected = f"({batch}, 4)" if batch is not None else "(B, 4)"
        raise ValueError(f"boxes must have shape {expected} as (x0, y0, x1, y1), got {b.shape}")
    if (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        bad = np.nonzero((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]))[0].tolist()
        raise ValueError(f"boxes at rows {bad} have x1 < x0 or y1 < y0 (expected xyxy)")
    return b


def box_masks(boxes: ArrayLike, shape: tuple[int, int]) -> np.ndarray:
    """``(B, H, W)`` boolean masks of the pixels whose centres lie inside each box."""
    b = _boxes(boxes)
    height, width = shape
    cols = np.arange(width) + 0.5
    rows = np.arange(height) + 0.5
    inside_x = (cols[None] >= b[:, 0:1]) & (cols[None] <= b[:, 2:3])  # (B, W)
    inside_y = (rows[None] >= b[:, 1:2]) & (rows[None] <= b[:, 3:4])  # (B, H)
    return inside_y[:, :, None] & inside_x[:, None, :]


def heatmap_ratio_in_mask(maps: ArrayLike, masks: ArrayLike) -> np.ndarray:
    """Heatmap mass inside each mask / total mass, ``(B,)``; NaN for an all-zero map."""
    m = _maps(maps)
    k = _np(masks)
    if k.shape != m.shape:
        raise ValueError(f"masks must have the maps' shape {m.shape}, got {k.shape}")
    if (m < 0).any():
        raise ValueError("maps must be non-negative for the heatmap ratio")
    total = m.sum(axis=(1, 2))
    inside = (m * k.astype(bool)).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)


def heatmap_ratio_in_box(maps: ArrayLike, boxes: ArrayLike) -> np.ndarray:
    """Heatmap mass inside each box / total mass, ``(B,)``; NaN for an all-zero map."""
    m = _maps(maps)
    return heatmap_ratio_in_mask(m, box_masks(_boxes(boxes, m.shape[0]), m.shape[1:]))


def wsol_boxes(maps: ArrayLike, threshold: float = 0.2) -> np.ndarray:
    """Box ``(B, 4)`` xyxy of the largest 8-connected component of ``map >= threshold * max``.

    An all-zero (or non-positive) map gives the whole image.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    m = _maps(maps)
    batch, height, width = m.shape
    out = np.zeros((batch, 4), dtype=np.float64)
    for i in range(batch):
        peak = m[i].max()
        if peak <= 0:
            out[i] = (0.0, 0.0, width, height)
            continue
        labels, n = ndimage.label(m[i] >= threshold * peak, structure=_EIGHT_CONNECTED)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        rows, cols = np.nonzero(labels == int(np.argmax(sizes)) + 1)
        out[i] = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    return out


def box_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Intersection over union of paired xyxy boxes ``(B, 4)`` -> ``(B,)`` (0 if both empty)."""
    x = _boxes(a)
    y = _boxes(b, x.shape[0])
    iw = np.clip(np.minimum(x[:, 2], y[:, 2]) - np.maximum(x[:, 0], y[:, 0]), 0, None)
    ih = np.clip(np.minimum(x[:, 3], y[:, 3]) - np.maximum(x[:, 1], y[:, 1]), 0, None)
    inter = iw * ih
    union = (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1]) + (y[:, 2] - y[:, 0]) * (y[:, 3] - y[:, 1])
    union = union - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def wsol_accuracy(
    maps: ArrayLike, boxes: ArrayLike, threshold: float = 0.2, iou: float = 0.5
) -> float:
    """Fraction of images whose WSOL box has IoU >= ``iou`` with the ground-truth box."""
    m = _maps(maps)
    gt = _boxes(boxes, m.shape[0])
    return float((box_iou(wsol_boxes(m, threshold), gt) >= iou).mean())


def threshold_sweep(
    maps: ArrayLike,
    boxes: ArrayLike,
    thresholds: Sequence[float] | np.ndarray | None = None,
    iou: float = 0.5,
) -> dict[str, np.ndarray]:
    """WSOL accuracy and mean IoU per threshold (default 0.05, 0.10, ..., 0.50).

    Returns ``{"thresholds": (T,), "accuracy": (T,), "mean_iou": (T,)}``.
    """
    m = _maps(maps)
    gt = _boxes(boxes, m.shape[0])
    ts = np.round(np.arange(1, 11) * 0.05, 2) if thresholds is None else np.asarray(thresholds)
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError("thresholds must be a non-empty 1-d sequence")
    ious = np.stack([box_iou(wsol_boxes(m, float(t)), gt) for t in ts])  # (T, B)
    return {
        "thresholds": ts.astype(np.float64),
        "accuracy": (ious >= iou).mean(axis=1),
        "mean_iou": ious.mean(axis=1),
    }


def _masks_like(m: np.ndarray, masks: ArrayLike) -> np.ndarray:
    k = _np(masks).astype(bool)
    if k.shape != m.shape:
        raise ValueError(f"masks must have the maps' shape {m.shape}, got {k.shape}")
    return k


def pointing_game(
    maps: ArrayLike, masks: ArrayLike, tolerance: float = 0.0, *, rtol: float = 1e-6
) -> np.ndarray:
    """Pointing-game hit ``(B,)`` in [0, 1] (Zhang et al. 2018 §4.1).

    A maximal pixel hits when a mask pixel lies within ``tolerance`` pixels (Euclidean, pixel
    centres) of it. Pixels within ``rtol * max`` of the maximum are tied; the hit is the share
    of tied pixels that hit (1 or 0 for a single maximum). An empty mask gives NaN.
    """
    m = _maps(maps)
    k = _masks_like(m, masks)
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    out = np.full(m.shape[0], np.nan)
    for i in range(m.shape[0]):
        if not k[i].any():
            continue
        near = ndimage.distance_transform_edt(~k[i]) <= tolerance  # within tolerance of mask
        peak = m[i].max()
        tied = m[i] >= peak - rtol * max(abs(peak), 1e-12)
        out[i] = float(near[tied].mean())
    return out


def signed_mass_in_mask(maps: ArrayLike, masks: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative mass of signed maps inside each mask: ``(pos (B,), neg (B,))``.

    ``neg`` is the magnitude of the negative part (>= 0); the map's mass on the mask is
    "more negative than positive" when ``neg > pos``.
    """
    m = _maps(maps)
    k = _masks_like(m, masks)
    pos = (np.clip(m, 0.0, None) * k).sum(axis=(1, 2))
    neg = (np.clip(-m, 0.0, None) * k).sum(axis=(1, 2))
    return pos, neg
