"""Synthetic birds generator (houseprice.synth.birds): layout, determinism, annotations."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import houseprice.synth.birds as sb
from houseprice.data.cub import CUBDataset, read_cub_index
from houseprice.data.cub.transforms import mask_to_box
from houseprice.errors import UserInputError
from houseprice.profiles import get_profile
from houseprice.synth.birds import writer


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick profile (20 classes x 6 images, 64 px)."""
    out = tmp_path_factory.mktemp("birds") / "birds"
    spec = get_profile("quick").birds
    return sb.generate_birds(
        out,
        n_classes=spec.classes,
        images_per_class=spec.per_class,
        image_px=spec.image_px,
        seed=0,
        progress=False,
    )


def test_layout_is_valid_cub(quick: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every segmentation exists, nothing inconsistent
        frame = read_cub_index(quick)
    assert len(frame) == 120 and frame["class_id"].nunique() == 20
    assert (quick / "classes.txt").read_text().splitlines()[0] == "1 001.Synth_Bird_001"
    assert frame["rel_path"].iloc[7] == "002.Synth_Bird_002/Synth_Bird_002_0002.jpg"
    assert frame.groupby("class_id")["is_train_official"].sum().eq(3).all()  # 50/50 per class
    meta = json.loads((quick / "dataset.json").read_text())
    assert meta["format"] == "cub-200-2011" and meta["seed"] == 0
    assert meta["generator"]["name"] == "houseprice.synth.birds"
    assert meta["generator"]["version"] == "1" and meta["generator"]["image_px"] == 64
    assert (meta["n_classes"], meta["images_per_class"]) == (20, 6)
    assert len(meta["classes"]) == 20
    manifest = json.loads((quick / "manifest.json").read_text())
    assert manifest["format"] == "houseprice-synth-birds" and "dataset.json" in manifest["files"]
    assert not [p for p in quick.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_boxes_are_tight_boxes_of_binary_masks(quick: Path) -> None:
    frame = read_cub_index(quick)
    areas = []
    for row in frame.itertuples():
        with Image.open(row.path) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (64, 64)
        with Image.open(row.seg_path) as sm:
            seg = np.asarray(sm)
        assert seg.dtype == np.uint8 and set(np.unique(seg)) <= {0, 255}
        ys, xs = np.nonzero(seg)
        assert (row.x, row.y) == (xs.min(), ys.min())
        assert (row.w, row.h) == (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        areas.append(row.w * row.h / 64**2)
    areas_arr = np.array(areas)
    # target 10-60% of the image; a box may be cut by the border ("mostly inside")
    assert 0.04 <= areas_arr.min() and areas_arr.max() <= 0.62
    assert 0.2 <= np.median(areas_arr) <= 0.45 and (areas_arr >= 0.1).mean() >= 0.9


def test_background_reuses_the_bird_palette(quick: Path) -> None:
    """For every palette colour the birds use, comparable numbers of background pixels have it,
    so per-pixel colour alone cannot localise the bird."""
    frame = read_cub_index(quick)
    palette = np.array(list(sb.PALETTE.values()), dtype=np.float64)  # (K, 3)
    inside, outside = np.zeros(len(palette)), np.zeros(len(palette))
    for row in frame.itertuples():
        with Image.open(row.path) as im, Image.open(row.seg_path) as sm:
            pixels = np.asarray(im, dtype=np.float64)  # (H, W, 3)
            mask = np.asarray(sm) >= 128  # (H, W)
        dist = np.linalg.norm(pixels[:, :, None, :] - palette[None, None], axis=-1)
        nearest, close = dist.argmin(-1), dist.min(-1) < 40
        for k in range(len(palette)):
            inside[k] += (close & mask & (nearest == k)).sum()
            outside[k] += (close & ~mask & (nearest == k)).sum()
    used = inside > 500
    assert used.sum() >= 6
    assert (outside[used] >= 0.3 * inside[used]).all(), dict(
        zip(sb.PALETTE, (outside / np.maximum(inside, 1)).round(2), strict=True)
    )


def test_classes_are_unique_and_fine_grained() -> None:
    classes = sb.make_classes(200, seed=0)
    assert [c.class_id for c in classes] == list(range(1, 201))
    assert len({c.signature() for c in classes}) == 200
    assert sb.make_classes(200, seed=0) == classes
    assert sb.make_classes(200, seed=1) != classes
    by_id = {c.class_id: c for c in classes}
    siblings = [c for c in classes if c.differs_in]
    assert len(siblings) >= 140
    names = [f.name for f in sb.BirdClass.__dataclass_fields__.values()]
    visual = names[5:]  # after class_id, name, group, base_class_id, differs_in
    for c in siblings:
        base = by_id[c.base_class_id]
        changed = {k for k in visual if getattr(c, k) != getattr(base, k)}
        assert c.differs_in in changed and c.differs_in in sb.SIBLING_MUTATIONS
        # one small part; a plain<->patterned wing also sets/clears its pattern colour
        assert changed == {c.differs_in} or changed == {"wing_pattern", "pattern_color"}
        assert c.group == base.group
    for c in classes:  # visible details stay visible
        assert c.beak_color != c.head_color and c.eye_ring != c.head_color
        assert (c.wing_pattern == "plain") == (c.pattern_color == "none")
        assert c.pattern_color != c.wing_color


def test_generation_is_deterministic_by_seed(tmp_path: Path) -> None:
    kwargs = {"n_classes": 4, "images_per_class": 3, "image_px": 48, "progress": False}
    a = _tree_digest(sb.generate_birds(tmp_path / "a", seed=7, **kwargs))
    b = _tree_digest(sb.generate_birds(tmp_path / "b", seed=7, **kwargs))
    c = _tree_digest(sb.generate_birds(tmp_path / "c", seed=8, **kwargs))
    assert a == b and len(a) == 4 * 3 * 2 + 7  # + 5 index files, dataset.json, manifest
    images = [k for k in a if k.startswith("images/")]
    assert all(a[k] != c[k] for k in images)
    # an image depends only on (seed, class, index), not on how many images are generated
    config = sb.BirdsConfig(n_classes=4, images_per_class=3, image_px=48, seed=7)
    cls = sb.make_classes(4, 7)[2]
    image, mask = sb.render_image(cls, 1, config)
    stored = np.asarray(
        Image.open(tmp_path / "a" / "segmentations" / cls.name / "Synth_Bird_003_0002.png")
    )
    assert np.array_equal(stored == 255, mask) and image.size == (48, 48)


def test_overwrite_and_atomicity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {"n_classes": 2, "images_per_class": 2, "image_px": 32, "progress": False}
    out = sb.generate_birds(tmp_path / "d", seed=1, **kwargs)
    with pytest.raises(FileExistsError, match="--overwrite"):
        sb.generate_birds(out, seed=2, **kwargs)
    before = _tree_digest(out)
    sb.generate_birds(out, seed=2, overwrite=True, **kwargs)
    assert _tree_digest(out) != before
    assert json.loads((out / "dataset.json").read_text())["seed"] == 2

    calls = {"n": 0}
    real_render = sb.render_image

    def failing_render(*args: object, **kw: object) -> tuple[Image.Image, np.ndarray]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real_render(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "render_image", failing_render)
    with pytest.raises(RuntimeError, match="disk full"):
        sb.generate_birds(tmp_path / "e", seed=1, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # nothing half-written


def test_bad_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="n_classes must be >= 2"):
        sb.generate_birds(tmp_path / "x", n_classes=1, progress=False)
    with pytest.raises(UserInputError, match="image_px must be >= 16"):
        sb.generate_birds(tmp_path / "x", image_px=8, progress=False)
    assert not (tmp_path / "x").exists()


def test_loader_keeps_generated_masks_aligned(quick: Path) -> None:
    train = CUBDataset(quick, split="train", image_size=48)
    test = CUBDataset(quick, split="test", image_size=48)
    assert train.num_classes == test.num_classes == 10 and len(train) == len(test) == 60
    assert set(test.class_ids.tolist()) == set(range(11, 21)) and train.has_masks
    for i in range(0, 60, 7):
        s = test[i]
        mbox, box = mask_to_box(s["mask"]), s["bbox"]
        # downscaling may drop sub-pixel tips (tail, beak) below the mask threshold
        assert (mbox[:2] >= box[:2] - 1).all() and (mbox[2:] <= box[2:] + 1).all()
        assert torch.allclose(mbox, box, atol=2.5), (mbox, box)


def test_contact_sheet(quick: Path, tmp_path: Path) -> None:
    out = sb.contact_sheet(quick, tmp_path / "sheet.png", n_images=8, columns=4, scale=2)
    with Image.open(out) as im:
        assert im.size == (4 + 4 * (128 + 4), 4 + 2 * (128 + 16 + 4))
        pixels = np.asarray(im.convert("RGB"))
    assert ((pixels == (255, 0, 0)).all(-1)).sum() > 8 * 100  # boxes drawn
    assert ((pixels == (0, 255, 255)).all(-1)).sum() > 8 * 50  # mask outlines drawn
