"""Explainer localisation benchmark on CUB-200-2011 or synthetic birds (Chen §4.1 Table 1).

``run_benchmark`` trains (or loads) an embedding network on the training classes (1-100),
explains test-class images (101-200) with every method below, scores the maps against the
ground-truth box and mask, and writes ``report.json``, ``report.md``, a sensitivity plot over M
(Chen Fig. 7a) and a qualitative grid (Chen Fig. 5) into the output folder.

Methods (keys of ``report["methods"]``; ``{M}`` and ``{K}`` are the profile's top-M and k-means
sizes, 50 and 50 in every profile):

* ``uniform`` - constant map (Chen baseline 1);
* ``gradcam_single_triplet``, ``gradcam_all_channels``, ``gradcam_top{M}`` and the same three
  with ``gradcampp_`` - sampled triplet-loss grad-weights (Chen §3.2): one valid triplet with all
  channels (baseline 2), ``N_s`` triplets with all channels (baseline 3), ``N_s`` triplets with
  the top-M channels (ours). Partners come from the test split, as in Chen §4.1;
* ``gradcam_transfer_exact``, ``gradcam_transfer_kmeans{K}`` (and ``gradcampp_``) - top-M
  weights transferred from the nearest training image (Chen §3.3) or k-means centre (Chen
  §4.1 storage analysis); the database holds training-class images with training partners;
* ``embeddingcam_point_all``, ``embeddingcam_point_top{M}``, ``embeddingcam_mean_all``,
  ``embeddingcam_mean_top{M}`` - EmbeddingCAM with the single-point and the normalised mean
  proxy of the image's test class (Bachhawat eq. 9-12);
* ``gradcam_vanilla``, ``gradcam_abs`` - retrieval Grad-CAM and Grad-CAM-abs (Taha eq. 6-7);
* ``l2caf`` - fast class-oblivious L2-CAF on the raw embedding (Taha eq. 1, 3).

Metrics per method: heatmap ratio in the box and in the mask (mean and std over images), WSOL
accuracy (largest component at ``t = 0.2``, IoU >= 0.5) and its threshold sweep, and seconds
per image (the method's own forward/backward work for a batch, divided by the batch size).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from houseprice.artifacts import atomic_write_bytes, atomic_write_json, atomic_write_text
from houseprice.data.cub.dataset import IMAGENET_MEAN, IMAGENET_STD, CUBAugConfig, CUBDataset
from houseprice.explain import (
    L2CAF,
    EmbeddingCAM,
    Explainer,
    GradCAMAbs,
    GradWeightDatabase,
    L2CAFConfig,
    RetrievalGradCAM,
    SampledGradCAM,
    SampledGradCAMPlusPlus,
    TripletSampler,
    UniformCAM,
    WeightTransferCAM,
    class_proxies,
    gradcam_weights,
    heatmap_ratio_in_box,
    heatmap_ratio_in_mask,
    normalize_maps,
    top_m_weights,
    upsample,
    weighted_sum,
)
from houseprice.explain.metrics import box_iou, wsol_boxes
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.embedding.model import (
    CONFIG_FILE,
    EmbeddingNet,
    EmbeddingTrainConfig,
    embed_dataset,
    load_embedding_net,
    recall_hits,
    retrieval_metrics,
    save_embedding_net,
    train_embedding,
)

THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 11))
WSOL_THRESHOLD = 0.2  # Chen §4.1, Bachhawat §4.1.1
WSOL_IOU = 0.5


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchProfile:
    """Everything a benchmark run depends on besides the data, seed and device."""

    name: str
    # synthetic birds generated when --data names a folder that does not exist yet
    synth_classes: int
    synth_images_per_class: int
    synth_px: int
    train: EmbeddingTrainConfig
    train_aug: CUBAugConfig = field(default_factory=lambda: CUBAugConfig(scale=(0.5, 1.0)))
    n_samples: int = 50  # N_s, triplets per anchor (Chen §4.1)
    top_m: int = 50  # M, capped by the layer's channel count
    kmeans_k: int = 50  # database compressed to K centres (Chen §4.1 storage analysis)
    n_candidates: int = 1000  # candidate triplets drawn per anchor to find N_s valid ones
    eval_images: int | None = None  # test images explained (class-stratified); None = all
    db_images: int | None = None  # training images in the grad-weight database; None = all
    batch_size: int = 32
    l2caf: L2CAFConfig = field(default_factory=L2CAFConfig)
    m_grid: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 50, 64, 128, 256, 512, 1024)
    n_runs: int = 3  # sampler seeds for the run-to-run spread of sampled vs proxy methods
    n_qualitative: int = 4
    needs_weights: bool = False  # training needs a local backbone initialisation

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        d["train_aug"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in d["train_aug"].items()
        }
        d["m_grid"] = list(self.m_grid)
        return d


PROFILES: dict[str, BenchProfile] = {
    "quick": BenchProfile(
        name="quick",
        synth_classes=20,
        synth_images_per_class=6,
        synth_px=64,
        train=EmbeddingTrainConfig(
            image_size=64,
            epochs=2,
            classes_per_batch=5,
            images_per_class=3,
            batches_per_epoch=3,
            lr=1e-3,
        ),
        n_samples=10,
        n_candidates=200,
        eval_images=12,
        db_images=None,
        batch_size=12,
        l2caf=L2CAFConfig(max_iter=60, patience=10),
        n_runs=2,
        n_qualitative=2,
    ),
    "standard": BenchProfile(
        name="standard",
        synth_classes=200,
        synth_images_per_class=30,
        synth_px=64,
        train=EmbeddingTrainConfig(
            image_size=64,
            epochs=15,
            classes_per_batch=16,
            images_per_class=4,
            lr=5e-4,
        ),
        eval_images=500,
        db_images=1500,
        batch_size=50,
        l2caf=L2CAFConfig(max_iter=300, patience=25),
    ),
    "paper": BenchProfile(
        name="paper",
        synth_classes=200,
        synth_images_per_class=60,
        synth_px=256,
        train=EmbeddingTrainConfig(
            backbone=BackboneConfig(name="resnet50"),
            image_size=224,
            epochs=40,
            classes_per_batch=32,
            images_per_class=4,
            lr=1e-4,
            eval_batch_size=64,
        ),
        train_aug=CUBAugConfig(),  # random resized crop, area 16-100 %, and flips at 224 px
        batch_size=32,
        needs_weights=True,
    ),
}


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


class TopMEmbeddingCAM(EmbeddingCAM):
    """EmbeddingCAM whose Grad-CAM weights keep only the top-M channels (Chen §3.2 rule)."""

    name: ClassVar[str] = "embeddingcam_topm"

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        *,
        top_m: int,
        proxies: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        super().__init__(model, target_layer, proxies=proxies)
        self.top_m = top_m

    def channel_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        return top_m_weights(gradcam_weights(activations, gradients), self.top_m)


@dataclass
class Batch:
    """One batch of evaluation images with their ground truth."""

    x: Tensor  # (B, 3, S, S) normalised images
    labels: Tensor  # (B,) test-class labels
    boxes: np.ndarray  # (B, 4) xyxy pixels
    masks: np.ndarray | None  # (B, S, S) bool, or None without segmentations
    has_mask: np.ndarray  # (B,) bool
    positions: np.ndarray  # (B,) positions in the evaluation subset


@dataclass
class Method:
    """A benchmark entry: an explainer plus how to build its per-batch target."""

    name: str
    family: str
    explainer: Explainer
    target: Callable[[Batch], Any]


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


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None, None
    return float(arr.mean()), float(arr.std())


def _summary(scores: Scores, r1_hits: np.ndarray) -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------
# Data and model
# --------------------------------------------------------------------------------------------


def _resolve_data(
    data: Path | None, cub: Path | None, prof: BenchProfile, seed: int, progress: bool
) -> tuple[Path, str]:
    if (data is None) == (cub is None):
        raise ValueError("give exactly one of data= (synthetic birds folder) or cub= (CUB root)")
    if cub is not None:
        root = Path(cub)
        if not root.is_dir():
            raise FileNotFoundError(f"CUB-200-2011 folder not found: {root}")
        return root, "cub-200-2011"
    root = Path(data)  # type: ignore[arg-type]
    if not root.exists():
        from houseprice.synth.birds.generate import generate_birds

        generate_birds(
            root,
            n_classes=prof.synth_classes,
            images_per_class=prof.synth_images_per_class,
            image_px=prof.synth_px,
            seed=seed,
            progress=progress,
        )
    name = "cub-200-2011"
    meta_path = root / "dataset.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{meta_path}: not valid JSON ({err})") from err
        generator = meta.get("generator", {}) if isinstance(meta, dict) else {}
        if isinstance(generator, dict) and str(generator.get("name", "")).endswith(
            ("synth.birds", "synth_birds")
        ):
            name = "synthetic-birds"
    return root, name


def _stratified(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
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


def _batches(
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


def _model(
    root: Path,
    prof: BenchProfile,
    model_dir: Path,
    weights: Path | None,
    seed: int,
    device: str,
    progress: bool,
) -> tuple[EmbeddingNet, dict[str, Any], float]:
    """Load the net from ``model_dir`` if it holds one, else train it there."""
    if (model_dir / CONFIG_FILE).is_file():
        net, meta = load_embedding_net(model_dir, device=device)
        return net, meta, 0.0
    config = prof.train
    if weights is not None:
        config = replace(config, weights=str(weights))
    train_set = CUBDataset(
        root, split="train", image_size=config.image_size, train_aug=True, aug=prof.train_aug
    )
    start = time.perf_counter()
    net, history = train_embedding(train_set, config, seed=seed, device=device, progress=progress)
    seconds = time.perf_counter() - start
    save_embedding_net(net, model_dir, config, history=history)
    _, meta = load_embedding_net(model_dir, device=device)  # the JSON as written
    return net, meta, seconds


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def _sampler(emb: Tensor, labels: Tensor, n: int, prof: BenchProfile, seed: int) -> TripletSampler:
    return TripletSampler(
        emb,
        labels,
        n_samples=n,
        margin=0.2,
        n_candidates=max(prof.n_candidates, n),
        seed=seed,
    )


def _build_database(
    explainer: SampledGradCAM,
    batches: list[Batch],
    top_m: int,
    progress: bool,
) -> tuple[GradWeightDatabase, float]:
    start = time.perf_counter()
    db = GradWeightDatabase.from_explainer(
        explainer,
        ((b.x, b.labels) for b in batches),
        top_m=top_m,
        labels=torch.cat([b.labels for b in batches]),
        progress=progress,
    )
    return db, time.perf_counter() - start


def _topm_maps(activations: Tensor, weights: Tensor, m: int | None, size: int) -> Tensor:
    """Chen eq. 4 with the top-M of given weights: ``(B, C, h, w), (B, C) -> (B, S, S)``."""
    raw = weighted_sum(activations, top_m_weights(weights, m)).clamp_min(0.0)
    return normalize_maps(upsample(raw, (size, size)))


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
) -> dict[str, Any]:
    """Run the explainer benchmark and write the report folder; returns the report dict.

    Args:
        data: synthetic-birds folder in the CUB layout; generated with the profile's size if it
            does not exist.
        cub: CUB-200-2011 root (official layout) instead of ``data``.
        out: report folder (``report.json``, ``report.md``, ``sensitivity_m.png``,
            ``qualitative.png``, the grad-weight databases, and the model when
            ``model_dir`` is not given).
        profile: ``quick`` | ``standard`` | ``paper`` (see :data:`PROFILES`).
        model_dir: load the embedding net from this folder if it holds one, else train and
            save it there (default ``out/model``, always trained).
        weights: local backbone initialisation for training (required by ``paper``).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    mdir = Path(model_dir) if model_dir is not None else out / "model"
    if prof.needs_weights and weights is None and not (mdir / CONFIG_FILE).is_file():
        raise ValueError(
            f"profile {prof.name!r} trains a {prof.train.backbone.name} from ImageNet weights: "
            "pass weights= (--weights FILE, a local torchvision state dict) or a trained "
            "model folder (--model DIR)"
        )
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"backbone weights file not found: {weights}")
    out.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter()
    timings: dict[str, float] = {}

    start = time.perf_counter()
    root, dataset_name = _resolve_data(data, cub, prof, seed, progress)
    timings["data_seconds"] = time.perf_counter() - start
    net, model_meta, timings["train_seconds"] = _model(
        root, prof, mdir, weights, seed, device, progress
    )
    cfg = EmbeddingTrainConfig.from_dict(model_meta["config"])
    size = cfg.image_size
    model = net.raw()  # explainers see the unnormalised embedding y (Bachhawat eq. 9, Taha 4.2)
    layer = net.target_layer
    n_channels = net.out_channels
    top_m = min(prof.top_m, n_channels)

    # ---- embeddings, retrieval metrics, partner sets ------------------------------------
    start = time.perf_counter()
    test_set = CUBDataset(root, split="test", image_size=size)
    train_set = CUBDataset(root, split="train", image_size=size)
    test_emb, test_labels = embed_dataset(
        net, test_set, batch_size=cfg.eval_batch_size, device=device, progress=progress
    )
    train_emb, train_labels = embed_dataset(
        net, train_set, batch_size=cfg.eval_batch_size, device=device, progress=progress
    )
    retrieval = retrieval_metrics(test_emb, test_labels, seed=seed)
    timings["embed_seconds"] = time.perf_counter() - start

    eval_idx = _stratified(test_labels.numpy(), prof.eval_images, seed)
    r1_hits = recall_hits(test_emb, test_labels, 1)[eval_idx]
    eval_batches = _batches(test_set, eval_idx, prof.batch_size, progress, "load test images")
    db_idx = _stratified(train_labels.numpy(), prof.db_images, seed)
    db_batches = _batches(train_set, db_idx, prof.batch_size, progress, "load train images")

    test_multi = _sampler(test_emb, test_labels, prof.n_samples, prof, seed)
    test_single = _sampler(test_emb, test_labels, 1, prof, seed)
    train_multi = _sampler(train_emb, train_labels, prof.n_samples, prof, seed)

    # ---- grad-weight databases over the training classes (Chen §3.3) --------------------
    databases: dict[str, dict[str, GradWeightDatabase]] = {}
    db_info: dict[str, Any] = {}
    k = min(prof.kmeans_k, len(db_idx))
    for base, cls in (("gradcam", SampledGradCAM), ("gradcampp", SampledGradCAMPlusPlus)):
        exact, seconds = _build_database(
            cls(model, layer, train_multi, top_m=top_m), db_batches, top_m, progress
        )
        start = time.perf_counter()
        compressed = exact.compress_kmeans(k, seed=seed)
        _ = exact.backend, compressed.backend  # build the search indexes before timing queries
        exact.save(out / "gradweights", name=base)
        databases[base] = {"exact": exact, "kmeans": compressed}
        db_info[base] = {
            "n_entries": len(exact),
            "kmeans_k": k,
            "build_seconds": seconds,
            "kmeans_seconds": time.perf_counter() - start,
        }

    proxies = class_proxies(test_emb, test_labels)  # Bachhawat eq. 11-12, test classes

    # ---- methods -------------------------------------------------------------------------
    def labels_of(b: Batch) -> Tensor:
        return b.labels

    def none_target(b: Batch) -> None:
        del b

    methods: list[Method] = [Method("uniform", "baseline", UniformCAM(), none_target)]
    for base, single_cls in (("gradcam", SampledGradCAM), ("gradcampp", SampledGradCAMPlusPlus)):
        methods += [
            Method(
                f"{base}_single_triplet",
                base,
                single_cls(model, layer, test_single, top_m=None),
                labels_of,
            ),
            Method(
                f"{base}_all_channels",
                base,
                single_cls(model, layer, test_multi, top_m=None),
                labels_of,
            ),
            Method(
                f"{base}_top{prof.top_m}",
                base,
                single_cls(model, layer, test_multi, top_m=top_m),
                labels_of,
            ),
        ]
    for base in ("gradcam", "gradcampp"):
        methods += [
            Method(
                f"{base}_transfer_exact",
                "transfer",
                WeightTransferCAM(model, layer, databases[base]["exact"]),
                none_target,
            ),
            Method(
                f"{base}_transfer_kmeans{prof.kmeans_k}",
                "transfer",
                WeightTransferCAM(model, layer, databases[base]["kmeans"]),
                none_target,
            ),
        ]
    methods += [
        Method("embeddingcam_point_all", "embeddingcam", EmbeddingCAM(model, layer), none_target),
        Method(
            f"embeddingcam_point_top{prof.top_m}",
            "embeddingcam",
            TopMEmbeddingCAM(model, layer, top_m=top_m),
            none_target,
        ),
        Method(
            "embeddingcam_mean_all",
            "embeddingcam",
            EmbeddingCAM(model, layer, proxies=proxies),
            labels_of,
        ),
        Method(
            f"embeddingcam_mean_top{prof.top_m}",
            "embeddingcam",
            TopMEmbeddingCAM(model, layer, top_m=top_m, proxies=proxies),
            labels_of,
        ),
        Method("gradcam_vanilla", "retrieval", RetrievalGradCAM(model, layer), none_target),
        Method("gradcam_abs", "retrieval", GradCAMAbs(model, layer), none_target),
        Method(
            "l2caf",
            "retrieval",
            L2CAF(model, layer, head=net.forward_head_raw, config=prof.l2caf),
            none_target,
        ),
    ]

    # run-to-run spread: sampled top-M with other sampler seeds vs the deterministic proxies
    reruns: dict[str, list[Method]] = {}
    for r in range(1, prof.n_runs):
        sampler_r = _sampler(test_emb, test_labels, prof.n_samples, prof, seed + r)
        reruns.setdefault(f"gradcam_top{prof.top_m}", []).append(
            Method("", "", SampledGradCAM(model, layer, sampler_r, top_m=top_m), labels_of)
        )
        reruns.setdefault(f"embeddingcam_point_top{prof.top_m}", []).append(
            Method("", "", TopMEmbeddingCAM(model, layer, top_m=top_m), none_target)
        )
        reruns.setdefault(f"embeddingcam_mean_top{prof.top_m}", []).append(
            Method("", "", TopMEmbeddingCAM(model, layer, top_m=top_m, proxies=proxies), labels_of)
        )

    # ---- explain the evaluation images -----------------------------------------------------
    keep = set(range(min(prof.n_qualitative, len(eval_idx))))
    scores = {m.name: Scores() for m in methods}
    rerun_scores = {name: [Scores() for _ in runs] for name, runs in reruns.items()}
    m_grid = [m for m in prof.m_grid if m < n_channels] + [n_channels]
    sweep: dict[int, Scores] = {m: Scores() for m in m_grid}
    start_eval = time.perf_counter()
    for batch in tqdm(eval_batches, desc="explain", disable=not progress):
        x = batch.x.to(device)
        for method in methods:
            target = method.target(batch)
            t0 = time.perf_counter()
            explanation = method.explainer.explain(x, target)
            seconds = time.perf_counter() - t0
            scores[method.name].add(batch, explanation.maps, seconds, keep)
            if "n_valid" in explanation.extras:
                scores[method.name].n_valid.extend(
                    explanation.extras["n_valid"].float().cpu().tolist()
                )
            if method.name == "gradcam_all_channels" and explanation.weights is not None:
                with torch.no_grad():
                    net.eval()
                    activations = net.forward_features(x)  # (B, C, h, w)
                for m in m_grid:
                    maps = _topm_maps(activations, explanation.weights, m, size)
                    sweep[m].add(batch, maps, 0.0, set())
        for name, runs in reruns.items():
            for run, store in zip(runs, rerun_scores[name], strict=True):
                maps = run.explainer.explain(x, run.target(batch)).maps
                store.add(batch, maps, 0.0, set())
    timings["explain_seconds"] = time.perf_counter() - start_eval

    # ---- report ------------------------------------------------------------------------------
    results = {name: _summary(s, r1_hits) for name, s in scores.items()}
    for name, runs in rerun_scores.items():
        per_run = [results[name]] + [_summary(s, r1_hits) for s in runs]
        bbox = [r["bbox_ratio_mean"] for r in per_run]
        mask = [r["mask_ratio_mean"] for r in per_run if r["mask_ratio_mean"] is not None]
        results[name]["runs"] = {
            "n_runs": len(per_run),
            "bbox_ratio_mean_per_run": bbox,
            "bbox_ratio_run_std": float(np.std(bbox)),
            "mask_ratio_run_std": float(np.std(mask)) if mask else None,
        }
    for base in ("gradcam", "gradcampp"):
        results[f"{base}_transfer_exact"]["database"] = db_info[base]
        results[f"{base}_transfer_kmeans{prof.kmeans_k}"]["database"] = db_info[base]
    sensitivity = []
    for m, s in sweep.items():
        summary = _summary(s, r1_hits)
        sensitivity.append(
            {
                "m": m,
                "all_channels": m == n_channels,
                "bbox_ratio_mean": summary["bbox_ratio_mean"],
                "bbox_ratio_std": summary["bbox_ratio_std"],
                "mask_ratio_mean": summary["mask_ratio_mean"],
                "mask_ratio_std": summary["mask_ratio_std"],
                "wsol_accuracy": summary["wsol_accuracy"],
            }
        )

    timings["total_seconds"] = time.perf_counter() - wall
    report: dict[str, Any] = {
        "dataset": dataset_name,
        "retrieval": retrieval,
        "methods": results,
        "claims": _claims(results, prof),
        "sensitivity_m": sensitivity,
        "setup": {
            "profile": prof.name,
            "data_root": str(root),
            "seed": seed,
            "device": device,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "model_dir": str(mdir),
            "backbone": cfg.backbone.name,
            "image_size": size,
            "n_channels": n_channels,
            "feature_map": list(_feature_hw(net, size)),
            "loss": cfg.loss,
            "epochs": cfg.epochs,
            "n_samples": prof.n_samples,
            "top_m": top_m,
            "kmeans_k": k,
            "n_test_images": len(test_labels),
            "n_test_classes": int(test_labels.unique().numel()),
            "n_eval_images": len(eval_idx),
            "n_train_images": len(train_labels),
            "n_database_images": len(db_idx),
            "wsol_threshold": WSOL_THRESHOLD,
            "wsol_iou": WSOL_IOU,
            "has_masks": bool(test_set.has_masks),
            "timings": timings,
            "profile_config": prof.to_dict(),
        },
    }
    report = _finite(report)
    atomic_write_json(out / "report.json", report)
    _write_figures(out, report, eval_batches, keep, scores, methods)
    atomic_write_text(out / "report.md", render_markdown(report))
    return report


