"""Writing the synthetic-city dataset folder (``houseprice data synth-city``).

This module owns :func:`generate_city`: it simulates the city (``simulate``), paints the world
(``render``) and writes the folder in the dataset contract (``data_specs/dataset.md``):
``dataset.json``, ``houses.csv``, ``tiles/``, ``masks/`` and the hidden ``truth/`` (drivers
and per-tile evidence masks, never read by training code), plus the same city in user formats
(``orthophoto``): the whole world as one GeoTIFF ``orthophoto.tif`` and the records as
GeoParquet ``houses.parquet``. The folder is built in a temporary
sibling and renamed into place (:func:`houseprice.artifacts.atomic_directory`, which adds the
``manifest.json`` of ownership). Output is a pure function of (config, n_houses, seed, tile_px,
tile_meters).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from houseprice.artifacts import atomic_directory
from houseprice.data.houses.schema import DATASET_FORMAT, DATASET_FORMAT_VERSION
from houseprice.errors import UserInputError
from houseprice.synth.city import orthophoto, render
from houseprice.synth.city.config import HOUSE_COLUMNS, ORACLE_COLUMNS, CityConfig
from houseprice.synth.city.simulate import SyntheticCity, simulate_city, tile_masks

GENERATOR_NAME = "houseprice.synth.city"
GENERATOR_VERSION = "1"


def _fmt(v: Any, kind: str) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    if kind == "b":
        return "1" if v else "0"
    if kind == "i":
        return str(int(v))
    if kind.startswith("f"):
        digits = int(kind[1:])
        return f"{round(float(v), digits) + 0.0:.{digits}f}"  # + 0.0 turns -0.0 into 0.0
    return str(v)


def _write_csv(path: Path, df: pd.DataFrame, kinds: dict[str, str]) -> None:
    lines = [",".join(df.columns)]
    cols = [df[c].tolist() for c in df.columns]
    ks = [kinds.get(c, "s") for c in df.columns]
    for vals in zip(*cols, strict=True):
        lines.append(",".join(_fmt(v, k) for v, k in zip(vals, ks, strict=True)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


_HOUSE_KINDS = {
    "latitude": "f7", "longitude": "f7", "bedrooms": "i", "bathrooms": "f1", "area_sqft": "f1",
    "price": "f1",
}  # fmt: skip


def _driver_kinds(df: pd.DataFrame) -> dict[str, str]:
    out = {}
    for c in df.columns:
        if pd.api.types.is_bool_dtype(df[c]):
            out[c] = "b"
        elif pd.api.types.is_integer_dtype(df[c]):
            out[c] = "i"
        elif pd.api.types.is_float_dtype(df[c]):
            out[c] = "f6"
    return out


def _save_png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=1)


def _write_tiles(
    folder: Path,
    city: SyntheticCity,
    classes: np.ndarray,
    rgb: np.ndarray,
    tile_px: int,
    m_per_px: float,
    progress: bool,
) -> None:
    """Every house's tile, label mask and evidence mask, cut from the world rasters."""
    for sub in ("tiles", "masks", "truth/evidence"):
        (folder / sub).mkdir(parents=True)
    ids = city.houses["house_id"].tolist()
    for row in tqdm(range(len(ids)), desc="writing tiles", disable=not progress):
        (r0, c0), mask, ev = tile_masks(city, row, classes, tile_px, m_per_px)
        _save_png(folder / "tiles" / f"{ids[row]}.png", rgb[r0 : r0 + tile_px, c0 : c0 + tile_px])
        _save_png(folder / "masks" / f"{ids[row]}.png", mask)
        _save_png(folder / "truth" / "evidence" / f"{ids[row]}.png", ev)


def _dataset_meta(
    cfg: CityConfig, seed: int, n_houses: int, tile_px: int, tile_meters: float
) -> dict[str, Any]:
    """The ``dataset.json`` of a synthetic city (the dataset contract plus its generator)."""
    return {
        "format": DATASET_FORMAT,
        "format_version": DATASET_FORMAT_VERSION,
        "name": "synthetic-city",
        "generator": {
            "name": GENERATOR_NAME,
            "version": GENERATOR_VERSION,
            "config": asdict(cfg),
        },
        "seed": seed,
        "table": "houses.csv",
        "n_houses": n_houses,
        "crs": "EPSG:4326",
        "tile_px": tile_px,
        "tile_meters": tile_meters,
        "mask_classes": {str(k): v for k, v in render.MASK_CLASSES.items()},
        "truth": {
            "drivers": "truth/drivers.csv",
            "evidence_dir": "truth/evidence",
            "oracle_columns": ORACLE_COLUMNS,
        },
    }


#: Largest tile the generator renders (the city raster grows with the square of it).
MAX_TILE_PX = 512


def generate_city(
    out_dir: str | Path,
    *,
    n_houses: int = 2000,
    seed: int = 0,
    tile_px: int = 64,
    tile_meters: float = 70.0,
    progress: bool = True,
    config: CityConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic-city dataset folder (see module docstring) and return its path.

    The folder is built in a temporary sibling and renamed into place, with a
    ``manifest.json`` (format ``houseprice-dataset``) marking it as houseprice's. An existing
    non-empty ``out_dir`` is an error unless ``overwrite=True``, and even then it is replaced
    only if houseprice wrote it and nothing in it changed
    (:func:`houseprice.artifacts.check_replaceable`).
    """
    cfg = config or CityConfig()
    out = Path(out_dir)
    if not 8 <= tile_px <= MAX_TILE_PX:
        raise UserInputError(
            f"--tile-px must be between 8 and {MAX_TILE_PX}, got {tile_px} (the whole city is "
            "rendered at this resolution)"
        )
    if not tile_meters > 0:
        raise UserInputError(f"tile_meters must be > 0, got {tile_meters}")
    cfg.check(tile_meters)
    with atomic_directory(out, overwrite=overwrite, kind=DATASET_FORMAT) as tmp:
        city = simulate_city(n_houses=n_houses, seed=seed, config=cfg)
        m_per_px = tile_meters / tile_px
        classes = render.render_classes(city.world, m_per_px)
        rgb = render.render_rgb(
            city.world,
            m_per_px,
            supersample=cfg.supersample,
            noise_seed=seed * 7 + 3,
            progress=progress,
        )
        _write_tiles(tmp, city, classes, rgb, tile_px, m_per_px, progress)
        _write_csv(tmp / "houses.csv", city.houses[HOUSE_COLUMNS], _HOUSE_KINDS)
        _write_csv(tmp / "truth" / "drivers.csv", city.drivers, _driver_kinds(city.drivers))
        orthophoto.write_orthophoto(
            tmp / orthophoto.ORTHOPHOTO_NAME, rgb, city.world.size_m, m_per_px
        )
        orthophoto.write_geoparquet(tmp / orthophoto.GEOPARQUET_NAME, city.houses[HOUSE_COLUMNS])
        meta = _dataset_meta(cfg, seed, n_houses, tile_px, tile_meters)
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


__all__ = ["GENERATOR_NAME", "GENERATOR_VERSION", "generate_city"]
