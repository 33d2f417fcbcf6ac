"""Per-house price contributions: LightGBM's own SHAP values, grouped and turned into money.

``PriceRegressor`` fits log price, so its TreeSHAP values (``pred_contrib=True``) split each
house's *log* prediction exactly: ``log p = φ₀ + Σ_j φ_j`` (φ₀ the expected log price over
the training data). Features are grouped as a reader thinks of them (latitude + longitude =
location, the visual features vf0… = the image), ``φ_g = Σ_{j∈g} φ_j``.

Money: the valuation is ``p = exp(φ₀) · Π_g exp(φ_g)``. The difference from the base price
``b = exp(φ₀)`` is shared in proportion to the log contributions,
``$_g = (p − b) · φ_g / Σ_h φ_h`` (0 when ``Σ φ = 0``), so the groups' money adds up to
``p − b`` exactly and each has the sign of its log effect. It reads "the image adds +$42,300
to a base of $310,000". Unlike ``b · (exp(φ_g) − 1)`` this sums to the price; unlike a
sequential order it depends on no order of the groups.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from houseprice.pricing.regressor import PriceRegressor

#: Feature column -> the group it is reported in.
GROUPS = {
    "latitude": "location",
    "longitude": "location",
    "bedrooms": "bedrooms",
    "bathrooms": "bathrooms",
    "t_months": "sale_time",
    "area_sqft": "area",
}


def group_of(column: str) -> str:
    """The report group of a feature column (visual features ``vf*`` are the image)."""
    if column.startswith("vf") and column[2:].isdigit():
        return "image"
    return GROUPS.get(column, column)


def log_contributions(reg: PriceRegressor, x: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """``(φ₀ (N,), φ per group (N, G))`` in log price; ``φ₀ + Σ φ = log(reg.predict(x))``."""
    raw = reg.booster_.predict(x.to_numpy(dtype=np.float64), pred_contrib=True)  # (N, F + 1)
    per_feature = pd.DataFrame(raw[:, :-1], columns=list(x.columns), index=x.index)
    groups = per_feature.T.groupby([group_of(c) for c in x.columns], sort=False).sum().T
    return raw[:, -1], groups


def money_contributions(base_log: np.ndarray, groups: pd.DataFrame) -> pd.DataFrame:
    """``base_price`` and ``contrib_<group>`` in currency; they add up to the prediction."""
    total = groups.sum(axis=1).to_numpy()
    price = np.exp(base_log + total)
    base = np.exp(base_log)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total != 0, (price - base) / total, 0.0)
    out = pd.DataFrame({"base_price": base}, index=groups.index)
    for g in groups.columns:
        out[f"contrib_{g}"] = groups[g].to_numpy() * share
    return out