def _feature_hw(net: EmbeddingNet, size: int) -> tuple[int, int]:
    with torch.no_grad():
        was = net.training
        net.eval()
        param = next(net.parameters())
        fmap = net.forward_features(torch.zeros(1, 3, size, size, device=param.device))
        net.train(was)
    return int(fmap.shape[2]), int(fmap.shape[3])


def _finite(obj: Any) -> Any:
    """Replace NaN/inf floats by None so the report is valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------
# The papers' orderings, measured
# --------------------------------------------------------------------------------------------


def _claims(results: dict[str, dict[str, Any]], prof: BenchProfile) -> list[dict[str, Any]]:
    """Check the orderings the papers report (Chen Table 1, Bachhawat Table 1, Taha Table 3)."""
    m, k = prof.top_m, prof.kmeans_k
    claims: list[dict[str, Any]] = []

    def value(method: str, metric: str) -> float | None:
        v = results[method].get(metric)
        return None if v is None else float(v)

    def chain(text: str, names: list[str], metric: str, slack: float = 0.0) -> None:
        vals = [value(n, metric) for n in names]
        if any(v is None for v in vals):
            holds = None
        else:
            holds = all(a > b - slack for a, b in itertools.pairwise(vals))  # type: ignore[operator]
        claims.append(
            {
                "claim": text,
                "metric": metric,
                "values": dict(zip(names, vals, strict=True)),
                "holds": holds,
            }
        )

    def close(text: str, a: str, b: str, metric: str, tol: float) -> None:
        va, vb = value(a, metric), value(b, metric)
        diff = None if va is None or vb is None else va - vb
        claims.append(
            {
                "claim": text,
                "metric": metric,
                "values": {a: va, b: vb},
                "difference": diff,
                "holds": None if diff is None else abs(diff) <= tol,
            }
        )

    for metric in ("bbox_ratio_mean", "mask_ratio_mean"):
        chain(
            f"Grad-CAM: top-{m} > all channels > single triplet > uniform (Chen Table 1)",
            [f"gradcam_top{m}", "gradcam_all_channels", "gradcam_single_triplet", "uniform"],
            metric,
        )
    for metric in ("bbox_ratio_mean", "mask_ratio_mean"):
        for variant in ("single_triplet", "all_channels", f"top{m}"):
            chain(
                f"Grad-CAM++ >= Grad-CAM ({variant}; Chen Table 1)",
                [f"gradcampp_{variant}", f"gradcam_{variant}"],
                metric,
                slack=1e-12,
            )
    for base in ("gradcam", "gradcampp"):
        for metric in ("bbox_ratio_mean", "mask_ratio_mean"):
            close(
                f"{base}: transferred top-{m} weights within 0.02 of the image's own (Chen §3.3)",
                f"{base}_transfer_exact",
                f"{base}_top{m}",
                metric,
                0.02,
            )
            close(
                f"{base}: k-means K={k} database within 0.02 of the full one (Chen §4.1)",
                f"{base}_transfer_kmeans{k}",
                f"{base}_transfer_exact",
                metric,
                0.02,
            )
    for proxy in ("point", "mean"):
        close(
            f"EmbeddingCAM {proxy} proxy top-{m} close (0.02) to sampled top-{m} (Bachhawat)",
            f"embeddingcam_{proxy}_top{m}",
            f"gradcam_top{m}",
            "bbox_ratio_mean",
            0.02,
        )
    runs_ecam = results[f"embeddingcam_point_top{m}"].get("runs", {})
    runs_samp = results[f"gradcam_top{m}"].get("runs", {})
    if runs_ecam:
        std_e = runs_ecam.get("bbox_ratio_run_std")
        std_s = runs_samp.get("bbox_ratio_run_std")
        claims.append(
            {
                "claim": "EmbeddingCAM has zero variance across runs; sampled top-M does not",
                "metric": "bbox_ratio_run_std",
                "values": {f"embeddingcam_point_top{m}": std_e, f"gradcam_top{m}": std_s},
                "holds": None if std_e is None or std_s is None else std_e == 0.0 < std_s,
            }
        )
    chain(
        "L2-CAF > Grad-CAM-abs > vanilla Grad-CAM (Taha Table 3)",
        ["l2caf", "gradcam_abs", "gradcam_vanilla"],
        "wsol_accuracy",
    )
    return claims


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _fmt(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def _num(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.1e}" if 0 < abs(v) < 0.01 else f"{v:.3f}"


def render_markdown(report: dict[str, Any]) -> str:
    """The human report: setup, Chen-style Table 1, all methods, sweep, claims, figures."""
    setup, res = report["setup"], report["methods"]
    m = setup["profile_config"]["top_m"]
    t = setup["timings"]
    lines = [
        f"# Explainer benchmark — {report['dataset']} ({setup['profile']} profile)",
        "",
        f"Embedding net: {setup['backbone']} at {setup['image_size']} px, "
        f"{setup['n_channels']} x {setup['feature_map'][0]} x {setup['feature_map'][1]} "
        f"explained map, {setup['loss']} loss, {setup['epochs']} epochs; "
        f"**Recall@1 {report['retrieval']['recall_at_1']:.3f}, "
        f"NMI {report['retrieval']['nmi']:.3f}** on {setup['n_test_images']} test images "
        f"of {setup['n_test_classes']} unseen classes.",
        "",
        f"Explained: {setup['n_eval_images']} test images (class-stratified); partners for "
        f"sampled methods from the test split (N_s = {setup['n_samples']}), top-M = "
        f"{setup['top_m']}; weight-transfer database over {setup['n_database_images']} "
        f"training images (k-means K = {setup['kmeans_k']}). WSOL: largest component at "
        f"t = {setup['wsol_threshold']}, hit when IoU >= {setup['wsol_iou']}.",
        "",
        f"Wall time {t['total_seconds']:.0f} s (data {t['data_seconds']:.0f} s, training "
        f"{t['train_seconds']:.0f} s, embeddings {t['embed_seconds']:.0f} s, explaining "
        f"{t['explain_seconds']:.0f} s; {setup['torch_threads']} torch threads, "
        f"{setup['device']}).",
        "",
        "## Visual attention accuracy (layout of Chen et al. Table 1)",
        "",
        "| Metric | Uniform | Grad-CAM ST | Grad-CAM all channels | Grad-CAM top-"
        f"{m} | Grad-CAM++ ST | Grad-CAM++ all channels | Grad-CAM++ top-{m} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cols = ["uniform"] + [
        f"{b}_{v}"
        for b in ("gradcam", "gradcampp")
        for v in ("single_triplet", "all_channels", f"top{m}")
    ]
    for label, key in (("BBox", "bbox_ratio"), ("Mask", "mask_ratio")):
        cells = [
            _fmt(res[c][f"{key}_mean"], None if c == "uniform" else res[c][f"{key}_std"])
            for c in cols
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| WSOL acc. | " + " | ".join(_fmt(res[c]["wsol_accuracy"]) for c in cols) + " |")
    lines += [
        "",
        "ST = single triplet. Ratios are mean ± std over images of the heatmap mass inside the "
        "box / mask.",
        "",
        "## All methods",
        "",
        "| Method | BBox ratio | Mask ratio | WSOL acc. (t=0.2) | best t (acc.) | "
        "WSOL ∧ R@1 | s / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res.items():
        sweep = r["threshold_sweep"]
        best = int(np.argmax(sweep["accuracy"]))
        lines.append(
            f"| {name} | {_fmt(r['bbox_ratio_mean'], r['bbox_ratio_std'])} | "
            f"{_fmt(r['mask_ratio_mean'], r['mask_ratio_std'])} | {r['wsol_accuracy']:.3f} | "
            f"{sweep['thresholds'][best]:.2f} ({sweep['accuracy'][best]:.3f}) | "
            f"{r['wsol_accuracy_r1_gated']:.3f} | {r['seconds_per_image'] * 1000:.1f} ms |"
        )
    thresholds = next(iter(res.values()))["threshold_sweep"]["thresholds"]
    lines += [
        "",
        "WSOL ∧ R@1 counts a hit only when the image's nearest test neighbour shares its class "
        "(Taha §4.2). Seconds per image exclude building the transfer databases "
        "(see `report.json`, `methods.*.database`).",
        "",
        "## WSOL accuracy over the threshold t",
        "",
        "| Method | " + " | ".join(f"{x:.2f}" for x in thresholds) + " |",
        "|---|" + "---|" * len(thresholds),
    ]
    for name, r in res.items():
        acc = r["threshold_sweep"]["accuracy"]
        lines.append(f"| {name} | " + " | ".join(f"{a:.2f}" for a in acc) + " |")
    lines += [
        "",
        "## Sensitivity to M (Grad-CAM, N_s triplets; as Chen Fig. 7a)",
        "",
        "![sensitivity over M](sensitivity_m.png)",
        "",
        "| M | BBox ratio | Mask ratio | WSOL acc. |",
        "|---|---|---|---|",
    ]
    for row in report["sensitivity_m"]:
        label = f"{row['m']} (all)" if row["all_channels"] else str(row["m"])
        lines.append(
            f"| {label} | {_fmt(row['bbox_ratio_mean'], row['bbox_ratio_std'])} | "
            f"{_fmt(row['mask_ratio_mean'], row['mask_ratio_std'])} | "
            f"{row['wsol_accuracy']:.3f} |"
        )
    lines += [
        "",
        "## The papers' orderings, measured",
        "",
        "| Claim | Metric | Values | Holds |",
        "|---|---|---|---|",
    ]
    for c in report["claims"]:
        vals = ", ".join(f"{n}: {_num(v)}" for n, v in c["values"].items())
        if c.get("difference") is not None:
            vals += f" (difference {c['difference']:+.3f})"
        holds = {True: "yes", False: "**no**", None: "n/a"}[c["holds"]]
        lines.append(f"| {c['claim']} | {c['metric']} | {vals} | {holds} |")
    lines += [
        "",
        "## Qualitative results (as Chen Fig. 5)",
        "",
        "Image with its box, mask, then one map per method; numbers are the box and mask ratios.",
        "",
        "![qualitative grid](qualitative.png)",
        "",
    ]
    return "\n".join(lines)


def _write_figures(
    out: Path,
    report: dict[str, Any],
    batches: list[Batch],
    keep: set[int],
    scores: dict[str, Scores],
    methods: list[Method],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    # sensitivity over M (Chen Fig. 7a)
    rows = report["sensitivity_m"]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    xs = np.arange(len(rows))
    for offset, key, label in ((-0.2, "bbox_ratio", "BBox"), (0.2, "mask_ratio", "Mask")):
        means = [r[f"{key}_mean"] if r[f"{key}_mean"] is not None else np.nan for r in rows]
        stds = [r[f"{key}_std"] if r[f"{key}_std"] is not None else 0.0 for r in rows]
        ax.bar(xs + offset, means, width=0.4, yerr=stds, capsize=2, label=label)
    ax.set_xticks(xs, [f"{r['m']}\n(all)" if r["all_channels"] else str(r["m"]) for r in rows])
    ax.set_xlabel("M (top-M channels)")
    ax.set_ylabel("heatmap ratio")
    ax.set_ylim(0, 1.1)
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    ax.set_title("Sensitivity of M (Grad-CAM, sampled triplets)")
    fig.tight_layout()
    _save_png(fig, out / "sensitivity_m.png")
    plt.close(fig)

    # qualitative grid (Chen Fig. 5)
    positions = sorted(keep)
    samples: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    mean = np.asarray(IMAGENET_MEAN)[:, None, None]
    std = np.asarray(IMAGENET_STD)[:, None, None]
    for b in batches:
        for row, pos in enumerate(b.positions.tolist()):
            if pos in keep:
                image = np.clip(b.x[row].numpy() * std + mean, 0, 1).transpose(1, 2, 0)
                mask = b.masks[row] if b.masks is not None else None
                samples[pos] = (image, b.boxes[row], mask)
    if not positions:
        return
    names = [m.name for m in methods]
    n_cols = 2 + len(names)
    fig, axes = plt.subplots(
        len(positions), n_cols, figsize=(1.25 * n_cols, 1.45 * len(positions)), squeeze=False
    )
    for r, pos in enumerate(positions):
        image, box, mask = samples[pos]
        ax = axes[r, 0]
        ax.imshow(image)
        x0, y0, x1, y1 = box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=1))
        ax.set_title("image + box" if r == 0 else "", fontsize=6)
        axes[r, 1].imshow(mask if mask is not None else np.zeros(image.shape[:2]), cmap="gray")
        axes[r, 1].set_title("mask" if r == 0 else "", fontsize=6)
        for c, name in enumerate(names):
            ax = axes[r, c + 2]
            heat = scores[name].maps.get(pos)
            if heat is None:
                continue
            ax.imshow(image)
            ax.imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            text = _ratio_text(heatmap_ratio_in_box(heat[None], box[None])[0])
            if mask is not None and mask.any():
                text += " / " + _ratio_text(heatmap_ratio_in_mask(heat[None], mask[None])[0])
            ax.set_xlabel(text, fontsize=6, labelpad=1)
            if r == 0:
                ax.set_title(name.replace("_", "\n", 1), fontsize=5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    _save_png(fig, out / "qualitative.png")
    plt.close(fig)


def _ratio_text(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "zero map"


def _save_png(fig: Any, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
