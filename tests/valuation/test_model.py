"""HousePriceModel: fit, predict with per-row fallback, save/load (identical predictions)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from houseprice.data.houses import FolderTiles, load_any, load_dataset, load_records
from houseprice.errors import FormatError
from houseprice.pricing.attributes import attribute_frame
from houseprice.valuation.config import TrainConfig
from houseprice.valuation.model import HousePriceModel
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.siamese import SiameseConfig, SiameseTrainConfig


def tiny_config(n_folds: int = 2) -> TrainConfig:
    sia = SiameseConfig(backbone=BackboneConfig(widths=(16, 24, 32)), image_size=32)
    training = SiameseTrainConfig(epochs=2, batch_size=32, patience=2)
    return TrainConfig(
        siamese=sia,
        siamese_training=training,
        regressor={"n_estimators": 60},
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
    a = model.predict_frame(ds.records, ds.tiles)
    b = again.predict_frame(ds.records, ds.tiles)
    np.testing.assert_array_equal(a["predicted_price"].to_numpy(), b["predicted_price"].to_numpy())
    assert a["used_visual"].all()
    assert sorted(p.name for p in folder.iterdir()) == [
        "calibration.json",
        "manifest.json",
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
    out = model.predict_frame(rec, FolderTiles(work))
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
        model.predict_frame(load_records(p), FolderTiles(tmp_path))


def test_load_detects_tampering(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, folder = trained
    bad = tmp_path / "m"
    shutil.copytree(folder, bad)
    with open(bad / "regressor.txt", "a") as fh:
        fh.write("\n")
    with pytest.raises(FormatError, match="checksum mismatch"):
        HousePriceModel.load(bad)
    with pytest.raises(FormatError, match=r"no manifest\.json"):
        HousePriceModel.load(tmp_path)


def test_loaded_regressors_report_the_saved_parameters(trained: tuple[Path, Path]) -> None:
    _, folder = trained
    again = HousePriceModel.load(folder)
    assert again.regressor_no_visual.get_params()["n_estimators"] == 60  # not the default 800
    assert again.regressor is not None and again.regressor.get_params()["n_estimators"] == 60
    assert again.regressor_no_visual.booster_.num_trees() == 60


def test_no_tile_dataset_trains_no_visual_model(tmp_path: Path, planted: Path) -> None:
    df = pd.read_csv(planted / "houses.csv").drop(columns="image")
    df.to_csv(tmp_path / "h.csv", index=False)
    ds = load_any(tmp_path / "h.csv", purpose="train")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = HousePriceModel.fit(ds, tiny_config(), progress=False)
    assert model.featurizer is None and model.regressor is None
    out = model.predict_frame(ds.records, ds.tiles)
    assert not out["used_visual"].any()


def test_contributions_add_up_to_the_prediction(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """SHAP groups sum to the log prediction exactly, money groups to the price (1e-9 rel)."""
    from houseprice.pricing.contributions import log_contributions

    data, folder = trained
    model = HousePriceModel.load(folder)
    ds = load_dataset(data)
    rec = ds.records.copy()
    rec.loc[rec.index[:3], "image"] = None  # three fallback rows
    out = model.predict_frame(rec, ds.tiles, contributions=True)
    money = out.filter(like="contrib_").fillna(0.0).sum(axis=1) + out["base_price"]
    np.testing.assert_allclose(money, out["predicted_price"], rtol=1e-9)
    assert (
        out["contrib_image"].iloc[:3].isna().all() and out["contrib_image"].iloc[3:].notna().all()
    )
    assert {"contrib_location", "contrib_area", "contrib_sale_time"} <= set(out.columns)
    x = attribute_frame(rec, model.config.attributes).iloc[:3]
    base, groups = log_contributions(model.regressor_no_visual, x)
    np.testing.assert_allclose(
        base + groups.sum(axis=1), np.log(out["predicted_price"].iloc[:3]), rtol=0, atol=1e-12
    )
