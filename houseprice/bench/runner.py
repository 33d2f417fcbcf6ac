"""The explainer localisation benchmark on CUB-200-2011 or synthetic birds (Chen §4.1 Table 1).

:func:`run_benchmark` orchestrates: data and net (:mod:`~houseprice.bench.birds`), the
evaluation images (:mod:`~houseprice.bench.batches`), the method list built from the explainer
registry (:mod:`~houseprice.bench.methods`), scoring (:mod:`~houseprice.bench.scoring`), the
papers' claims (:mod:`~houseprice.bench.claims`) and the report folder
(:mod:`~houseprice.bench.report`). The methods and metrics are described in
``docs/bench_explainers.md``.
"""

from __future__ import annotations

import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from houseprice.artifacts import atomic_write_json, atomic_write_text
from houseprice.bench.batches import Batch, load_batches, stratified
from houseprice.bench.birds import Splits, embed_splits, resolve_data, train_or_load
from houseprice.bench.claims import paper_claims
from houseprice.bench.methods import (
    Resources,
    bench_specs,
    build_databases,
    build_methods,
    paper_top_m,
    triplet_samplers,
)
from houseprice.bench.profile import BenchProfile, bench_profile
from houseprice.bench.report import finite, render_markdown, write_figures
from houseprice.bench.retrain import retrain_spread
from houseprice.bench.scoring import (
    WSOL_IOU,
    WSOL_THRESHOLD,
    explain_all,
    feature_fn,
    method_results,
    sensitivity,
)
from houseprice.errors import UserInputError
from houseprice.explain import class_proxies
from houseprice.vision.embedding import CONFIG_FILE, EmbeddingNet, EmbeddingTrainConfig, recall_hits


def _check_arguments(prof: BenchProfile, out: Path, model_dir: Path, weights: Path | None) -> None:
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} exists and is not a folder")
    if model_dir.is_dir() and not (model_dir / CONFIG_FILE).is_file() and any(model_dir.iterdir()):
        raise UserInputError(
            f"--model {model_dir} holds no embedding net ({CONFIG_FILE}) and is not empty; the "
            "benchmark writes its net only into a new or empty folder (a house-price model "
            "folder is not an embedding net)"
        )
    if prof.needs_weights and weights is None and not (model_dir / CONFIG_FILE).is_file():
        raise UserInputError(
            f"profile {prof.name!r} trains a {prof.train.backbone.name} from ImageNet weights: "
            "pass weights= (--weights FILE, a local torchvision state dict) or a trained "
            "model folder (--model DIR)"
        )
    if weights is not None and not Path(weights).is_file():
        raise UserInputError(f"backbone weights file not found: {weights}")


def _feature_hw(net: EmbeddingNet, size: int) -> tuple[int, int]:
    with torch.no_grad():
        was = net.training
        net.eval()
        param = next(net.parameters())
        fmap = net.forward_features(torch.zeros(1, 3, size, size, device=param.device))
        net.train(was)
    return int(fmap.shape[2]), int(fmap.shape[3])


def _setup(
    prof: BenchProfile,
    net: EmbeddingNet,
    cfg: EmbeddingTrainConfig,
    splits: Splits,
    res: Resources,
    sizes: dict[str, int],
    context: dict[str, Any],
) -> dict[str, Any]:
    """``report["setup"]``: profile, sizes, versions; ``context`` holds the run's arguments."""
    return {
        "profile": prof.name,
        "data_root": context["data_root"],
        "seed": context["seed"],
        "device": context["device"],
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "model_dir": context["model_dir"],
        "backbone": cfg.backbone.name,
        "image_size": cfg.image_size,
        "n_channels": net.out_channels,
        "feature_map": list(_feature_hw(net, cfg.image_size)),
        "loss": cfg.loss,
        "epochs": cfg.epochs,
        "n_samples": prof.n_samples,
        "top_m": res.top_m,
        "top_ms": list(res.top_ms),
        "retrain_runs": prof.retrain_runs,
        "kmeans_k": res.kmeans_k,
        "n_test_images": len(splits.test_labels),
        "n_test_classes": int(splits.test_labels.unique().numel()),
        "n_eval_images": sizes["eval"],
        "n_train_images": len(splits.train_labels),
        "n_database_images": sizes["database"],
        "wsol_threshold": WSOL_THRESHOLD,
        "wsol_iou": WSOL_IOU,
        "has_masks": bool(splits.test_set.has_masks),
        "timings": context["timings"],
        "profile_config": prof.to_dict(),
    }


