"""Writing a synthetic-birds dataset in the official CUB-200-2011 layout.

This module owns :func:`generate_birds` / :func:`write_birds` (``houseprice data synth-birds``):
every class's images (``images/``, JPEG) and masks (``segmentations/``, PNG), the index files
(``images.txt``, ``classes.txt``, ``image_class_labels.txt``, ``train_test_split.txt``,
``bounding_boxes.txt``: tight boxes of the masks) and a ``dataset.json`` describing the
generator, its config and every class's attributes. The output is readable by
:func:`houseprice.data.cub.read_cub_index` (layout: ``data_specs/cub.md``), is a pure function
of the config (per-image RNG streams) and is written atomically
(:func:`houseprice.artifacts.atomic_directory`, which adds the ``manifest.json`` of ownership).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from houseprice.artifacts import atomic_directory
from houseprice.synth.birds.classes import PALETTE, BirdClass, make_classes
from houseprice.synth.birds.config import BirdsConfig
from houseprice.synth.birds.render import render_image

GENERATOR_NAME = "houseprice.synth.birds"
GENERATOR_VERSION = "1"
#: The ``manifest.json`` format of a synthetic-birds folder (houseprice wrote it).
MANIFEST_KIND = "houseprice-synth-birds"

#: The CUB index files, each a list of lines while the dataset is written.
Index = dict[str, list[str]]


def mask_bbox_xywh(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight CUB-style box ``(x, y, width, height)`` of a non-empty bool mask (H, W)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("mask is empty; it has no bounding box")
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def _write_text(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _write_class(
    folder: Path, cls: BirdClass, config: BirdsConfig, index: Index, first_id: int, bar: tqdm
) -> int:
    """Write one class's images and masks and add their index lines; return the last image id."""
    name = cls.name
    index["classes.txt"].append(f"{cls.class_id} {name}")
    (folder / "images" / name).mkdir(parents=True)
    (folder / "segmentations" / name).mkdir(parents=True)
    n_train = config.images_per_class // 2
    split_rng = np.random.default_rng([config.seed, cls.class_id, 0x5B1])
    is_train = np.zeros(config.images_per_class, dtype=bool)
    is_train[split_rng.permutation(config.images_per_class)[:n_train]] = True
    image_id = first_id
    for k in range(config.images_per_class):
        image_id += 1
        image, mask = render_image(cls, k, config)
        stem = f"{name}/Synth_Bird_{cls.class_id:03d}_{k + 1:04d}"
        image.save(folder / "images" / f"{stem}.jpg", format="JPEG", quality=config.jpeg_quality)
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(
            folder / "segmentations" / f"{stem}.png", format="PNG"
        )
        x, y, w, h = mask_bbox_xywh(mask)
        index["images.txt"].append(f"{image_id} {stem}.jpg")
        index["image_class_labels.txt"].append(f"{image_id} {cls.class_id}")
        index["train_test_split.txt"].append(f"{image_id} {int(is_train[k])}")
        box = f"{x:.1f} {y:.1f} {w:.1f} {h:.1f}"
        index["bounding_boxes.txt"].append(f"{image_id} {box}")
        bar.update(1)
    return image_id


def _birds_meta(config: BirdsConfig, classes: list[BirdClass], n_images: int) -> dict[str, Any]:
    """The ``dataset.json`` of a synthetic-birds folder."""
    half = config.n_classes // 2
    return {
        "format": "cub-200-2011",
        "generator": {"name": GENERATOR_NAME, "version": GENERATOR_VERSION, **asdict(config)},
        "seed": config.seed,
        "n_classes": config.n_classes,
        "images_per_class": config.images_per_class,
        "image_px": config.image_px,
        "n_images": n_images,
        "metric_split": {
            "train_class_ids": [1, half],
            "test_class_ids": [half + 1, config.n_classes],
        },
        "palette": {k: list(v) for k, v in PALETTE.items()},
        "classes": [asdict(c) for c in classes],
    }


def write_birds(
    out_dir: str | Path, config: BirdsConfig, *, progress: bool = True, overwrite: bool = False
) -> Path:
    """Generate the dataset described by ``config`` into ``out_dir``; see :func:`generate_birds`."""
    config.validate()
    out = Path(out_dir).expanduser().absolute()
    with atomic_directory(out, overwrite=overwrite, kind=MANIFEST_KIND) as tmp:
        classes = make_classes(config.n_classes, config.seed)
        index: Index = {
            "images.txt": [],
            "classes.txt": [],
            "image_class_labels.txt": [],
            "train_test_split.txt": [],
            "bounding_boxes.txt": [],
        }
        image_id = 0
        bar = tqdm(
            total=config.n_classes * config.images_per_class,
            desc="synth-birds",
            unit="img",
            disable=not progress,
        )
        with bar:
            for cls in classes:
                image_id = _write_class(tmp, cls, config, index, image_id, bar)
        for name, lines in index.items():
            _write_text(tmp / name, lines)
        meta = _birds_meta(config, classes, image_id)
        meta_text = json.dumps(meta, indent=1, sort_keys=True) + "\n"
        (tmp / "dataset.json").write_text(meta_text, encoding="utf-8")
    return out


def generate_birds(
    out_dir: str | Path,
    *,
    n_classes: int = 200,
    images_per_class: int = 60,
    image_px: int = 128,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic-birds dataset in the CUB-200-2011 layout to ``out_dir``; return it.

    Defaults are 200 classes x 60 images at 128 px (the profile sizes are in
    :mod:`houseprice.profiles`: ``get_profile("quick").birds`` is 20 x 6 at 64 px).
    Deterministic given the arguments. The folder is built in a temporary sibling and renamed
    into place; an existing non-empty ``out_dir`` is an error unless ``overwrite``, and even
    then it is replaced only if houseprice wrote it and nothing in it changed.
    """
    config = BirdsConfig(
        n_classes=n_classes, images_per_class=images_per_class, image_px=image_px, seed=seed
    )
    return write_birds(out_dir, config, progress=progress, overwrite=overwrite)


__all__ = ["GENERATOR_NAME", "GENERATOR_VERSION", "generate_birds", "mask_bbox_xywh", "write_birds"]
