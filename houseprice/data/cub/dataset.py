"""CUB-200-2011 (or the synthetic stand-in) as a torch Dataset with aligned box and mask.

This module owns :class:`CUBDataset` — normalised image tensors with their bounding box and
segmentation mask following every resize/crop/flip (:mod:`houseprice.data.cub.transforms`) —
and its training augmentation :class:`CUBAugConfig`. The folder is read and validated by
:func:`houseprice.data.cub.index.read_cub_index`; the layout is ``data_specs/cub.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as F

from houseprice.data.cub.index import CUBFormatError, metric_class_split, read_cub_index
from houseprice.data.cub.normalisation import IMAGENET_MEAN, IMAGENET_STD
from houseprice.data.cub.transforms import (
    center_crop,
    clip_boxes,
    hflip,
    random_resized_crop,
    resize,
)
from houseprice.errors import UserInputError

Split = Literal["train", "test", "all"]
ClassSplit = Literal["metric", "official"]


@dataclass(frozen=True)
class CUBAugConfig:
    """Training augmentation: random resized crop (area ``scale``, aspect ``ratio``), hflip
    and (batched path only) rotation."""

    scale: tuple[float, float] = (0.16, 1.0)  # a common choice in deep-metric-learning code
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    hflip_p: float = 0.5
    # degrees, uniform in [-r, r]: the batched path only (cache.augment_batch, DecodedImages)
    rotation_deg: float = 0.0


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
            raise UserInputError(f"split must be 'train', 'test' or 'all'; got {split!r}")
        if class_split not in ("metric", "official"):
            raise UserInputError(f"class_split must be 'metric' or 'official'; got {class_split!r}")
        if image_size < 1:
            raise UserInputError(f"image_size must be a positive int; got {image_size}")
        if not 0 <= mask_threshold <= 255:
            raise UserInputError(f"mask_threshold must be in [0, 255]; got {mask_threshold}")
        if train_aug and aug is not None and aug.rotation_deg:
            raise ValueError(
                "CUBDataset's per-sample augmentation does not rotate; rotation_deg is applied "
                "per batch by houseprice.data.cub.cache.DecodedImages"
            )
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


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "CUBAugConfig", "CUBDataset", "ClassSplit", "Split"]
