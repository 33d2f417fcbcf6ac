"""An evaluation as assessors and lenders read it: the IAAO ratio study and range coverage.

This module owns the groups of the ratio study of a scored split (overall, per sale-price
quintile, per area cell of the map's grid (:func:`houseprice.maps.areas.area_grid`, cells
with at least ``MapStyle.area_min_houses`` sales), per flag: ``used_visual`` and the
extrapolation warnings of :meth:`HousePriceModel.outside_rows`) and the empirical coverage
of the calibrated price ranges (:mod:`houseprice.valuation.calibration`) at 80% and 90%,
overall and per quintile, with their mean relative width, for the model with and without
visual features. The statistics are :mod:`houseprice.pricing.ratio_study`'s; rendering is
:mod:`houseprice.valuation.assessment_report`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from houseprice.pricing.ratio_study import ratio_study, ratio_study_groups

if TYPE_CHECKING:
    from houseprice.valuation.model import HousePriceModel

COVERAGE_LEVELS = (0.8, 0.9)
N_BOOT = 1000


def price_quintiles(price: np.ndarray) -> np.ndarray:
    """``Q1`` (cheapest fifth of the sales) .. ``Q5`` per sale, by rank (ties by order)."""
    rank = np.argsort(np.argsort(np.asarray(price), kind="stable"), kind="stable")
    return np.asarray([f"Q{1 + (5 * r) // len(rank)}" for r in rank], dtype=object)


def area_cells(records: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Each house's cell of the map's area grid (``"row_column"``) and the cell side in m."""
    from houseprice.maps.areas import area_grid
    from houseprice.maps.payload import MapStyle

    grid = area_grid(
        records["latitude"].to_numpy(),
        records["longitude"].to_numpy(),
        cell_meters=None,
        cells_across=MapStyle().area_cells_across,
    )
    labels = np.asarray([f"{r}_{c}" for r, c in grid.cells], dtype=object)
    return labels, grid.cell_meters


def ratio_study_report(
    model: HousePriceModel,
    scored: pd.DataFrame,
    predicted: np.ndarray,
    used_visual: np.ndarray,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """The ratio study of ``predicted`` against the ``scored`` rows' sale prices."""
    from houseprice.maps.payload import MapStyle

    sale = scored["price"].to_numpy(dtype=np.float64)
    est = np.asarray(predicted, dtype=np.float64)
    cells, cell_m = area_cells(scored)
    far = model.outside_rows(scored)
    flags = {
        "used_visual": np.where(used_visual, "yes", "no"),
        "outside_training_area": np.where(far["place"], "yes", "no"),
        "outside_training_period": np.where(far["time"], "yes", "no"),
    }
    return {
        "overall": ratio_study(est, sale, n_boot=N_BOOT, seed=seed),
        "price_quintile": ratio_study_groups(
            est, sale, price_quintiles(sale), min_sales=1, n_boot=N_BOOT, seed=seed
        ),
        "area_cell": ratio_study_groups(
            est, sale, cells, min_sales=MapStyle().area_min_houses, n_boot=N_BOOT, seed=seed
        ),
        "area_cell_meters": cell_m,
        "flags": {
            k: ratio_study_groups(est, sale, v, min_sales=1, n_boot=N_BOOT, seed=seed)
            for k, v in flags.items()
        },
    }


def _coverage(
    calibration: Any, predicted: np.ndarray, used: np.ndarray, price: np.ndarray, level: float
) -> dict[str, Any]:
    r = calibration.ranges(predicted, used, level)
    low, high = r["price_low"].to_numpy(), r["price_high"].to_numpy()
    inside = (price >= low) & (price <= high)
    q = price_quintiles(price)
    return {
        "coverage": float(inside.mean()),
        "mean_width": float(np.mean((high - low) / predicted)),
        "by_quintile": {k: float(inside[q == k].mean()) for k in sorted(set(q))},
        "confidence_shares": {
            k: float(np.mean(r["confidence"].to_numpy() == k)) for k in ("high", "medium", "low")
        },
    }


def coverage_report(
    model: HousePriceModel,
    price: np.ndarray,
    predicted: np.ndarray,
    used_visual: np.ndarray,
    predicted_no_visual: np.ndarray,
) -> dict[str, Any] | None:
    """Empirical coverage of the calibrated ranges per level, with and without visual features.

    ``with_visual`` is the main model (visual regressor where a tile was usable);
    ``without_visual`` prices every row with the attributes-only regressor. None when the
    model has no calibration.
    """
    cal = model.calibration
    if cal is None:
        return None
    y = np.asarray(price, dtype=np.float64)
    runs = {"without_visual": (predicted_no_visual, np.zeros(len(y), bool))}
    if model.featurizer is not None:
        runs["with_visual"] = (predicted, np.asarray(used_visual, bool))
    return {
        "method": cal.to_json()["method"],
        "levels": {
            str(level): {k: _coverage(cal, p, u, y, level) for k, (p, u) in runs.items()}
            for level in COVERAGE_LEVELS
        },
    }
