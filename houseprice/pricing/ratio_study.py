"""IAAO ratio study of valuations against sale prices: level, uniformity, vertical equity.

This module owns the assessors' statistics (IAAO *Standard on Ratio Studies*, 2013) of the
ratios ``estimate / sale price``: the median ratio (level), the coefficient of dispersion COD
(uniformity), the price-related differential PRD and the price-related bias PRB (vertical
equity), and Quintos' modified Kakwani index MKI; IAAO's outlier trimming (ratios beyond
3 × IQR from the quartiles, Appendix B.1), 95% intervals (percentile bootstrap with a seeded
generator for median ratio, COD, PRD and MKI; PRB's closed-form OLS interval) and IAAO's
acceptable range beside each figure.

The formulas follow the standard (and ``assesspy``, the Cook County Assessor's Office package,
which the tests use as the reference on IAAO's worked examples). They are written here in
numpy rather than imported because ``assesspy`` is AGPL-3.0 (houseprice is MIT), its bootstrap
draws from numpy's global random state (not reproducible per ``--seed``) and its MKI loops in
Python; vectorised, a thousand bootstrap replicates of every group cost milliseconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: IAAO's acceptable ranges (single-family residential; MKI: Quintos 2020). Inclusive.
IAAO_RANGES: dict[str, tuple[float, float]] = {
    "median_ratio": (0.90, 1.10),
    "cod": (5.0, 15.0),
    "prd": (0.98, 1.03),
    "prb": (-0.05, 0.05),
    "mki": (0.95, 1.05),
}
STATISTICS = tuple(IAAO_RANGES)
MIN_SALES = 20  # IAAO: fewer sales than this make a ratio study unreliable
TRIM_IQR = 3.0  # IAAO Standard on Ratio Studies, Appendix B.1
TRIM_RULE = "ratios beyond 3 × IQR from the quartiles removed (IAAO Standard on Ratio Studies, B.1)"
_BOOT_CELLS = 4_000_000  # replicate rows × sales evaluated at once (memory stays bounded)


def _sale_order(est: np.ndarray, sale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(sale, axis=-1, kind="stable")
    return np.take_along_axis(est, order, -1), np.take_along_axis(sale, order, -1)


def _gini(sorted_values: np.ndarray) -> np.ndarray:
    """Gini coefficient of values already in the order that ranks them (last axis)."""
    n = sorted_values.shape[-1]
    rank = np.arange(1, n + 1, dtype=np.float64)
    g = 2.0 * (sorted_values * rank).sum(-1) / sorted_values.sum(-1) - (n + 1)
    return g / n


def statistics(est: np.ndarray, sale: np.ndarray) -> dict[str, np.ndarray]:
    """Every statistic over the last axis (one study per leading index: bootstrap replicates)."""
    ratio = est / sale
    med = np.median(ratio, axis=-1)
    cod = 100.0 * np.abs(ratio - med[..., None]).mean(-1) / med
    prd = ratio.mean(-1) / (est.sum(-1) / sale.sum(-1))
    a, s = _sale_order(est, sale)
    mki = _gini(a) / _gini(s)
    return {"median_ratio": med, "cod": cod, "prd": prd, "prb": _prb(est, sale)[0], "mki": mki}


def cod(est: np.ndarray, sale: np.ndarray) -> float:
    """COD (percent) of ``est / sale``: mean absolute deviation from the median ratio over it."""
    return float(statistics(np.asarray(est, float), np.asarray(sale, float))["cod"])


def _prb(est: np.ndarray, sale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PRB (slope of the percentage ratio deviation on log2 value proxy) and its std error."""
    ratio = est / sale
    med = np.median(ratio, axis=-1)[..., None]
    y = (ratio - med) / med
    x = np.log2((est / med + sale) / 2.0)
    xc = x - x.mean(-1, keepdims=True)
    sxx = (xc * xc).sum(-1)
    slope = (xc * (y - y.mean(-1, keepdims=True))).sum(-1) / sxx
    resid = y - y.mean(-1, keepdims=True) - slope[..., None] * xc
    n = est.shape[-1]
    se = np.sqrt((resid * resid).sum(-1) / max(n - 2, 1) / sxx)
    return slope, se


