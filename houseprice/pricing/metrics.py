"""Accuracy metrics for price predictions (all returned as fractions in [0, 1])."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _check(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    if t.size == 0:
        raise ValueError("no predictions to score")
    if np.any(~np.isfinite(t)) or np.any(t <= 0):
        raise ValueError("true prices must be finite and > 0")
    return t, p


def abs_pct_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """|pred − true| / true per house."""
    t, p = _check(y_true, y_pred)
    return np.abs(p - t) / t


def within_pct_accuracy(y_true: ArrayLike, y_pred: ArrayLike, pct: float = 0.10) -> float:
    """Share of houses priced within ±pct of the sale price (Chen §4.2 '10% accuracy')."""
    return float(np.mean(abs_pct_error(y_true, y_pred) <= pct))


def mape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute percentage error, as a fraction."""
    return float(np.mean(abs_pct_error(y_true, y_pred)))


def median_ape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Median absolute percentage error, as a fraction."""
    return float(np.median(abs_pct_error(y_true, y_pred)))
