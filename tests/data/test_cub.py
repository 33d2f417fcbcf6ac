"""CUB-200-2011 index and loader (houseprice.data.cub) and joint transforms (.transforms)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from houseprice.data.cub import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CUBDataset,
    CUBFormatError,
    CUBMissingSegmentationWarning,
    metric_class_split,
    read_cub_index,
)
from houseprice.data.cub import transforms as T
from houseprice.errors import FormatError


def _load_fixture_module() -> ModuleType:
    path = Path(__file__).with_name("make_cub_fixture.py")
    spec = importlib.util.spec_from_file_location("make_cub_fixture", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture_mod = _load_fixture_module()


@pytest.fixture(scope="module")
def cub_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_mod.make_cub_fixture(tmp_path_factory.mktemp("cub") / "CUB_200_2011")


@pytest.fixture
def cub(cub_template: Path, tmp_path: Path) -> Path:
    """A fresh, writable copy of the fixture (tests corrupt it)."""
    return Path(shutil.copytree(cub_template, tmp_path / "CUB_200_2011"))


def _bird_pixels(image: torch.Tensor) -> torch.Tensor:
    """Bool (H, W) of the red rectangle in a normalised (3, H, W) image."""
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    rgb = image * std + mean  # (3, H, W) in [0, 1]
    return (rgb[0] - rgb[1]) > 0.4


def _box_of(mask: torch.Tensor) -> torch.Tensor:
    return T.mask_to_box(mask)


def _assert_within_1px_of_edges(diff: torch.Tensor, box: torch.Tensor) -> None:
    """Every True pixel of ``diff`` (H, W) has its centre within 1 px of the box outline."""
    rows, cols = torch.nonzero(diff, as_tuple=True)
    cx, cy = cols.to(torch.float32) + 0.5, rows.to(torch.float32) + 0.5
    x0, y0, x1, y1 = box.tolist()
    in_outer = (cx > x0 - 1) & (cx < x1 + 1) & (cy > y0 - 1) & (cy < y1 + 1)
    in_inner = (cx > x0 + 1) & (cx < x1 - 1) & (cy > y0 + 1) & (cy < y1 - 1)
    assert bool((in_outer & ~in_inner).all()), f"{int((~in_outer | in_inner).sum())} px off"


# --------------------------------------------------------------------------------------------
# read_cub_index
# --------------------------------------------------------------------------------------------


def test_index_reads_every_file_consistently(cub: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = read_cub_index(cub)
    assert list(frame["image_id"]) == list(range(1, 13))
    assert list(frame["class_id"]) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert frame["class_name"].iloc[4] == "002.Fixture_Bird_2"
    assert list(frame["is_train_official"].iloc[:3]) == [True, False, True]
    boxes = (cub / "bounding_boxes.txt").read_text().split("\n")[6].split()
    assert frame.loc[6, ["x", "y", "w", "h"]].tolist() == [float(v) for v in boxes[1:]]
    assert all(Path(p).is_file() and Path(p).is_absolute() for p in frame["path"])
    assert all(Path(p).suffix == ".png" and Path(p).is_file() for p in frame["seg_path"])
    assert frame["rel_path"].iloc[0] == "001.Fixture_Bird_1/Fixture_Bird_1_0001.jpg"


def test_index_finds_nested_official_folder(cub: Path) -> None:
    frame = read_cub_index(cub.parent)  # the folder that contains CUB_200_2011/
    assert len(frame) == 12 and frame.attrs["root"] == str(cub)


def test_metric_split_is_classes_first_half_train() -> None:
    train, test = metric_class_split(list(range(200, 0, -1)))
    assert train == list(range(1, 101)) and test == list(range(101, 201))


def test_missing_segmentation_warns_once_and_disables_that_mask(cub: Path) -> None:
    (cub / "segmentations" / "001.Fixture_Bird_1" / "Fixture_Bird_1_0002.png").unlink()
    with pytest.warns(CUBMissingSegmentationWarning, match=r"1 of 12 segmentation") as record:
        frame = read_cub_index(cub)
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller
    assert frame["seg_path"].isna().tolist() == [i == 1 for i in range(12)]
    with pytest.warns(CUBMissingSegmentationWarning):
        ds = CUBDataset(cub, split="train", image_size=32)
    assert ds.has_masks
    missing, present = ds[1], ds[0]
    assert missing["has_mask"] is False and not missing["mask"].any()
    assert present["has_mask"] is True and present["mask"].any()
    batch = next(iter(DataLoader(ds, batch_size=6)))  # mixed batch still collates
    assert batch["mask"].shape == (6, 32, 32) and batch["has_mask"].tolist()[:2] == [True, False]


def test_absent_segmentation_folder_disables_masks(cub: Path) -> None:
    shutil.rmtree(cub / "segmentations")
    with pytest.warns(CUBMissingSegmentationWarning, match="no segmentations/ folder"):
        ds = CUBDataset(cub, split="test", image_size=32)
    assert not ds.has_masks
    sample = ds[0]
    assert "mask" not in sample and sample["has_mask"] is False
    with (
        pytest.warns(CUBMissingSegmentationWarning),
        pytest.raises(CUBFormatError, match="load_masks=True"),
    ):
        CUBDataset(cub, load_masks=True)


def _replace_line(path: Path, lineno: int, new: str | None) -> None:
    lines = path.read_text().splitlines()
    if new is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = new
    path.write_text("\n".join(lines) + "\n")


BAD_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "label for unknown image id",
        lambda r: _replace_line(r / "image_class_labels.txt", 5, "99 2"),
        r"image_class_labels\.txt:5: image id 99 is not listed in images\.txt",
    ),
    (
        "box line missing",
        lambda r: _replace_line(r / "bounding_boxes.txt", 4, None),
        r"bounding_boxes\.txt: no line for 1 image id\(s\) .*e\.g\. 4",
    ),
    (
        "duplicate image id",
        lambda r: _replace_line(
            r / "images.txt", 3, "1 001.Fixture_Bird_1/Fixture_Bird_1_0003.jpg"
        ),
        r"images\.txt:3: duplicate image id 1 \(first given on line 1\)",
    ),
    (
        "malformed box line",
        lambda r: _replace_line(r / "bounding_boxes.txt", 3, "3 1.0 2.0 5.0"),
        r"bounding_boxes\.txt:3: expected '<image_id> <x> <y> <width> <height>' \(5 fields\)",
    ),
    (
        "non-numeric box value",
        lambda r: _replace_line(r / "bounding_boxes.txt", 2, "2 1.0 abc 5.0 5.0"),
        r"bounding_boxes\.txt:2: y must be a finite number; got 'abc'",
    ),
    (
        "non-positive box size",
        lambda r: _replace_line(r / "bounding_boxes.txt", 2, "2 1.0 1.0 0 5.0"),
        r"bounding_boxes\.txt:2: expected .*width > 0",
    ),
    (
        "bad image id",
        lambda r: _replace_line(r / "train_test_split.txt", 7, "x7 1"),
        r"train_test_split\.txt:7: image id must be a positive integer; got 'x7'",
    ),
    (
        "bad training flag",
        lambda r: _replace_line(r / "train_test_split.txt", 7, "7 2"),
        r"train_test_split\.txt:7: is_training_image must be 0 or 1; got '2'",
    ),
    (
        "unknown class id",
        lambda r: _replace_line(r / "image_class_labels.txt", 2, "2 9"),
        r"image_class_labels\.txt:2: class id 9 of image 2 is not listed in classes\.txt",
    ),
    (
        "folder disagrees with label",
        lambda r: _replace_line(r / "image_class_labels.txt", 2, "2 3"),
        r"images\.txt:2: image 2 is in folder '001\.Fixture_Bird_1' but .* class 3",
    ),
    (
        "missing image file",
        lambda r: (r / "images" / "002.Fixture_Bird_2" / "Fixture_Bird_2_0003.jpg").unlink(),
        r"images\.txt: 1 listed image file\(s\) are missing, e\.g\. line 6 \(",
    ),
    (
        "path escaping images/",
        lambda r: _replace_line(r / "images.txt", 1, "1 ../001.Fixture_Bird_1/a.jpg"),
        r"images\.txt:1: expected a relative path",
    ),
    (
        "duplicate class folder",
        lambda r: _replace_line(r / "classes.txt", 2, "2 001.Fixture_Bird_1"),
        r"classes\.txt:2: class folder '001\.Fixture_Bird_1' already used by class 1",
    ),
    (
        "missing index file",
        lambda r: (r / "train_test_split.txt").unlink(),
        r"missing index file .*train_test_split\.txt",
    ),
]


@pytest.mark.parametrize(
    ("corrupt", "message"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_bad_layout_raises_named_error(
    cub: Path, corrupt: Callable[[Path], None], message: str
) -> None:
    corrupt(cub)
    with pytest.raises(CUBFormatError, match=message):
        read_cub_index(cub)


def test_not_a_cub_folder(tmp_path: Path) -> None:
    with pytest.raises(CUBFormatError, match="is not a CUB-200-2011 folder"):
        read_cub_index(tmp_path)
    with pytest.raises(CUBFormatError, match="does not exist"):
        read_cub_index(tmp_path / "nope")
    assert issubclass(CUBFormatError, FormatError) and issubclass(CUBFormatError, ValueError)


# --------------------------------------------------------------------------------------------
# CUBDataset
# --------------------------------------------------------------------------------------------


def test_splits_and_labels(cub: Path) -> None:
    train = CUBDataset(cub, split="train", image_size=24)
    test = CUBDataset(cub, split="test", image_size=24)
    assert train.num_classes == test.num_classes == 2
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert test.class_ids.tolist() == [3, 3, 3, 4, 4, 4]
    assert test.labels.tolist() == [0, 0, 0, 1, 1, 1] and test.classes[0] == "003.Fixture_Bird_3"
    sample = test[4]
    assert (sample["label"], sample["class_id"], sample["image_id"]) == (1, 4, 11)
    official = CUBDataset(cub, split="train", class_split="official", image_size=24)
    assert official.num_classes == 4
    assert official.image_ids.tolist() == [1, 3, 4, 6, 7, 9, 10, 12]
    assert official.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert len(CUBDataset(cub, split="all", image_size=24)) == 12
    with pytest.raises(ValueError, match="class_split"):
        CUBDataset(cub, class_split="random")


def test_eval_samples_keep_box_mask_and_pixels_aligned(cub: Path) -> None:
    ds = CUBDataset(cub, split="all", image_size=40)
    frame = read_cub_index(cub)
    for i in range(len(ds)):
        s = ds[i]
        assert s["image"].shape == (3, 40, 40) and s["image"].dtype == torch.float32
        assert s["mask"].shape == (40, 40) and s["mask"].dtype == torch.bool
        # expected box: resize shorter side to 40, then centre crop (computed independently)
        row = frame.iloc[i]
        with Image.open(row["path"]) as im:
            w, h = im.size
        new_w, new_h = (40, int(40 * h / w)) if w <= h else (int(40 * w / h), 40)
        sx, sy = new_w / w, new_h / h
        left, top = round((new_w - 40) / 2), round((new_h - 40) / 2)
        expected = torch.tensor(
            [
                row["x"] * sx - left,
                row["y"] * sy - top,
                (row["x"] + row["w"]) * sx - left,
                (row["y"] + row["h"]) * sy - top,
            ],
            dtype=torch.float32,
        ).clamp(0, 40)
        assert torch.allclose(s["bbox"], expected, atol=1e-4), (i, s["bbox"], expected)
        if s["mask"].any():
            assert torch.allclose(_box_of(s["mask"]), s["bbox"], atol=1.0)
        if s["image_id"] != 2:  # the greyscale image has no red bird
            red = _bird_pixels(s["image"])
            assert torch.allclose(_box_of(red), s["bbox"], atol=1.0)
            _assert_within_1px_of_edges(red ^ s["mask"], s["bbox"])


def test_greyscale_image_becomes_rgb_and_is_normalised(cub: Path) -> None:
    s = CUBDataset(cub, split="train", image_size=16)[1]
    assert s["image_id"] == 2 and s["image"].shape == (3, 16, 16)
    rgb = s["image"] * torch.tensor(IMAGENET_STD)[:, None, None]
    rgb = rgb + torch.tensor(IMAGENET_MEAN)[:, None, None]
    assert torch.allclose(rgb[0], rgb[1], atol=1e-5) and 0.0 <= rgb.min() <= rgb.max() <= 1.0


def test_soft_mask_threshold(cub: Path) -> None:
    strict = CUBDataset(cub, split="train", image_size=48)[0]["mask"].sum()
    loose = CUBDataset(cub, split="train", image_size=48, mask_threshold=90)[0]["mask"].sum()
    assert loose > strict > 0  # the RING_VALUE=100 ring is in only at the lower threshold


def test_train_aug_is_seeded_and_keeps_alignment(cub: Path) -> None:
    ds = CUBDataset(cub, split="all", image_size=32, train_aug=True)
    torch.manual_seed(0)
    first = [ds[i] for i in range(len(ds))]
    torch.manual_seed(0)
    again = [ds[i] for i in range(len(ds))]
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["bbox"], b["bbox"])
    flipped_somewhere = False
    for s in first:
        box = s["bbox"]
        if (box[2] - box[0]) * (box[3] - box[1]) < 4.0 or s["mask"].sum() < 4:
            continue  # the crop missed the object
        assert torch.allclose(_box_of(s["mask"]), box, atol=1.5)
        if s["image_id"] != 2:
            red = _bird_pixels(s["image"])
            assert torch.allclose(_box_of(red), box, atol=1.5)
        flipped_somewhere |= bool(box[0] > 16)
    assert flipped_somewhere


def test_segmentation_size_mismatch_is_reported(cub: Path) -> None:
    seg = cub / "segmentations" / "001.Fixture_Bird_1" / "Fixture_Bird_1_0001.png"
    Image.new("L", (5, 5)).save(seg)
    ds = CUBDataset(cub, split="train", image_size=16)
    with pytest.raises(CUBFormatError, match=r"Fixture_Bird_1_0001\.png: segmentation is 5x5"):
        ds[0]


# --------------------------------------------------------------------------------------------
# Joint transforms
# --------------------------------------------------------------------------------------------


def _drawn(
    h: int = 50, w: int = 70, box: tuple[int, int, int, int] = (12, 9, 41, 30)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A (3, H, W) float image with a filled white box on black, its XYXY box and bool mask."""
    x0, y0, x1, y1 = box
    image = torch.zeros(3, h, w)
    image[:, y0:y1, x0:x1] = 1.0
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return image, torch.tensor([float(v) for v in box]), mask


