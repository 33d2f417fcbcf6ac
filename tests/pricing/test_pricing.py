"""Price model: scikit-learn compliance, metrics, save/load, fallback for missing tiles."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from houseprice.data.houses import load_dataset, load_records
from houseprice.pricing.attributes import attribute_frame, parse_attribute_set, time_split
from houseprice.pricing.metrics import mape, median_ape, within_pct_accuracy
from houseprice.pricing.regressor import PriceRegressor, comparison_regressors
from houseprice.valuation.model import (
    HousePriceModel,
    ModelFormatError,
    RegressorConfig,
    TrainConfig,
)
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.siamese import SiameseConfig, SiameseTrainConfig


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


def tiny_config(n_folds: int = 2) -> TrainConfig:
    sia = SiameseConfig(backbone=BackboneConfig(widths=(16, 24, 32)), image_size=32)
    training = SiameseTrainConfig(epochs=2, batch_size=32, patience=2)
    return TrainConfig(
        siamese=sia,
        siamese_training=training,
        regressor=RegressorConfig(n_estimators=60),
        n_folds=n_folds,
    )


@pytest.fixture(scope="module")
def trained(planted: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    ds = load_dataset(planted, purpose="train")
    model = HousePriceModel.fit(ds, tiny_config(), progress=False)
    out = tmp_path_factory.mktemp("m") / "model"
    model.save(out)
    return planted, out


def test_save_load_identical_predictions(trained: tuple[Path, Path]) -> None:
    data, folder = trained
    ds = load_dataset(data)
    model = HousePriceModel.fit(ds, tiny_config(), progress=False)  # same seed ⇒ same model
    again = HousePriceModel.load(folder)
    a = model.predict_frame(ds.root, ds.records)
    b = again.predict_frame(ds.root, ds.records)
    np.testing.assert_array_equal(a["predicted_price"].to_numpy(), b["predicted_price"].to_numpy())
    assert a["used_visual"].all()
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.json",
        "regressor.txt",
        "regressor_no_visual.txt",
        "siamese.safetensors",
    ]


def test_missing_and_corrupt_tiles_use_fallback(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, folder = trained
    work = tmp_path / "ds"
    shutil.copytree(data, work)
    (work / "tiles" / "P000.png").write_bytes(b"not a png")
    (work / "tiles" / "P001.png").unlink()
    df = pd.read_csv(work / "houses.csv")
    df.loc[2, "image"] = np.nan
    df.to_csv(work / "houses.csv", index=False)
    model = HousePriceModel.load(folder)
    rec = load_records(work / "houses.csv")
    out = model.predict_frame(work, rec)
    assert len(out) == len(rec)  # nothing dropped
    assert out["used_visual"].tolist()[:4] == [False, False, False, True]
    assert "not a readable image" in out["tile_problem"].iloc[0]
    assert "does not exist" in out["tile_problem"].iloc[1]
    nv = model.regressor_no_visual.predict(attribute_frame(rec, model.config.attributes)[:3])
    np.testing.assert_allclose(out["predicted_price"].to_numpy()[:3], nv)


def test_predict_rejects_missing_columns(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, folder = trained
    model = HousePriceModel.load(folder)
    p = tmp_path / "h.csv"
    pd.DataFrame({"house_id": ["a"], "latitude": [43.7], "longitude": [-79.4]}).to_csv(p)
    with pytest.raises(
        ValueError,
        match="lacks column\\(s\\) area_sqft, bathrooms, bedrooms, "
        "sold_date required by this model",
    ):
        model.predict_frame(tmp_path, load_records(p))


def test_load_detects_tampering(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, folder = trained
    bad = tmp_path / "m"
    shutil.copytree(folder, bad)
    with open(bad / "regressor.txt", "a") as fh:
        fh.write("\n")
    with pytest.raises(ModelFormatError, match="checksum mismatch"):
        HousePriceModel.load(bad)
    with pytest.raises(ModelFormatError, match=r"no model\.json"):
        HousePriceModel.load(tmp_path)


def test_no_tile_dataset_trains_no_visual_model(tmp_path: Path, planted: Path) -> None:
    df = pd.read_csv(planted / "houses.csv").drop(columns="image")
    df.to_csv(tmp_path / "h.csv", index=False)
    from houseprice.data.houses import load_any

    ds = load_any(tmp_path / "h.csv", purpose="train")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = HousePriceModel.fit(ds, tiny_config(), progress=False)
    assert model.featurizer is None and model.regressor is None
    out = model.predict_frame(ds.root, ds.records)
    assert not out["used_visual"].any()
