"""Scoring explanations against the ground truth: per-method maps, box and mask ratios, WSOL
accuracy and its threshold sweep, Recall@1 gating, timing, run-to-run spread and the
sensitivity over M (Chen §4.1 Table 1, Fig. 7a; Taha §4.2 for the R@1-gated accuracy)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from houseprice.bench.batches import Batch
from houseprice.bench.methods import Method
from houseprice.explain import (
    heatmap_ratio_in_box,
    heatmap_ratio_in_mask,
    normalize_maps,
    top_m_weights,
    upsample,
    weighted_sum,
)
from houseprice.explain.metrics import box_iou, wsol_boxes

THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 11))
WSOL_THRESHOLD = 0.2  # Chen §4.1, Bachhawat §4.1.1
WSOL_IOU = 0.5


@dataclass
class Scores:
    """Per-image scores of one method, accumulated over batches."""

    bbox: list[float] = field(default_factory=list)
    mask: list[float] = field(default_factory=list)
    ious: list[np.ndarray] = field(default_factory=list)  # (T, B) per batch
    seconds: float = 0.0
    n_images: int = 0
    n_valid: list[float] = field(default_factory=list)
    maps: dict[int, np.ndarray] = field(default_factory=dict)  # qualitative positions -> map

    def add(self, batch: Batch, maps: Tensor, seconds: float, keep: set[int]) -> None:
        m = maps.detach().float().cpu().numpy()
        self.bbox.extend(heatmap_ratio_in_box(m, batch.boxes).tolist())
        if batch.masks is not None and batch.has_mask.any():
            sel = batch.has_mask
            self.mask.extend(heatmap_ratio_in_mask(m[sel], batch.masks[sel]).tolist())
        self.ious.append(np.stack([box_iou(wsol_boxes(m, t), batch.boxes) for t in THRESHOLDS]))
        self.seconds += seconds
        self.n_images += len(m)
        for row, pos in enumerate(batch.positions.tolist()):
            if pos in keep:
                self.maps[pos] = m[row]


@dataclass
class Scored:
    """Everything the explain loop measured."""

    scores: dict[str, Scores]  # per method name
    reruns: dict[str, list[Scores]]  # per method with reruns, one per extra sampler seed
    sweep: dict[int, Scores]  # per M (empty without a sweep method)
    seconds: float = 0.0


def topm_maps(activations: Tensor, weights: Tensor, m: int | None, size: int) -> Tensor:
    """Chen eq. 4 with the top-M of given weights: ``(B, C, h, w), (B, C) -> (B, S, S)``."""
    raw = weighted_sum(activations, top_m_weights(weights, m)).clamp_min(0.0)
    return normalize_maps(upsample(raw, (size, size)))


def explain_all(
    methods: list[Method],
    batches: list[Batch],
    *,
    features: Callable[[Tensor], Tensor],
    m_grid: list[int],
    size: int,
    keep: set[int],
    device: str,
    progress: bool,
) -> Scored:
    """Explain every batch with every method (and its reruns); ``features(x)`` gives the
    explained layer's activations for the sweep over M of the ``sweep`` method."""
    scored = Scored(
        scores={m.name: Scores() for m in methods},
        reruns={m.name: [Scores() for _ in m.reruns] for m in methods if m.reruns},
        sweep={m: Scores() for m in m_grid} if any(m.sweep for m in methods) else {},
    )
    start = time.perf_counter()
    for batch in tqdm(batches, desc="explain", disable=not progress):
        x = batch.x.to(device)
        for method in methods:
            t0 = time.perf_counter()
            explanation = method.explainer.explain(x, method.target(batch))
            seconds = time.perf_counter() - t0
            store = scored.scores[method.name]
            store.add(batch, explanation.maps, seconds, keep)
            if "n_valid" in explanation.extras:
                store.n_valid.extend(explanation.extras["n_valid"].float().cpu().tolist())
            if method.sweep and explanation.weights is not None:
                activations = features(x)  # (B, C, h, w)
                for m, sweep_scores in scored.sweep.items():
                    maps = topm_maps(activations, explanation.weights, m, size)
                    sweep_scores.add(batch, maps, 0.0, set())
        for method in methods:
            for run, store in zip(method.reruns, scored.reruns.get(method.name, []), strict=True):
                store.add(batch, run.explain(x, method.target(batch)).maps, 0.0, set())
    scored.seconds = time.perf_counter() - start
    return scored


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None, None
    return float(arr.mean()), float(arr.std())


