"""Input normalisation of the CUB images: the ImageNet channel mean and standard deviation.

This module owns the two constants every CUB tensor is normalised with (:class:`CUBDataset`)
and that explainers and the benchmark use to undo it for display.
"""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD"]