def _resources(
    net: EmbeddingNet, prof: BenchProfile, splits: Splits, seed: int, n_db: int
) -> Resources:
    """Explainer inputs: raw-embedding model, layer, test-split samplers and proxies."""
    return Resources(
        model=net.raw(),  # explainers see the unnormalised y (Bachhawat eq. 9, Taha §4.2)
        layer=net.target_layer,
        head=net.forward_head_raw,
        n_channels=net.out_channels,
        top_m=min(prof.top_m, net.out_channels),
        kmeans_k=min(prof.kmeans_k, n_db),
        samplers=triplet_samplers(splits.test_emb, splits.test_labels, prof, seed),
        proxies=class_proxies(splits.test_emb, splits.test_labels),  # Bachhawat eq. 11-12
        extra_top_ms=(paper_top_m(net.out_channels, prof.paper_fraction),),
    )


def _eval_data(
    splits: Splits, prof: BenchProfile, seed: int, progress: bool
) -> tuple[np.ndarray, np.ndarray, list[Batch], list[Batch], int]:
    """Test indices of the explained images, their R@1 hits and batches, the database batches
    and its size."""
    eval_idx = stratified(splits.test_labels.numpy(), prof.eval_images, seed)
    r1_hits = recall_hits(splits.test_emb, splits.test_labels, 1)[eval_idx]
    eval_batches = load_batches(
        splits.test_set, eval_idx, prof.batch_size, progress, "load test images"
    )
    db_idx = stratified(splits.train_labels.numpy(), prof.db_images, seed)
    db_batches = load_batches(
        splits.train_set, db_idx, prof.batch_size, progress, "load train images"
    )
    return eval_idx, r1_hits, eval_batches, db_batches, len(db_idx)


def _data_and_net(
    data: Path | None,
    cub: Path | None,
    prof: BenchProfile,
    model_dir: Path,
    weights: Path | None,
    seed: int,
    device: str,
    progress: bool,
    timings: dict[str, float],
) -> tuple[Path, str, EmbeddingNet, EmbeddingTrainConfig, Splits]:
    """Resolve the data, train or load the net, embed both splits; records the timings."""
    start = time.perf_counter()
    root, dataset_name = resolve_data(data, cub, prof, seed, progress)
    timings["data_seconds"] = time.perf_counter() - start
    net, meta, timings["train_seconds"] = train_or_load(
        root, prof, model_dir, weights, seed, device, progress
    )
    cfg = EmbeddingTrainConfig.from_dict(meta["config"])
    start = time.perf_counter()
    splits = embed_splits(net, root, cfg, seed, device, progress)
    timings["embed_seconds"] = time.perf_counter() - start
    return root, dataset_name, net, cfg, splits


