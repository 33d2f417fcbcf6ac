"""Reading and validating a CUB-200-2011 folder in its official layout (no torch needed).

This module owns
* :func:`find_cub_root` and :func:`read_cub_index` — parses ``images.txt``, ``classes.txt``,
  ``image_class_labels.txt``, ``train_test_split.txt`` and ``bounding_boxes.txt``, cross-checks
  every id and every image file, and locates the optional ``segmentations/`` PNGs (one row per
  image);
* the metric-learning class split used by the papers (Chen §4.1, Taha §4.2): the first half of
  the classes (1-100) train, the second half (101-200) test;
* :class:`CUBFormatError`, raised with the file, line and rule that failed.

The human description of the layout and of every check is ``data_specs/cub.md``. The
synthetic stand-in written by :mod:`houseprice.synth.birds` uses exactly this layout.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from houseprice.errors import FormatError

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

_V = TypeVar("_V")

Box = tuple[float, float, float, float]


class CUBFormatError(FormatError):
    """The folder is not a valid CUB-200-2011 layout; the message names file, line and rule."""


class CUBMissingSegmentationWarning(UserWarning):
    """Some or all segmentation PNGs are absent; mask metrics skip those images."""


# --------------------------------------------------------------------------------------------
# Locating the folder, parsing lines
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


def _parse_flag(path: Path, lineno: int, fields: list[str]) -> bool:
    if fields[1] not in ("0", "1"):
        raise CUBFormatError(
            f"{path}:{lineno}: is_training_image must be 0 or 1; got {fields[1]!r}"
        )
    return fields[1] == "1"


def _parse_box(path: Path, lineno: int, fields: list[str]) -> Box:
    x, y, w, h = (
        _parse_float(path, lineno, v, name)
        for v, name in zip(fields[1:], ("x", "y", "width", "height"), strict=True)
    )
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise CUBFormatError(
            f"{path}:{lineno}: expected x >= 0, y >= 0, width > 0, height > 0; "
            f"got x={x}, y={y}, width={w}, height={h}"
        )
    return x, y, w, h


# --------------------------------------------------------------------------------------------
# The index files
# --------------------------------------------------------------------------------------------


def _read_classes(p_classes: Path) -> dict[int, tuple[int, str]]:
    """``class_id -> (line, class folder)``; class folders must be unique."""
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
    return classes


def _read_image_tables(
    p_images: Path, p_labels: Path, p_split: Path, p_boxes: Path
) -> tuple[
    dict[int, tuple[int, str]],
    dict[int, tuple[int, int]],
    dict[int, tuple[int, bool]],
    dict[int, tuple[int, Box]],
]:
    """The per-image files keyed by image id, each listing exactly the ids of images.txt."""
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
    split = _keyed(
        p_split,
        _read_rows(p_split, 2, "<image_id> <is_training_image>"),
        "image id",
        lambda ln, f: _parse_flag(p_split, ln, f),
    )
    boxes = _keyed(
        p_boxes,
        _read_rows(p_boxes, 5, "<image_id> <x> <y> <width> <height>"),
        "image id",
        lambda ln, f: _parse_box(p_boxes, ln, f),
    )
    for other, path in ((labels, p_labels), (split, p_split), (boxes, p_boxes)):
        _check_same_ids(images, other, path)
    return images, labels, split, boxes


def _image_records(root: Path, check_files: bool) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """One record per image (sorted by id) and the class names; every id cross-checked."""
    images_dir = root / "images"
    p_images, p_classes, p_labels, p_split, p_boxes = (root / name for name in INDEX_FILES)
    classes = _read_classes(p_classes)
    images, labels, split, boxes = _read_image_tables(p_images, p_labels, p_split, p_boxes)
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
    return records, {cid: name for cid, (_, name) in sorted(classes.items())}


def _attach_segmentations(
    records: list[dict[str, Any]],
    root: Path,
    segmentations: str | Path | None,
    check_files: bool,
) -> None:
    """Set each record's ``seg_path`` where its PNG exists; warn (once) about missing ones."""
    seg_root = _find_segmentations(root, segmentations)
    if seg_root is None:
        warnings.warn(
            f"no segmentations/ folder found for {root}: masks are disabled and mask metrics "
            "will be skipped (bounding boxes are still used)",
            CUBMissingSegmentationWarning,
            stacklevel=3,
        )
        return
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
            stacklevel=3,
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
    records, class_names = _image_records(root, check_files)
    _attach_segmentations(records, root, segmentations, check_files)
    frame = pd.DataFrame.from_records(records, columns=list(INDEX_COLUMNS))
    # keep None (not NaN) for missing segmentations
    frame["seg_path"] = pd.Series([rec["seg_path"] for rec in records], dtype=object)
    frame.attrs["root"] = str(root)
    frame.attrs["class_names"] = class_names
    return frame


def metric_class_split(class_ids: list[int] | np.ndarray) -> tuple[list[int], list[int]]:
    """Split class ids into (train, test) halves: sorted ids, first ``K // 2`` train.

    For CUB-200-2011 this is classes 1-100 train and 101-200 test (Chen §4.1).
    """
    ids = sorted({int(c) for c in class_ids})
    half = len(ids) // 2
    return ids[:half], ids[half:]


__all__ = [
    "INDEX_COLUMNS",
    "INDEX_FILES",
    "CUBFormatError",
    "CUBMissingSegmentationWarning",
    "find_cub_root",
    "metric_class_split",
    "read_cub_index",
]
