"""Write a tiny CUB-200-2011 fixture in the official layout (generated at test time, never
committed).

Each image is a noisy grey background with one saturated red rectangle (the "bird"); its
``bounding_boxes.txt`` entry is exactly that rectangle and its segmentation PNG is 255 inside it
with a one-pixel soft ring of value ``RING_VALUE`` (< 128) around it, like CUB's partial
agreement levels. Images have different, non-square sizes; image 2 is greyscale.

Usable as a module (``make_cub_fixture(root)``) or a script::

    python tests/data/make_cub_fixture.py OUT_DIR [--no-segmentations]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

BIRD_RGB = (220, 20, 20)
RING_VALUE = 100


def fixture_class_folder(class_id: int) -> str:
    """CUB-style class folder name, e.g. ``001.Fixture_Bird_1``."""
    return f"{class_id:03d}.Fixture_Bird_{class_id}"


def make_cub_fixture(
    root: str | Path,
    *,
    n_classes: int = 4,
    images_per_class: int = 3,
    with_segmentations: bool = True,
    seed: int = 0,
) -> Path:
    """Create ``root`` with ``n_classes * images_per_class`` images; return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=False)
    lines: dict[str, list[str]] = {
        "images.txt": [],
        "classes.txt": [],
        "image_class_labels.txt": [],
        "train_test_split.txt": [],
        "bounding_boxes.txt": [],
    }
    image_id = 0
    for class_id in range(1, n_classes + 1):
        folder = fixture_class_folder(class_id)
        lines["classes.txt"].append(f"{class_id} {folder}")
        (root / "images" / folder).mkdir()
        if with_segmentations:
            (root / "segmentations" / folder).mkdir(parents=True)
        for k in range(images_per_class):
            image_id += 1
            width, height = int(rng.integers(40, 72)), int(rng.integers(32, 64))
            w, h = int(rng.integers(8, width // 2)), int(rng.integers(8, height // 2))
            x, y = int(rng.integers(2, width - w - 1)), int(rng.integers(2, height - h - 1))
            pixels = rng.integers(70, 150, size=(height, width, 1)).repeat(3, axis=2)
            pixels[y : y + h, x : x + w] = BIRD_RGB
            image = Image.fromarray(pixels.astype(np.uint8), mode="RGB")
            if image_id == 2:
                image = image.convert("L")  # CUB has a few greyscale JPEGs
            rel = f"{folder}/Fixture_Bird_{class_id}_{k + 1:04d}.jpg"
            image.save(root / "images" / rel, format="JPEG", quality=95)
            if with_segmentations:
                seg = np.zeros((height, width), dtype=np.uint8)
                seg[y - 1 : y + h + 1, x - 1 : x + w + 1] = RING_VALUE
                seg[y : y + h, x : x + w] = 255
                png = (root / "segmentations" / rel).with_suffix(".png")
                Image.fromarray(seg, mode="L").save(png, format="PNG")
            lines["images.txt"].append(f"{image_id} {rel}")
            lines["image_class_labels.txt"].append(f"{image_id} {class_id}")
            lines["train_test_split.txt"].append(f"{image_id} {int(k % 2 == 0)}")
            lines["bounding_boxes.txt"].append(f"{image_id} {x}.0 {y}.0 {w}.0 {h}.0")
    for name, rows in lines.items():
        (root / name).write_text("".join(f"{r}\n" for r in rows), encoding="utf-8")
    return root


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to create (must not exist)")
    parser.add_argument("--no-segmentations", action="store_true")
    args = parser.parse_args()
    print(make_cub_fixture(args.out, with_segmentations=not args.no_segmentations))


if __name__ == "__main__":
    main()