def trim_outliers(est: ArrayLike, sale: ArrayLike) -> np.ndarray:
    """Boolean mask of the sales kept by IAAO's 3 × IQR rule on the ratios."""
    ratio = np.asarray(est, np.float64) / np.asarray(sale, np.float64)
    q1, q3 = np.quantile(ratio, [0.25, 0.75])
    iqr = q3 - q1
    return (ratio >= q1 - TRIM_IQR * iqr) & (ratio <= q3 + TRIM_IQR * iqr)


def _bootstrap(
    est: np.ndarray, sale: np.ndarray, n_boot: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Percentile 95% intervals of every statistic but PRB, from ``n_boot`` resamples."""
    rng = np.random.default_rng(seed)
    n = len(est)
    step = max(1, _BOOT_CELLS // max(n, 1))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in STATISTICS}
    for start in range(0, n_boot, step):
        idx = rng.integers(0, n, size=(min(step, n_boot - start), n))  # (B, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            for k, v in statistics(est[idx], sale[idx]).items():
                parts[k].append(v)
    out = {}
    for k, chunks in parts.items():
        v = np.concatenate(chunks)
        v = v[np.isfinite(v)]
        out[k] = (float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))) if len(v) else None
    return out  # type: ignore[return-value]


def _figure(name: str, value: float, ci: tuple[float, float] | None) -> dict[str, Any]:
    lo, hi = IAAO_RANGES[name]
    ok = math.isfinite(value)
    return {
        "value": value if ok else None,
        "ci95": None if ci is None or not ok else [ci[0], ci[1]],
        "iaao_range": [lo, hi],
        "meets": bool(ok and lo <= value <= hi),
    }


def ratio_study(
    estimate: ArrayLike,
    sale_price: ArrayLike,
    *,
    trim: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The IAAO ratio study of ``estimate`` against ``sale_price`` (positive, finite arrays).

    Returns ``n`` (sales given), ``n_used`` / ``n_trimmed`` (IAAO trimming, ``trim_rule``),
    one entry per statistic (``value``, ``ci95``, ``iaao_range``, ``meets``) and ``warning``:
    None, or why IAAO would not rely on the study (fewer than :data:`MIN_SALES` sales). With
    fewer than 3 sales the figures are None.
    """
    est = np.asarray(estimate, dtype=np.float64)
    sale = np.asarray(sale_price, dtype=np.float64)
    if est.shape != sale.shape or est.ndim != 1:
        raise ValueError(f"estimate {est.shape} and sale_price {sale.shape} must be 1-d, equal")
    if not (np.isfinite(est).all() and np.isfinite(sale).all() and (est > 0).all()):
        raise ValueError("estimates and sale prices must be finite and > 0")
    if (sale <= 0).any():
        raise ValueError("sale prices must be > 0")
    keep = trim_outliers(est, sale) if trim and len(est) >= 4 else np.ones(len(est), bool)
    e, s = est[keep], sale[keep]
    out: dict[str, Any] = {
        "n": len(est),
        "n_used": len(e),
        "n_trimmed": int((~keep).sum()),
        "trim_rule": TRIM_RULE if trim else "no trimming",
        "warning": None,
    }
    if len(e) < MIN_SALES:
        out["warning"] = (
            f"only {len(e)} sales: IAAO considers fewer than {MIN_SALES} too few for a "
            "reliable ratio study"
        )
    if len(e) < 3:
        for k in STATISTICS:
            out[k] = _figure(k, float("nan"), None)
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        point = {k: float(v) for k, v in statistics(e, s).items()}
        slope, se = _prb(e, s)
    cis = _bootstrap(e, s, n_boot, seed) if n_boot > 0 else dict.fromkeys(STATISTICS)
    from scipy import stats

    t = float(stats.t.ppf(0.975, len(e) - 2))
    cis["prb"] = (float(slope - t * se), float(slope + t * se))
    for k in STATISTICS:
        out[k] = _figure(k, point[k], cis[k])
    return out


def ratio_study_groups(
    estimate: ArrayLike,
    sale_price: ArrayLike,
    labels: ArrayLike,
    *,
    min_sales: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """One :func:`ratio_study` per label (as a string key) with at least ``min_sales`` sales."""
    est = np.asarray(estimate, dtype=np.float64)
    sale = np.asarray(sale_price, dtype=np.float64)
    lab = np.asarray([str(v) for v in np.asarray(labels, dtype=object)], dtype=object)
    out = {}
    for i, key in enumerate(sorted(set(lab))):
        rows = lab == key
        if rows.sum() >= min_sales:
            out[key] = ratio_study(est[rows], sale[rows], n_boot=n_boot, seed=seed + 1 + i)
    return out