def run_benchmark(
    *,
    data: Path | None = None,
    cub: Path | None = None,
    out: Path,
    profile: str = "standard",
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    model_dir: Path | None = None,
    weights: Path | None = None,
    retrain_runs: int | None = None,
) -> dict[str, Any]:
    """Run the explainer benchmark and write the report folder; returns the report dict.

    Args:
        data: synthetic-birds folder in the CUB layout; generated with the profile's size if it
            does not exist.
        cub: CUB-200-2011 root (official layout) instead of ``data``.
        out: report folder (``report.json``, ``report.md``, ``sensitivity_m.png``,
            ``qualitative.png``, the grad-weight databases, and the model when
            ``model_dir`` is not given).
        profile: ``quick`` | ``standard`` | ``paper`` (``houseprice.profiles``).
        model_dir: load the embedding net from this folder if it holds one, else train and
            save it there (default ``out/model``, always trained).
        weights: local backbone initialisation for training (required by ``paper``).
        retrain_runs: embedding nets for the spread across retrained nets (Bachhawat Table 1):
            the benchmark's net plus ``retrain_runs - 1`` trained with seeds ``seed + 1, ...``
            (under ``out/retrained/``); ``None`` = the profile's (1: not measured).
    """
    prof = bench_profile(profile)
    if retrain_runs is not None:
        if isinstance(retrain_runs, bool) or not 1 <= retrain_runs <= 32:
            raise UserInputError(f"retrain_runs must be in [1, 32], got {retrain_runs}")
        prof = replace(prof, retrain_runs=int(retrain_runs))
    out = Path(out)
    mdir = Path(model_dir) if model_dir is not None else out / "model"
    _check_arguments(prof, out, mdir, weights)
    out.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter()
    timings: dict[str, float] = {}
    root, name, net, cfg, splits = _data_and_net(
        data, cub, prof, mdir, weights, seed, device, progress, timings
    )
    eval_idx, r1_hits, eval_batches, db_batches, n_db = _eval_data(splits, prof, seed, progress)

    res = _resources(net, prof, splits, seed, n_db)
    specs = bench_specs()
    train_samplers = triplet_samplers(splits.train_emb, splits.train_labels, prof, seed)
    db_info = build_databases(specs, res, train_samplers, db_batches, out, seed, progress)
    reruns = [
        triplet_samplers(splits.test_emb, splits.test_labels, prof, seed + r)
        for r in range(1, prof.n_runs)
    ]
    methods = build_methods(specs, res, prof, reruns)

    keep = set(range(min(prof.n_qualitative, len(r1_hits))))
    below = {m for m in (*prof.m_grid, *res.top_ms) if m < res.n_channels}
    m_grid = [*sorted(below), res.n_channels]
    scored = explain_all(
        methods,
        eval_batches,
        features=feature_fn(net),
        m_grid=m_grid,
        size=cfg.image_size,
        keep=keep,
        device=device,
        progress=progress,
    )
    timings["explain_seconds"] = scored.seconds
    results = method_results(methods, scored, r1_hits, db_info)
    retrained = None
    if prof.retrain_runs > 1:
        start = time.perf_counter()
        main = {"retrieval": splits.retrieval, "methods": results}
        retrained = retrain_spread(
            root=root,
            prof=prof,
            res=res,
            main=main,
            batches=eval_batches,
            eval_idx=eval_idx,
            out=out,
            weights=weights,
            seed=seed,
            device=device,
            progress=progress,
        )
        timings["retrain_seconds"] = time.perf_counter() - start
    timings["total_seconds"] = time.perf_counter() - wall
    context = {"data_root": str(root), "seed": seed, "device": device, "model_dir": str(mdir)}
    sizes = {"eval": len(r1_hits), "database": n_db}
    report: dict[str, Any] = {
        "dataset": name,
        "retrieval": splits.retrieval,
        "methods": results,
        "claims": paper_claims(results, prof, top_ms=res.top_ms, retrained=retrained),
        "sensitivity_m": sensitivity(scored.sweep, r1_hits, res.n_channels),
        **({"retrain_runs": retrained} if retrained is not None else {}),
        "setup": _setup(prof, net, cfg, splits, res, sizes, {**context, "timings": timings}),
    }
    report = finite(report)
    atomic_write_json(out / "report.json", report)
    maps = {m.name: scored.scores[m.name].maps for m in methods}
    write_figures(out, report, eval_batches, keep, maps)
    atomic_write_text(out / "report.md", render_markdown(report))
    return report
