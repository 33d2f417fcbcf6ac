"""Joint geometric transforms for an image together with its boxes and mask.

This module owns the resize / crop / flip operations that must move an image's annotations
with it (used by the CUB-200-2011 loader, :mod:`houseprice.data.cub.dataset`). Every function
takes ``(image, boxes, mask)`` and returns the transformed triple:

* ``image``: a PIL image or a tensor ``(C, H, W)``; the output has the same kind.
* ``boxes``: float tensor ``(4,)`` or ``(N, 4)`` in XYXY pixel coordinates of the *continuous*
  image plane (pixel ``(r, c)`` covers ``[c, c + 1) x [r, r + 1)``), so a tight box of a mask is
  ``(min_col, min_row, max_col + 1, max_row + 1)``. Boxes are clipped to the output canvas.
* ``mask``: ``None`` or a tensor ``(H, W)``. A ``bool`` mask is resampled with nearest
  neighbour; a ``uint8``/float (soft) mask is resampled bilinearly like the image, so it can be
  binarised *after* resizing (better aligned than nearest on a binary mask).

The geometry itself is delegated to ``torchvision.transforms.v2.functional`` (tv_tensors
``BoundingBoxes``/``Mask``); this module adds the dtype handling, clipping and a seeded
random-resized-crop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

ImageT = TypeVar("ImageT", Image.Image, torch.Tensor)
Joint = tuple[ImageT, torch.Tensor, torch.Tensor | None]


def image_hw(image: Image.Image | torch.Tensor) -> tuple[int, int]:
    """Return ``(height, width)`` of a PIL image or a ``(..., H, W)`` tensor."""
    h, w = F.get_size(image)
    return int(h), int(w)


def _check_boxes(boxes: torch.Tensor) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor) or boxes.shape[-1:] != (4,) or boxes.dim() > 2:
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"boxes must be a tensor of shape (4,) or (N, 4) in XYXY; got {shape}")
    return boxes.to(torch.float32)


def _check_mask(mask: torch.Tensor | None, hw: tuple[int, int]) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        raise ValueError("mask must be None or a 2-D tensor (H, W)")
    if tuple(mask.shape) != hw:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match image (H, W) = {hw}")


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clip XYXY boxes to the canvas ``[0, width] x [0, height]`` (boxes fully outside collapse)."""
    out = _check_boxes(boxes).clone()
    out[..., 0::2] = out[..., 0::2].clamp(0.0, float(width))
    out[..., 1::2] = out[..., 1::2].clamp(0.0, float(height))
    return out


def _apply(
    image: ImageT,
    boxes: torch.Tensor,
    mask: torch.Tensor | None,
    op_image: Callable[[Any], Any],
    op_nearest: Callable[[Any], Any],
) -> Joint:
    """Run ``op_image`` on the image, boxes and soft masks and ``op_nearest`` on bool masks."""
    hw = image_hw(image)
    boxes = _check_boxes(boxes)
    _check_mask(mask, hw)
    squeeze = boxes.dim() == 1
    bb = tv_tensors.BoundingBoxes(boxes.reshape(-1, 4), format="XYXY", canvas_size=hw)
    out_image = op_image(image)
    out_bb = op_image(bb)
    out_h, out_w = out_bb.canvas_size
    out_boxes = clip_boxes(out_bb.as_subclass(torch.Tensor), out_h, out_w)
    if squeeze:
        out_boxes = out_boxes[0]
    out_mask: torch.Tensor | None = None
    if mask is not None:
        if mask.dtype == torch.bool:
            out_mask = op_nearest(tv_tensors.Mask(mask)).as_subclass(torch.Tensor)
        else:
            out_mask = op_image(mask[None]).as_subclass(torch.Tensor)[0]
    return out_image, out_boxes, out_mask


def resize(
    image: ImageT,
    boxes: torch.Tensor,
    mask: torch.Tensor | None,
    size: int | Sequence[int],
) -> Joint:
    """Resize; an int ``size`` sets the shorter side (aspect kept), ``(h, w)`` sets both.

    Image and soft masks use antialiased bilinear, bool masks nearest; boxes are scaled by the
    exact per-axis ratio of output to input size.
    """
    size_list = [int(size)] if isinstance(size, int) else [int(s) for s in size]

    def op(x: Any) -> Any:
        return F.resize(x, size_list, interpolation=F.InterpolationMode.BILINEAR, antialias=True)

    def op_nearest(x: Any) -> Any:
        return F.resize(x, size_list, interpolation=F.InterpolationMode.NEAREST)

    return _apply(image, boxes, mask, op, op_nearest)


