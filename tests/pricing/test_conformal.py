"""Conformal price ranges: coverage on exchangeable data, bands, FSD, grades, JSON, levels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from houseprice.pricing.conformal import (
    ConformalTable,
    check_level,
    confidence,
    forward_predictions,
)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and prices whose log error spreads 0.05 for cheap, 0.25 for dear houses."""
    rng = np.random.default_rng(seed)
    pred = np.exp(rng.uniform(11.0, 13.0, n))
    sigma = np.where(pred < np.exp(12.0), 0.05, 0.25)
    return pred, pred * np.exp(rng.normal(0.02, sigma))


@pytest.mark.parametrize("level", [0.8, 0.9])
def test_coverage_is_the_nominal_level_on_exchangeable_data(level: float):
    table = ConformalTable.fit(*_data(2000, 0))
    pred, price = _data(40_000, 1)
    low, high = table.bounds(pred, level)
    inside = (price >= low) & (price <= high)
    assert abs(inside.mean() - level) < 0.02
    # price bands adapt: the cheap and the dear houses are each covered (the bands at the
    # calibration quantiles end near 11.8 and 12.2; the one between mixes both spreads)
    cheap, dear = pred < np.exp(11.8), pred > np.exp(12.2)
    assert abs(inside[cheap].mean() - level) < 0.03
    assert abs(inside[dear].mean() - level) < 0.03


def test_bands_adapt_the_width_and_one_band_does_not():
    pred, price = _data(2000, 0)
    banded, flat = ConformalTable.fit(pred, price), ConformalTable.fit(pred, price, bands=1)
    assert len(banded.scores) == 5 and len(flat.scores) == 1
    p = np.exp(np.array([11.5, 12.5]))
    fsd = banded.fsd(p)
    assert fsd[1] > 3 * fsd[0]  # dear houses: five times the spread
    assert flat.fsd(p)[0] == pytest.approx(flat.fsd(p)[1])


def test_fsd_is_one_standard_deviation_and_grades_follow_the_bands():
    rng = np.random.default_rng(3)
    pred = np.full(5000, 200_000.0)
    table = ConformalTable.fit(pred, pred * np.exp(rng.normal(0.0, 0.1, 5000)), bands=1)
    assert table.fsd(pred[:1])[0] == pytest.approx(0.1, rel=0.06)
    assert list(confidence([0.05, 0.15, 0.2, 0.3, 0.31])) == [
        "high",
        "high",
        "medium",
        "medium",
        "low",
    ]


def test_wider_level_gives_a_wider_range_and_json_round_trips():
    table = ConformalTable.fit(*_data(600, 2))
    pred = _data(50, 3)[0]
    lo8, hi8 = table.bounds(pred, 0.8)
    lo9, hi9 = table.bounds(pred, 0.9)
    assert (lo9 <= lo8).all() and (hi9 >= hi8).all() and ((hi9 - lo9) > (hi8 - lo8)).any()
    again = ConformalTable.from_json(table.to_json())
    np.testing.assert_allclose(again.bounds(pred, 0.8), (lo8, hi8), rtol=1e-5)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, math.nan, math.inf, "x", None])
def test_levels_outside_zero_one_are_refused(bad: object):
    with pytest.raises(ValueError, match="interval level"):
        check_level(bad)  # type: ignore[arg-type]


def test_damaged_json_is_refused():
    good = ConformalTable.fit(*_data(300, 4)).to_json()
    with pytest.raises(ValueError, match="one non-empty score list per band"):
        ConformalTable.from_json({**good, "scores": good["scores"][:-1]})
    with pytest.raises(ValueError, match="finite"):
        ConformalTable.from_json({**good, "edges": [math.nan] * len(good["edges"])})


class _Recorder:
    """A regressor that remembers the latest sale date it was fitted on."""

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> _Recorder:
        self.last = x["date"].max()
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        assert (x["date"] > self.last).all(), "a block was priced by a model that saw it"
        return np.full(len(x), 1.0)


def test_forward_chaining_prices_each_block_from_earlier_sales_only():
    dates = pd.date_range("2020-01-01", periods=100, freq="D").to_numpy()[::-1]  # unsorted
    x = pd.DataFrame({"date": dates})
    rows, pred = forward_predictions(_Recorder, x, np.ones(100), dates, blocks=5)
    assert len(rows) == len(pred) == 80
    earliest = set(np.argsort(dates)[:20])
    assert not earliest & set(rows.tolist())  # the first block only trains