def _assert_aligned(image: torch.Tensor, box: torch.Tensor, mask: torch.Tensor) -> None:
    """The drawn pixels and the mask are the box's rectangle, up to 1 px at its edges."""
    drawn = image.mean(0) > 0.5
    assert drawn.any() and mask.any()
    assert torch.allclose(_box_of(drawn), box, atol=1.0), (_box_of(drawn), box)
    assert torch.allclose(_box_of(mask), box, atol=1.0), (_box_of(mask), box)
    _assert_within_1px_of_edges(drawn ^ mask, box)


TRANSFORMS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], T.Joint]] = {
    "resize_short": lambda i, b, m: T.resize(i, b, m, 33),
    "resize_hw": lambda i, b, m: T.resize(i, b, m, (90, 41)),
    "center_crop": lambda i, b, m: T.center_crop(i, b, m, 40),
    "crop": lambda i, b, m: T.crop(i, b, m, 5, 20, 30, 30),
    "resized_crop": lambda i, b, m: T.resized_crop(i, b, m, 4, 8, 40, 45, 64),
    "hflip": T.hflip,
    "eval_pipeline": lambda i, b, m: T.center_crop(*T.resize(i, b, m, 37), 37),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transforms_keep_box_and_mask_on_the_drawn_pixels(name: str) -> None:
    image, box, mask = _drawn()
    out_image, out_box, out_mask = TRANSFORMS[name](image, box, mask)
    assert out_mask is not None and out_mask.dtype == torch.bool
    assert out_image.shape[-2:] == out_mask.shape
    _assert_aligned(out_image, out_box, out_mask)


def test_random_resized_crop_alignment_and_seed() -> None:
    image, box, mask = _drawn()
    checked = 0
    for seed in range(25):
        gen = torch.Generator().manual_seed(seed)
        out = T.random_resized_crop(image, box, mask, 48, scale=(0.3, 1.0), generator=gen)
        again = T.random_resized_crop(
            image, box, mask, 48, scale=(0.3, 1.0), generator=torch.Generator().manual_seed(seed)
        )
        assert torch.equal(out[0], again[0]) and torch.equal(out[1], again[1])
        o_box = out[1]
        assert out[0].shape == (3, 48, 48) and (o_box >= 0).all() and (o_box <= 48).all()
        if (o_box[2] - o_box[0]) > 3 and (o_box[3] - o_box[1]) > 3:
            _assert_aligned(*out)  # type: ignore[arg-type]
            checked += 1
    assert checked >= 15


def test_pil_and_tensor_inputs_agree() -> None:
    image, box, mask = _drawn()
    pil = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    out_pil = T.center_crop(*T.resize(pil, box, mask, 30), 30)
    out_t = T.center_crop(*T.resize(image, box, mask, 30), 30)
    assert isinstance(out_pil[0], Image.Image) and out_pil[0].size == (30, 30)
    assert torch.equal(out_pil[1], out_t[1]) and torch.equal(out_pil[2], out_t[2])


def test_hflip_and_clip_exact() -> None:
    image, box, mask = _drawn(w=70)
    _, flipped, _ = T.hflip(image, box, mask)
    assert flipped.tolist() == [70 - 41, 9, 70 - 12, 30]
    twice = T.hflip(*T.hflip(image, box, mask))
    assert torch.equal(twice[0], image) and torch.equal(twice[1], box)
    assert twice[2] is not None and torch.equal(twice[2], mask)
    # a crop that misses the object collapses its box onto the border
    _, gone, m = T.crop(image, box, mask, 35, 50, 10, 10)
    assert gone.tolist() == [0.0, 0.0, 0.0, 0.0] and m is not None and not m.any()
    assert T.clip_boxes(torch.tensor([[-3.0, 2, 80, 60]]), 50, 70).tolist() == [[0, 2, 70, 50]]


def test_soft_mask_is_resampled_bilinearly() -> None:
    image, box, mask = _drawn()
    soft = mask.to(torch.uint8) * 255
    _, _, out = T.resize(image, box, soft, 21)
    assert out is not None and out.dtype == torch.uint8
    assert ((out > 0) & (out < 255)).any()  # partial values at the edges


def test_transform_input_errors() -> None:
    image, box, mask = _drawn()
    with pytest.raises(ValueError, match=re.escape("does not match image (H, W) = (50, 70)")):
        T.hflip(image, box, mask[:10])
    with pytest.raises(ValueError, match="boxes must be a tensor of shape"):
        T.hflip(image, torch.zeros(5), mask)
    with pytest.raises(ValueError, match="scale must satisfy"):
        T.sample_resized_crop(10, 10, scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="mask is empty"):
        T.mask_to_box(torch.zeros(4, 4, dtype=torch.bool))
