"""Price model: scikit-learn compliance, metrics, save/load, fallback for missing tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from houseprice.data.houses import load_dataset
from houseprice.pricing.attributes import attribute_frame, parse_attribute_set, time_split
from houseprice.pricing.metrics import mape, median_ape, within_pct_accuracy
from houseprice.pricing.regressor import PriceRegressor, comparison_regressors


@parametrize_with_checks([PriceRegressor(n_estimators=20)])
def test_sklearn_estimator_checks(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def test_metrics_values() -> None:
    t = np.array([100.0, 200.0, 300.0, 400.0])
    p = np.array([109.0, 150.0, 300.0, 441.0])
    assert within_pct_accuracy(t, p) == 0.5  # 9% in, 25% out, 0% in, 10.25% out
    assert mape(t, p) == pytest.approx((0.09 + 0.25 + 0 + 0.1025) / 4)
    assert median_ape(t, p) == pytest.approx((0.09 + 0.1025) / 2)
    with pytest.raises(ValueError, match="must be finite and > 0"):
        mape([0.0], [1.0])


def test_regressor_fits_log_price_and_handles_nan() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (400, 2))
    x[::7, 1] = np.nan
    y = np.exp(12 + 1.5 * x[:, 0])
    reg = PriceRegressor(n_estimators=200).fit(x, y)
    assert within_pct_accuracy(y, reg.predict(x)) > 0.95
    with pytest.raises(ValueError, match="every target must be > 0"):
        PriceRegressor().fit(x, -y)


def test_comparison_regressors_fit() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (120, 3))
    x[::5, 2] = np.nan
    y = np.exp(12 + x[:, 0])
    for name, reg in comparison_regressors().items():
        assert reg.fit(x, y).predict(x).shape == (120,), name


def test_attribute_sets_and_time_split(planted: Path) -> None:
    r = load_dataset(planted).records
    assert parse_attribute_set("G,Bed") == ("G", "Bed") and parse_attribute_set("none") == ()
    with pytest.raises(ValueError, match="unknown attribute"):
        parse_attribute_set("G,Pool")
    x = attribute_frame(r, ("G", "T"))
    assert list(x.columns) == ["latitude", "longitude", "t_months"]
    assert x["t_months"].iloc[0] == pytest.approx((2018 - 1970) * 12 + 0)
    tr, te = time_split(r)
    assert len(tr) == int(0.6 * len(r))
    assert r["sold_date"].iloc[tr].max() <= r["sold_date"].iloc[te].min()