def crop(
    image: ImageT,
    boxes: torch.Tensor,
    mask: torch.Tensor | None,
    top: int,
    left: int,
    height: int,
    width: int,
) -> Joint:
    """Crop the window ``[top, top + height) x [left, left + width)`` (zero-padded if outside)."""

    def op(x: Any) -> Any:
        return F.crop(x, top, left, height, width)

    return _apply(image, boxes, mask, op, op)


def center_crop(
    image: ImageT,
    boxes: torch.Tensor,
    mask: torch.Tensor | None,
    size: int | Sequence[int],
) -> Joint:
    """Crop the centre ``size`` (int = square) window, torchvision's rounding of the offset."""
    size_list = [int(size), int(size)] if isinstance(size, int) else [int(s) for s in size]

    def op(x: Any) -> Any:
        return F.center_crop(x, size_list)

    return _apply(image, boxes, mask, op, op)


def resized_crop(
    image: ImageT,
    boxes: torch.Tensor,
    mask: torch.Tensor | None,
    top: int,
    left: int,
    height: int,
    width: int,
    size: int | Sequence[int],
) -> Joint:
    """Crop a window then resize it to ``size`` (int = square output)."""
    size_list = [int(size), int(size)] if isinstance(size, int) else [int(s) for s in size]

    def op(x: Any) -> Any:
        return F.resized_crop(
            x,
            top,
            left,
            height,
            width,
            size_list,
            interpolation=F.InterpolationMode.BILINEAR,
            antialias=True,
        )

    def op_nearest(x: Any) -> Any:
        return F.resized_crop(
            x, top, left, height, width, size_list, interpolation=F.InterpolationMode.NEAREST
        )

    return _apply(image, boxes, mask, op, op_nearest)


def sample_resized_crop(
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """Sample ``(top, left, h, w)`` like ``torchvision RandomResizedCrop`` but from ``generator``.

    Ten tries at a window with area fraction in ``scale`` and aspect (w/h) log-uniform in
    ``ratio``; the fallback is the largest centred window with aspect clipped to ``ratio``.
    """
    if not (0.0 < scale[0] <= scale[1] <= 1.0):
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1; got {scale}")
    if not (0.0 < ratio[0] <= ratio[1]):
        raise ValueError(f"ratio must satisfy 0 < min <= max; got {ratio}")
    area = float(height * width)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        target_area = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(
    image: ImageT,
    boxes: torch.Tensor,
    mask: torch.Tensor | None,
    size: int | Sequence[int],
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    generator: torch.Generator | None = None,
) -> Joint:
    """Random window (see :func:`sample_resized_crop`) resized to ``size``; annotations follow."""
    h, w = image_hw(image)
    top, left, ch, cw = sample_resized_crop(h, w, scale=scale, ratio=ratio, generator=generator)
    return resized_crop(image, boxes, mask, top, left, ch, cw, size)


def hflip(image: ImageT, boxes: torch.Tensor, mask: torch.Tensor | None) -> Joint:
    """Mirror left-right: ``x -> width - x`` for boxes, columns reversed for image and mask."""
    return _apply(image, boxes, mask, F.horizontal_flip, F.horizontal_flip)


def mask_to_box(mask: torch.Tensor) -> torch.Tensor:
    """Tight XYXY box ``(min_col, min_row, max_col + 1, max_row + 1)`` of a non-empty mask."""
    if mask.dim() != 2:
        raise ValueError("mask must be a 2-D tensor (H, W)")
    rows = torch.nonzero(mask.to(torch.bool).any(dim=1)).flatten()
    cols = torch.nonzero(mask.to(torch.bool).any(dim=0)).flatten()
    if rows.numel() == 0:
        raise ValueError("mask is empty; it has no bounding box")
    return torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)  # (4,)
