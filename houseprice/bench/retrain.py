"""The spread of explanation scores across retrained embedding nets (Bachhawat Table 1).

Bachhawat reports EmbeddingCAM's ``± 0.004`` as the standard deviation over 8 nets trained with
different initialisations, not over reruns of one net (EmbeddingCAM is deterministic, so reruns
on one net have zero spread by construction). :func:`retrain_spread` trains ``retrain_runs - 1``
more nets with the benchmark's training config and seeds ``seed + 1, seed + 2, ...``, explains
the same evaluation images with the variants registered with ``reruns=True`` (sampled Grad-CAM
top-M and EmbeddingCAM), and reports per net and the sample standard deviation across nets
(the benchmark's own net included).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from houseprice.bench.batches import Batch
from houseprice.bench.birds import embed_splits, train_or_load
from houseprice.bench.methods import Resources, bench_specs, build_methods, triplet_samplers
from houseprice.bench.profile import BenchProfile
from houseprice.bench.scoring import explain_all, feature_fn, summary
from houseprice.explain import class_proxies
from houseprice.vision.embedding import EmbeddingNet, recall_hits

METRICS = ("bbox_ratio_mean", "mask_ratio_mean", "wsol_accuracy")


def _one_net(
    net: EmbeddingNet,
    root: Path,
    prof: BenchProfile,
    res: Resources,
    batches: list[Batch],
    eval_idx: np.ndarray,
    seed: int,
    device: str,
) -> dict[str, Any]:
    """Scores of the rerun variants with ``net`` (samplers and proxies from its embeddings)."""
    splits = embed_splits(net, root, prof.train, seed, device, progress=False)
    res = Resources(
        model=net.raw(),
        layer=net.target_layer,
        head=net.forward_head_raw,
        n_channels=net.out_channels,
        top_m=res.top_m,
        kmeans_k=res.kmeans_k,
        samplers=triplet_samplers(splits.test_emb, splits.test_labels, prof, seed),
        proxies=class_proxies(splits.test_emb, splits.test_labels),
    )
    methods = build_methods(bench_specs(), res, prof, [], only_reruns=True)
    size = prof.train.image_size
    scored = explain_all(
        methods,
        batches,
        features=feature_fn(net),
        m_grid=[],
        size=size,
        keep=set(),
        device=device,
        progress=False,
    )
    r1 = recall_hits(splits.test_emb, splits.test_labels, 1)[eval_idx]
    scores = {}
    for name, s in scored.scores.items():
        row = summary(s, r1)
        scores[name] = {k: row[k] for k in (*METRICS, "wsol_accuracy_r1_gated")}
    return {"retrieval": splits.retrieval, "methods": scores}


def _spread(values: list[float | None]) -> float | None:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return float(arr.std(ddof=1)) if arr.size >= 2 else None


def retrain_spread(
    *,
    root: Path,
    prof: BenchProfile,
    res: Resources,
    main: dict[str, Any],
    batches: list[Batch],
    eval_idx: np.ndarray,
    out: Path,
    weights: Path | None,
    seed: int,
    device: str,
    progress: bool,
) -> dict[str, Any]:
    """``report["retrain_runs"]``: per-net scores and their spread across nets.

    ``main`` holds the benchmark net's ``{"retrieval", "methods"}``; the other nets are trained
    under ``out/retrained/seed_<s>`` (loaded from there when present).
    """
    nets: list[dict[str, Any]] = [{"seed": seed, "train_seconds": None, **main}]
    for r in range(1, prof.retrain_runs):
        start = time.perf_counter()
        model_dir = out / "retrained" / f"seed_{seed + r}"
        net, _, train_seconds = train_or_load(
            root, prof, model_dir, weights, seed + r, device, progress
        )
        row = _one_net(net, root, prof, res, batches, eval_idx, seed + r, device)
        row.update(seed=seed + r, train_seconds=train_seconds)
        row["seconds"] = time.perf_counter() - start
        nets.append(row)
    names = [n for n in nets[-1]["methods"] if all(n in net["methods"] for net in nets)]
    spread = {
        name: {
            f"{metric}_std": _spread([net["methods"][name][metric] for net in nets])
            for metric in METRICS
        }
        for name in names
    }
    recall = [net["retrieval"]["recall_at_1"] for net in nets]
    return {
        "n_nets": len(nets),
        "seeds": [net["seed"] for net in nets],
        "std": "sample standard deviation (ddof = 1) across nets",
        "recall_at_1_std": _spread(recall),
        "spread": spread,
        "nets": nets,
    }
