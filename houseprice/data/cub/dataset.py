"""CUB-200-2011 in its official folder layout: index reader, validation and torch Dataset.

This module owns
* :func:`read_cub_index` — parses ``images.txt``, ``classes.txt``, ``image_class_labels.txt``,
  ``train_test_split.txt`` and ``bounding_boxes.txt``, cross-checks every id and every image
  file, and locates the optional ``segmentations/`` PNGs (one row per image);
* the metric-learning class split used by the papers (Chen et al. 2020 §4.1, Taha et al. 2020
  §4.2): the first half of the classes (1-100) train, the second half (101-200) test;
* :class:`CUBDataset` — normalised image tensors with their bounding box and segmentation mask
  following every resize/crop/flip (:mod:`houseprice.data.cub.transforms`).

The human description of the layout and of every check is ``data_specs/cub.md``. The
synthetic stand-in written by :mod:`houseprice.synth.birds.generate` uses exactly this layout.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as F

from houseprice.data.cub.transforms import (
    center_crop,
    clip_boxes,
    hflip,
    random_resized_crop,
    resize,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INDEX_FILES = (
    "images.txt",
    "classes.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
)
INDEX_COLUMNS = (
    "image_id",
    "path",
    "rel_path",
    "class_id",
    "class_name",
    "is_train_official",
    "x",
    "y",
    "w",
    "h",
    "seg_path",
)
_MAX_LISTED = 5  # how many offending items an error message spells out

Split = Literal["train", "test", "all"]
ClassSplit = Literal["metric", "official"]
_V = TypeVar("_V")


class CUBFormatError(ValueError):
    """The folder is not a valid CUB-200-2011 layout; the message names file, line and rule."""


class CUBMissingSegmentationWarning(UserWarning):
    """Some or all segmentation PNGs are absent; mask metrics skip those images."""


# --------------------------------------------------------------------------------------------
# Index reading and validation
# --------------------------------------------------------------------------------------------


def find_cub_root(root: str | Path) -> Path:
    """Return the folder holding ``images.txt``: ``root`` itself or ``root/CUB_200_2011``.

    The second form is what unpacking the official ``CUB_200_2011.tgz`` produces.
    """
    root = Path(root).expanduser().absolute()
    if not root.exists():
        raise CUBFormatError(f"CUB root {root} does not exist")
    if not root.is_dir():
        raise CUBFormatError(f"CUB root {root} is not a folder")
    if (root / "images.txt").is_file():
        return root
    nested = root / "CUB_200_2011"
    if (nested / "images.txt").is_file():
        return nested
    raise CUBFormatError(
        f"{root} is not a CUB-200-2011 folder: expected {root / 'images.txt'} "
        f"(or {nested / 'images.txt'}) next to {', '.join(INDEX_FILES[1:])} and images/"
    )


def _find_segmentations(root: Path, segmentations: str | Path | None) -> Path | None:
    if segmentations is not None:
        seg_root = Path(segmentations).expanduser().absolute()
        if not seg_root.is_dir():
            raise CUBFormatError(f"segmentations folder {seg_root} does not exist")
        return seg_root
    candidates = [root / "segmentations"]
    if root.name == "CUB_200_2011":  # segmentations.tgz unpacks next to CUB_200_2011/
        candidates.append(root.parent / "segmentations")
    return next((c for c in candidates if c.is_dir()), None)


def _read_rows(
    path: Path, n_fields: int, expected: str, *, spaces_in_last: bool = False
) -> list[tuple[int, list[str]]]:
    """Read non-blank lines as ``(line_number, fields)``.

    With ``spaces_in_last`` the last field (a path or folder name) may contain spaces.
    """
    if not path.is_file():
        raise CUBFormatError(f"missing index file {path} (expected lines '{expected}')")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CUBFormatError(f"{path}: not UTF-8 text ({exc})") from exc
    rows: list[tuple[int, list[str]]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = line.split(maxsplit=n_fields - 1)
        if len(fields) != n_fields or (not spaces_in_last and len(fields[-1].split()) != 1):
            raise CUBFormatError(
                f"{path}:{lineno}: expected '{expected}' ({n_fields} fields); got {line!r}"
            )
        rows.append((lineno, fields))
    if not rows:
        raise CUBFormatError(f"{path} is empty (expected lines '{expected}')")
    return rows


def _parse_id(path: Path, lineno: int, value: str, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 1:
        raise CUBFormatError(f"{path}:{lineno}: {what} must be a positive integer; got {value!r}")
    return number


def _parse_float(path: Path, lineno: int, value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise CUBFormatError(f"{path}:{lineno}: {what} must be a finite number; got {value!r}")
    return number


def _keyed(
    path: Path,
    rows: list[tuple[int, list[str]]],
    what: str,
    parse: Callable[[int, list[str]], _V],
) -> dict[int, tuple[int, _V]]:
    """Map ``id -> (line_number, parse(line_number, fields))``; duplicate ids are an error."""
    out: dict[int, tuple[int, _V]] = {}
    for lineno, fields in rows:
        key = _parse_id(path, lineno, fields[0], what)
        if key in out:
            raise CUBFormatError(
                f"{path}:{lineno}: duplicate {what} {key} (first given on line {out[key][0]})"
            )
        out[key] = (lineno, parse(lineno, fields))
    return out


def _check_same_ids(
    images: dict[int, tuple[int, str]], other: dict[int, tuple[int, _V]], path: Path
) -> None:
    for key, (lineno, _) in other.items():
        if key not in images:
            raise CUBFormatError(
                f"{path}:{lineno}: image id {key} is not listed in images.txt "
                "(every file must list exactly the ids of images.txt)"
            )
    missing = sorted(set(images) - set(other))
    if missing:
        shown = ", ".join(str(i) for i in missing[:_MAX_LISTED])
        raise CUBFormatError(
            f"{path}: no line for {len(missing)} image id(s) listed in images.txt "
            f"(e.g. {shown}); every file must list exactly the ids of images.txt"
        )


def read_cub_index(
    root: str | Path, *, segmentations: str | Path | None = None, check_files: bool = True
) -> pd.DataFrame:
    """Read and validate a CUB-200-2011 folder; return one row per image sorted by image id.

    Columns: ``image_id`` (int), ``path`` (absolute image path), ``rel_path`` (as in
    images.txt), ``class_id`` (int, 1-based), ``class_name`` (class folder), ``is_train_official``
    (bool), ``x, y, w, h`` (box in pixels, as bounding_boxes.txt), ``seg_path`` (absolute PNG
    path, or None when that segmentation is missing).

    ``segmentations`` overrides where the segmentation PNGs live (default ``root/segmentations``,
    or ``../segmentations`` next to an unpacked ``CUB_200_2011/``). Malformed lines, ids that
    disagree between files, image folders that disagree with the labels and missing image files
    raise :class:`CUBFormatError`; missing segmentations only warn once (with the count).
    ``check_files=False`` skips the per-file existence checks (images and segmentations).
    """
    root = find_cub_root(root)
    images_dir = root / "images"
    if check_files and not images_dir.is_dir():
        raise CUBFormatError(f"missing image folder {images_dir} (images.txt paths are under it)")

    p_images, p_classes, p_labels, p_split, p_boxes = (root / name for name in INDEX_FILES)
    classes = _keyed(
        p_classes,
        _read_rows(p_classes, 2, "<class_id> <class_folder>", spaces_in_last=True),
        "class id",
        lambda _ln, f: f[1],
    )
    seen_names: dict[str, int] = {}
    for cid, (lineno, name) in classes.items():
        if name in seen_names:
            raise CUBFormatError(
                f"{p_classes}:{lineno}: class folder {name!r} already used by class "
                f"{seen_names[name]}"
            )
        seen_names[name] = cid

    images = _keyed(
        p_images,
        _read_rows(p_images, 2, "<image_id> <class_folder>/<file>.jpg", spaces_in_last=True),
        "image id",
        lambda _ln, f: f[1],
    )
    labels = _keyed(
        p_labels,
        _read_rows(p_labels, 2, "<image_id> <class_id>"),
        "image id",
        lambda ln, f: _parse_id(p_labels, ln, f[1], "class id"),
    )

    def parse_flag(lineno: int, fields: list[str]) -> bool:
        if fields[1] not in ("0", "1"):
            raise CUBFormatError(
                f"{p_split}:{lineno}: is_training_image must be 0 or 1; got {fields[1]!r}"
            )
        return fields[1] == "1"

    split = _keyed(
        p_split,
        _read_rows(p_split, 2, "<image_id> <is_training_image>"),
        "image id",
        parse_flag,
    )

    def parse_box(lineno: int, fields: list[str]) -> tuple[float, float, float, float]:
        x, y, w, h = (
            _parse_float(p_boxes, lineno, v, name)
            for v, name in zip(fields[1:], ("x", "y", "width", "height"), strict=True)
        )
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise CUBFormatError(
                f"{p_boxes}:{lineno}: expected x >= 0, y >= 0, width > 0, height > 0; "
                f"got x={x}, y={y}, width={w}, height={h}"
            )
        return x, y, w, h

    boxes = _keyed(
        p_boxes,
        _read_rows(p_boxes, 5, "<image_id> <x> <y> <width> <height>"),
        "image id",
        parse_box,
    )
    for other, path in ((labels, p_labels), (split, p_split), (boxes, p_boxes)):
        _check_same_ids(images, other, path)

    records: list[dict[str, Any]] = []
    missing_images: list[str] = []
    for image_id in sorted(images):
        lineno, rel = images[image_id]
        rel_path = PurePosixPath(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts or len(rel_path.parts) < 2:
            raise CUBFormatError(
                f"{p_images}:{lineno}: expected a relative path '<class_folder>/<file>.jpg' "
                f"inside images/; got {rel!r}"
            )
        label_line, class_id = labels[image_id]
        if class_id not in classes:
            raise CUBFormatError(
                f"{p_labels}:{label_line}: class id {class_id} of image {image_id} is not "
                f"listed in classes.txt"
            )
        class_name = classes[class_id][1]
        if rel_path.parts[0] != class_name:
            raise CUBFormatError(
                f"{p_images}:{lineno}: image {image_id} is in folder {rel_path.parts[0]!r} but "
                f"image_class_labels.txt line {label_line} gives class {class_id} "
                f"({class_name!r})"
            )
        image_path = images_dir.joinpath(*rel_path.parts)
        if check_files and not image_path.is_file():
            missing_images.append(f"line {lineno} ({image_path})")
        x, y, w, h = boxes[image_id][1]
        records.append(
            {
                "image_id": image_id,
                "path": str(image_path),
                "rel_path": rel,
                "class_id": class_id,
                "class_name": class_name,
                "is_train_official": split[image_id][1],
                "x": x,
                "y": y,
                "w": w,
                "h": h,
                "seg_path": None,
            }
        )
    if missing_images:
        raise CUBFormatError(
            f"{p_images}: {len(missing_images)} listed image file(s) are missing, e.g. "
            + "; ".join(missing_images[:_MAX_LISTED])
        )

    seg_root = _find_segmentations(root, segmentations)
    if seg_root is None:
        warnings.warn(
            f"no segmentations/ folder found for {root}: masks are disabled and mask metrics "
            "will be skipped (bounding boxes are still used)",
            CUBMissingSegmentationWarning,
            stacklevel=2,
        )
    else:
        n_missing, example = 0, ""
        for rec in records:
            seg = seg_root.joinpath(*PurePosixPath(rec["rel_path"]).with_suffix(".png").parts)
            if check_files and not seg.is_file():
                n_missing += 1
                example = example or str(seg)
                continue
            rec["seg_path"] = str(seg)
        if n_missing:
            warnings.warn(
                f"{n_missing} of {len(records)} segmentation PNG(s) are missing under {seg_root} "
                f"(e.g. {example}); masks are disabled for those images and mask metrics skip "
                "them",
                CUBMissingSegmentationWarning,
                stacklevel=2,
            )

    frame = pd.DataFrame.from_records(records, columns=list(INDEX_COLUMNS))
    # keep None (not NaN) for missing segmentations
    frame["seg_path"] = pd.Series([rec["seg_path"] for rec in records], dtype=object)
    frame.attrs["root"] = str(root)
    frame.attrs["class_names"] = {cid: name for cid, (_, name) in sorted(classes.items())}
    return frame


def metric_class_split(class_ids: list[int] | np.ndarray) -> tuple[list[int], list[int]]:
    """Split class ids into (train, test) halves: sorted ids, first ``K // 2`` train.

    For CUB-200-2011 this is classes 1-100 train and 101-200 test (Chen et al. 2020 §4.1).
    """
    ids = sorted({int(c) for c in class_ids})
    half = len(ids) // 2
    return ids[:half], ids[half:]


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CUBAugConfig:
    """Training augmentation: random resized crop (area ``scale``, aspect ``ratio``) + hflip."""

    scale: tuple[float, float] = (0.16, 1.0)  # a common choice in deep-metric-learning code
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    hflip_p: float = 0.5


class CUBDataset(Dataset[dict[str, Any]]):
    """CUB-200-2011 (or the synthetic stand-in) as dict samples with aligned box and mask.

    Sample keys: ``image`` float (3, S, S) normalised with ImageNet mean/std; ``label`` int,
    0-based index of the class in :attr:`classes` (the classes of this split); ``class_id`` int
    (1-based, as classes.txt); ``image_id`` int; ``bbox`` float (4,) XYXY in pixels of the
    returned image, clipped to it; ``has_mask`` bool; ``mask`` bool (S, S) — present only when
    :attr:`has_masks`, and all False with ``has_mask=False`` for an image whose segmentation is
    missing (so batches collate); ``path`` str.

    Evaluation transform: resize the shorter side to S, centre-crop S. Training transform
    (``train_aug=True``): random resized crop to S then horizontal flip, drawn from torch's
    global RNG (seed it, and DataLoader workers, for reproducibility).

    ``class_split="metric"``: classes are split in halves (1-100 train / 101-200 test on CUB);
    ``"official"``: images by ``train_test_split.txt``, all classes in both. ``split="all"``
    returns every image. ``load_masks=None`` loads masks when any segmentation exists; ``True``
    requires them; ``False`` never loads them. Soft masks are resampled bilinearly and binarised
    at ``mask_threshold`` (CUB's 0-255 agreement levels) after the transform.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: Split = "train",
        image_size: int = 128,
        train_aug: bool = False,
        class_split: ClassSplit | str = "metric",
        load_masks: bool | None = None,
        mask_threshold: int = 128,
        aug: CUBAugConfig | None = None,
        segmentations: str | Path | None = None,
    ) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all'; got {split!r}")
        if class_split not in ("metric", "official"):
            raise ValueError(f"class_split must be 'metric' or 'official'; got {class_split!r}")
        if image_size < 1:
            raise ValueError(f"image_size must be a positive int; got {image_size}")
        if not 0 <= mask_threshold <= 255:
            raise ValueError(f"mask_threshold must be in [0, 255]; got {mask_threshold}")
        index = read_cub_index(root, segmentations=segmentations)
        all_classes = sorted(index.attrs["class_names"])
        if split == "all":
            keep_classes = all_classes
            rows = index
        elif class_split == "metric":
            train_c, test_c = metric_class_split(all_classes)
            keep_classes = train_c if split == "train" else test_c
            rows = index[index["class_id"].isin(keep_classes)]
        else:
            keep_classes = all_classes
            rows = index[index["is_train_official"] == (split == "train")]
        if rows.empty:
            raise CUBFormatError(
                f"split {split!r} (class_split={class_split!r}) of {index.attrs['root']} is "
                f"empty: {len(index)} images, {len(all_classes)} classes"
            )
        self.index: pd.DataFrame = rows.reset_index(drop=True)
        self.root = Path(index.attrs["root"])
        self.split = split
        self.class_split = class_split
        self.image_size = int(image_size)
        self.train_aug = bool(train_aug)
        self.aug = aug or CUBAugConfig()
        self.mask_threshold = int(mask_threshold)
        self.class_ids_in_split: list[int] = list(keep_classes)
        self.classes: list[str] = [index.attrs["class_names"][c] for c in keep_classes]
        label_of = {cid: i for i, cid in enumerate(keep_classes)}
        self._labels = np.array([label_of[c] for c in self.index["class_id"]], dtype=np.int64)
        any_seg = bool(self.index["seg_path"].notna().any())
        if load_masks and not any_seg:
            raise CUBFormatError(
                f"load_masks=True but no segmentation PNG was found for split {split!r} of "
                f"{self.root} (expected segmentations/<class_folder>/<file>.png)"
            )
        self._use_masks = any_seg if load_masks is None else bool(load_masks)
        self._records = self.index.to_dict("records")

    @property
    def has_masks(self) -> bool:
        """True when samples carry a ``mask`` (some segmentation exists and masks are on)."""
        return self._use_masks

    @property
    def num_classes(self) -> int:
        """Number of classes in this split (labels are ``0 .. num_classes - 1``)."""
        return len(self.class_ids_in_split)

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int64 labels of every sample, in order (for samplers)."""
        return self._labels

    @property
    def class_ids(self) -> np.ndarray:
        """``(N,)`` int64 1-based class ids of every sample."""
        return self.index["class_id"].to_numpy(dtype=np.int64)

    @property
    def image_ids(self) -> np.ndarray:
        """``(N,)`` int64 image ids of every sample."""
        return self.index["image_id"].to_numpy(dtype=np.int64)

    def __len__(self) -> int:
        return len(self._records)

    def load_raw(self, i: int) -> tuple[Image.Image, torch.Tensor, torch.Tensor | None]:
        """Untransformed ``(RGB image, bbox XYXY (4,), soft uint8 mask (H, W) or None)``."""
        rec = self._records[i]
        try:
            with Image.open(rec["path"]) as im:
                image = im.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise CUBFormatError(f"cannot read image {rec['path']}: {exc}") from exc
        width, height = image.size
        box = torch.tensor(
            [rec["x"], rec["y"], rec["x"] + rec["w"], rec["y"] + rec["h"]], dtype=torch.float32
        )
        box = clip_boxes(box, height, width)
        mask: torch.Tensor | None = None
        if self._use_masks and isinstance(rec["seg_path"], str):
            try:
                with Image.open(rec["seg_path"]) as seg:
                    seg_l = seg.convert("L")
            except (UnidentifiedImageError, OSError) as exc:
                raise CUBFormatError(f"cannot read segmentation {rec['seg_path']}: {exc}") from exc
            if seg_l.size != image.size:
                raise CUBFormatError(
                    f"{rec['seg_path']}: segmentation is {seg_l.size[0]}x{seg_l.size[1]} but "
                    f"its image {rec['path']} is {width}x{height}"
                )
            mask = torch.from_numpy(np.array(seg_l, dtype=np.uint8))  # (H, W) 0..255
        return image, box, mask

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self._records[i]
        image, box, mask = self.load_raw(i)
        s = self.image_size
        if self.train_aug:
            image, box, mask = random_resized_crop(
                image, box, mask, s, scale=self.aug.scale, ratio=self.aug.ratio
            )
            if float(torch.rand(())) < self.aug.hflip_p:
                image, box, mask = hflip(image, box, mask)
        else:
            image, box, mask = resize(image, box, mask, s)
            image, box, mask = center_crop(image, box, mask, s)
        x = F.pil_to_tensor(image).to(torch.float32) / 255.0  # (3, S, S) in [0, 1]
        x = F.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))
        sample: dict[str, Any] = {
            "image": x,
            "label": int(self._labels[i]),
            "class_id": int(rec["class_id"]),
            "image_id": int(rec["image_id"]),
            "bbox": box,
            "has_mask": mask is not None,
            "path": rec["path"],
        }
        if self._use_masks:
            sample["mask"] = (
                mask >= self.mask_threshold
                if mask is not None
                else torch.zeros((s, s), dtype=torch.bool)
            )  # (S, S)
        return sample