def summary(scores: Scores, r1_hits: np.ndarray) -> dict[str, Any]:
    """A method's report entry; ``r1_hits`` gates WSOL hits by Recall@1 (Taha §4.2)."""
    bbox_mean, bbox_std = _mean_std(scores.bbox)
    mask_mean, mask_std = _mean_std(scores.mask)
    ious = np.concatenate(scores.ious, axis=1)  # (T, N)
    t_index = THRESHOLDS.index(WSOL_THRESHOLD)
    hit = ious[t_index] >= WSOL_IOU
    out: dict[str, Any] = {
        "bbox_ratio_mean": bbox_mean,
        "bbox_ratio_std": bbox_std,
        "mask_ratio_mean": mask_mean,
        "mask_ratio_std": mask_std,
        "wsol_accuracy": float(hit.mean()),
        "seconds_per_image": scores.seconds / max(scores.n_images, 1),
        "wsol_accuracy_r1_gated": float((hit & r1_hits).mean()),
        "threshold_sweep": {
            "thresholds": list(THRESHOLDS),
            "accuracy": [float(a) for a in (ious >= WSOL_IOU).mean(axis=1)],
            "mean_iou": [float(a) for a in ious.mean(axis=1)],
        },
        "n_images": scores.n_images,
        "n_mask_images": int(np.isfinite(np.asarray(scores.mask, dtype=float)).sum()),
    }
    if scores.n_valid:
        out["mean_valid_triplets"] = float(np.mean(scores.n_valid))
    return out


def method_results(
    methods: list[Method],
    scored: Scored,
    r1_hits: np.ndarray,
    databases: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """``report["methods"]``: summaries, run-to-run spread, transfer database information."""
    results = {name: summary(s, r1_hits) for name, s in scored.scores.items()}
    for name, runs in scored.reruns.items():
        per_run = [results[name]] + [summary(s, r1_hits) for s in runs]
        bbox = [r["bbox_ratio_mean"] for r in per_run]
        mask = [r["mask_ratio_mean"] for r in per_run if r["mask_ratio_mean"] is not None]
        results[name]["runs"] = {
            "n_runs": len(per_run),
            "bbox_ratio_mean_per_run": bbox,
            "bbox_ratio_run_std": float(np.std(bbox)),
            "mask_ratio_run_std": float(np.std(mask)) if mask else None,
        }
    for method in methods:
        if method.database is not None:
            results[method.name]["database"] = databases[method.database]
    return results


def sensitivity(sweep: dict[int, Scores], r1_hits: np.ndarray, n_channels: int) -> list[dict]:
    """``report["sensitivity_m"]``: ratios and WSOL accuracy per M (Chen Fig. 7a)."""
    rows = []
    for m, s in sweep.items():
        row = summary(s, r1_hits)
        rows.append(
            {
                "m": m,
                "all_channels": m == n_channels,
                "bbox_ratio_mean": row["bbox_ratio_mean"],
                "bbox_ratio_std": row["bbox_ratio_std"],
                "mask_ratio_mean": row["mask_ratio_mean"],
                "mask_ratio_std": row["mask_ratio_std"],
                "wsol_accuracy": row["wsol_accuracy"],
            }
        )
    return rows


def feature_fn(net: torch.nn.Module) -> Callable[[Tensor], Tensor]:
    """``x -> net.forward_features(x)`` in eval mode without autograd."""

    def features(x: Tensor) -> Tensor:
        with torch.no_grad():
            net.eval()
            return net.forward_features(x)  # type: ignore[operator]

    return features
