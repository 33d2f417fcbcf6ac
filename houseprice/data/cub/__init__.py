"""CUB-200-2011 in its official layout: index, torch dataset, joint transforms."""

from __future__ import annotations

from houseprice.data.cub.dataset import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INDEX_COLUMNS,
    INDEX_FILES,
    CUBAugConfig,
    CUBDataset,
    CUBFormatError,
    CUBMissingSegmentationWarning,
    F,
    find_cub_root,
    metric_class_split,
    read_cub_index,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INDEX_COLUMNS",
    "INDEX_FILES",
    "CUBAugConfig",
    "CUBDataset",
    "CUBFormatError",
    "CUBMissingSegmentationWarning",
    "F",
    "find_cub_root",
    "metric_class_split",
    "read_cub_index",
]
