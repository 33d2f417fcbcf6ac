"""CUB-200-2011 in its official layout: ``index`` (reading and validation, no torch),
``dataset`` (the torch Dataset), ``transforms`` (joint image/box/mask transforms),
``normalisation`` (ImageNet mean/std) and ``cache`` (decoded images, batched augmentation).
The layout and every check: ``data_specs/cub.md``."""

from __future__ import annotations

from houseprice.data.cub.cache import DecodedImages, augment_batch
from houseprice.data.cub.dataset import ClassSplit, CUBAugConfig, CUBDataset, Split
from houseprice.data.cub.index import (
    INDEX_COLUMNS,
    INDEX_FILES,
    CUBFormatError,
    CUBMissingSegmentationWarning,
    find_cub_root,
    metric_class_split,
    read_cub_index,
)
from houseprice.data.cub.normalisation import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INDEX_COLUMNS",
    "INDEX_FILES",
    "CUBAugConfig",
    "CUBDataset",
    "CUBFormatError",
    "CUBMissingSegmentationWarning",
    "ClassSplit",
    "DecodedImages",
    "Split",
    "augment_batch",
    "find_cub_root",
    "metric_class_split",
    "read_cub_index",
]
