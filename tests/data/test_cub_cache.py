"""Decoded CUB images in memory and their batched augmentation (crop, rotation, flip)."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from houseprice.data.cub import CUBAugConfig, CUBDataset, DecodedImages, augment_batch
from houseprice.data.cub.cache import normalise


@pytest.fixture(scope="module")
def cub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(__file__).with_name("make_cub_fixture.py")
    spec = importlib.util.spec_from_file_location("make_cub_fixture", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_cub_fixture(tmp_path_factory.mktemp("cub") / "CUB_200_2011")


def test_decoded_images_match_the_dataset(cub: Path) -> None:
    ds = CUBDataset(cub, split="train", image_size=32, load_masks=False)
    decoded = DecodedImages(ds)
    assert decoded.images.dtype == torch.uint8 and decoded.images.shape == (len(ds), 3, 32, 32)
    np.testing.assert_array_equal(decoded.labels, ds.labels)
    for i in (0, len(ds) - 1):
        assert torch.allclose(decoded[i]["image"], ds[i]["image"], atol=0.5 / 255 / 0.224)
        assert decoded[i]["label"] == ds[i]["label"]
    plain, labels = decoded.batch([0, 1], None, torch.Generator())
    assert torch.equal(plain, normalise(decoded.images[:2]))
    assert labels.tolist() == ds.labels[:2].tolist()
    keep = np.array([1, 0])
    assert torch.equal(decoded.subset(keep).images, decoded.images[[1, 0]])
    with pytest.raises(ValueError, match="evaluation transform"):
        DecodedImages(CUBDataset(cub, split="train", image_size=32, train_aug=True))
    with pytest.raises(ValueError, match="does not rotate"):
        CUBDataset(cub, train_aug=True, aug=CUBAugConfig(rotation_deg=10.0))


def _square(side: int = 32) -> torch.Tensor:
    """A white 8x8 square up-left of the centre of a black uint8 image ``(1, 3, S, S)`` (it
    stays inside the image under any rotation)."""
    img = torch.zeros(1, 3, side, side, dtype=torch.uint8)
    img[:, :, 8:16, 8:16] = 255
    return img


def test_identity_augmentation_is_the_image() -> None:
    img = _square()
    none = CUBAugConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip_p=0.0, rotation_deg=0.0)
    out = augment_batch(img, none, torch.Generator().manual_seed(0))
    assert torch.allclose(out, normalise(img), atol=1e-4)


def test_flip_and_rotation_move_the_square() -> None:
    img = _square()
    bright = normalise(img).amax()
    flip = CUBAugConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip_p=1.0)
    out = augment_batch(img, flip, torch.Generator().manual_seed(0))
    assert torch.allclose(out, normalise(img).flip(-1), atol=1e-4)  # mirrored left-right
    turn = replace(flip, hflip_p=0.0, rotation_deg=90.0)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(img.repeat(64, 1, 1, 1), turn, g)
    # the square's centre of mass stays at the same distance from the image centre
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    w = (out[:, 0] > bright / 2).float()
    cx = (w * xs).sum((1, 2)) / w.sum((1, 2)) - 15.5
    cy = (w * ys).sum((1, 2)) / w.sum((1, 2)) - 15.5
    radius = torch.sqrt(cx**2 + cy**2)
    assert torch.allclose(radius, torch.full_like(radius, math.hypot(4.0, 4.0)), atol=0.5)
    angles = torch.rad2deg(torch.atan2(cy, cx)) - math.degrees(math.atan2(-4.0, -4.0))
    angles = (angles + 180) % 360 - 180
    assert angles.abs().max() <= 91 and angles.abs().max() > 60  # up to +-90 degrees
    assert angles.min() < -30 and angles.max() > 30  # both directions


def test_crops_zoom_in_and_are_seeded() -> None:
    img = _square()
    crop = CUBAugConfig(scale=(0.25, 0.25), ratio=(1.0, 1.0), hflip_p=0.0)
    a = augment_batch(img.repeat(8, 1, 1, 1), crop, torch.Generator().manual_seed(1))
    b = augment_batch(img.repeat(8, 1, 1, 1), crop, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    # a quarter-area crop shows the 8x8 square at twice its size, when it holds all of it
    lit = (a[:, 0] > 0).float().sum((1, 2))
    assert lit.max() == pytest.approx(4 * 64, rel=0.15)
    out = augment_batch(img, crop, torch.Generator().manual_seed(1), size=16)
    assert out.shape == (1, 3, 16, 16)
