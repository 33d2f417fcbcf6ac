"""Per-driver evidence of the synthetic city and per-driver scores of heatmaps.

The generator writes one evidence mask per house (the union of the pixels of every price
driver that applies, data_specs/synth_city.md "Visual drivers"). This module splits it back
into the six drivers at evaluation time, from the label mask and ``truth/drivers.csv``:

=========  ================================================================================
driver     pixels (evidence mask ∩ …, for houses where ``|effect| >= 0.05``)
=========  ================================================================================
pool       label 6 (pool)
trees      label 7 (tree) outside the park region
water      label 8 (water)
highway    label 4 (highway)
park       label 9 (park) and trees inside the park region (park pixels closed and filled)
lot        evidence pixels not claimed by another applying driver
=========  ================================================================================

and scores maps on them: the share of heatmap mass (Chen §4.1 heatmap ratio), the pointing
game (Zhang et al. 2018 §4.1, tolerance scaled to the tile) and, for signed maps, the sign of
the mass (:func:`sign_agreement`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from houseprice.data.houses import Dataset
from houseprice.data.houses.tiles import read_mask
from houseprice.errors import UserInputError
from houseprice.explain import heatmap_ratio_in_mask, pointing_game, signed_mass_in_mask

DRIVERS: tuple[str, ...] = ("pool", "lot", "trees", "water", "park", "highway")
#: Label-mask classes (dataset.json mask_classes) of the object drivers.
CLASSES = {"highway": 4, "pool": 6, "trees": 7, "water": 8, "park": 9}
#: The generator's evidence threshold on |effect| (synth city config evidence_min_effect).
APPLIES = 0.05
#: Sign of each driver's effect on the price in the generator (lot: either way).
EXPECTED_SIGN = {"pool": 1, "trees": 1, "water": 1, "park": 1, "highway": -1}


def pointing_tolerance(tile_px: int) -> float:
    """Zhang et al.'s 15-px tolerance at 224 px, scaled to the tile (≈ 4.3 px at 64 px)."""
    return 15.0 * tile_px / 224.0


def label_mask_dir(ds: Dataset, override: str | Path | None = None) -> Path:
    """Folder of the label masks ``<id>.png``: ``override``, else ``<dataset>/masks``."""
    folder = Path(override) if override is not None else ds.root / "masks"
    if not folder.is_dir():
        raise UserInputError(
            f"{folder}: no label masks (needed for per-driver scores; the synthetic city has "
            "them in masks/; pass the folder as label_masks=)"
        )
    return folder


def driver_effects(ds: Dataset, ids: list[str]) -> pd.DataFrame:
    """``effect_<driver>`` columns of ``truth/drivers.csv`` for ``ids`` (in that order)."""
    rel = (ds.meta.get("truth") or {}).get("drivers")
    path = ds.root / str(rel) if rel else None
    if path is None or not path.is_file():
        raise UserInputError(f"{ds.root}: no truth/drivers.csv (only the synthetic city has it)")
    table = pd.read_csv(path, dtype={"house_id": str}).set_index("house_id")
    cols = [f"effect_{d}" for d in DRIVERS]
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise UserInputError(f"{path}: missing columns {missing}")
    absent = [h for h in ids if h not in table.index]
    if absent:
        raise UserInputError(f"{path}: no row for houses {absent[:3]}")
    return table.loc[ids, cols]


def park_region(park: np.ndarray) -> np.ndarray:
    """Park pixels ``(S, S)`` closed (3×3, 2 rounds) and hole-filled: trees in a park are holes
    in the park class; parks are rectangles in the generator."""
    if not park.any():
        return park
    closed = ndimage.binary_closing(park, structure=np.ones((3, 3), bool), iterations=2)
    return ndimage.binary_fill_holes(closed | park)


def split_evidence(
    evidence: np.ndarray, labels: np.ndarray, effects: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Per-driver evidence masks ``{driver: (N, S, S) bool}`` (empty where it does not apply).

    ``evidence (N, S, S)`` bool, ``labels (N, S, S)`` label classes, ``effects`` the
    ``effect_<driver>`` rows of the same houses.
    """
    if evidence.shape != labels.shape or len(effects) != len(evidence):
        raise ValueError("evidence, labels and effects must describe the same houses")
    on = {d: np.abs(effects[f"effect_{d}"].to_numpy(float)) >= APPLIES for d in DRIVERS}
    region = np.stack([park_region(lab == CLASSES["park"]) for lab in labels])
    pix = {d: evidence & (labels == c) for d, c in CLASSES.items()}
    pix["park"] = evidence & ((labels == CLASSES["park"]) | (region & (labels == CLASSES["trees"])))
    pix["trees"] = pix["trees"] & ~region
    out: dict[str, np.ndarray] = {}
    for d in DRIVERS:
        if d == "lot":
            continue
        out[d] = pix[d] & on[d][:, None, None]
    claimed = np.zeros_like(evidence)
    for d in out:
        claimed |= out[d]
    out["lot"] = evidence & ~claimed & on["lot"][:, None, None]
    return {d: out[d] for d in DRIVERS}


def read_label_masks(folder: Path, ids: list[str], size: int) -> np.ndarray:
    """Label masks ``(N, S, S)`` uint8 of ``ids`` from ``folder`` (nearest resize)."""
    missing = [h for h in ids if not (folder / f"{h}.png").is_file()]
    if missing:
        raise UserInputError(f"{folder}: no label mask for houses {missing[:3]}")
    return np.stack([read_mask(folder / f"{h}.png", size) for h in ids])


def driver_scores(
    maps: np.ndarray, drivers: dict[str, np.ndarray], tolerance: float
) -> dict[str, dict[str, Any]]:
    """Per driver: mean heatmap share on its pixels, pointing-game hit rate, house count.

    Only houses where the driver has pixels count. An all-zero map scores 0 share (it points
    nowhere); its pointing game is the chance rate (every pixel is tied).
    """
    out: dict[str, dict[str, Any]] = {}
    for d, masks in drivers.items():
        has = masks.any(axis=(1, 2))
        n = int(has.sum())
        if not n:
            out[d] = {"ratio": None, "pointing": None, "n": 0}
            continue
        ratio = np.nan_to_num(heatmap_ratio_in_mask(maps[has], masks[has]), nan=0.0)
        hit = pointing_game(maps[has], masks[has], tolerance)
        out[d] = {"ratio": float(ratio.mean()), "pointing": float(hit.mean()), "n": n}
    return out


def sign_agreement(signed: np.ndarray, drivers: dict[str, np.ndarray]) -> dict[str, Any]:
    """For each object driver, the share of houses whose signed mass on the driver's pixels has
    the generator's sign (highway: more negative than positive; pool, trees, water, park: more
    positive), with the count and the mean net mass share ``(pos − neg) / (pos + neg)``."""
    out: dict[str, Any] = {}
    for d, sign in EXPECTED_SIGN.items():
        masks = drivers[d]
        has = masks.any(axis=(1, 2))
        n = int(has.sum())
        if not n:
            out[d] = {"agree": None, "n": 0, "net": None, "expected": sign}
            continue
        pos, neg = signed_mass_in_mask(signed[has], masks[has])
        agree = (neg > pos) if sign < 0 else (pos > neg)
        net = (pos - neg) / np.maximum(pos + neg, 1e-12)
        out[d] = {"agree": float(agree.mean()), "n": n, "net": float(net.mean()), "expected": sign}
    return out
