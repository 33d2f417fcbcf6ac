"""Price ranges end to end: columns, --interval, old folders, calibrate, evaluate's sections."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from houseprice.artifacts import write_manifest
from houseprice.valuation.calibration import CALIBRATION_FILE, RANGE_COLUMNS
from houseprice.valuation.model import HousePriceModel

runner = CliRunner()


def run(*args: object) -> tuple[int, str]:
    res = runner.invoke(app, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


def _strip_calibration(model: Path, dest: Path) -> Path:
    """A copy of ``model`` as houseprice wrote folders before calibration.json existed."""
    shutil.copytree(model, dest)
    (dest / CALIBRATION_FILE).unlink()
    manifest = json.loads((dest / "manifest.json").read_text())
    files = [f for f in manifest["files"] if f != CALIBRATION_FILE]
    write_manifest(dest, kind=manifest["format"], version=manifest["format_version"], files=files)
    return dest


def test_predictions_carry_a_calibrated_range(city_model: Path, tiny_city: Path) -> None:
    model = HousePriceModel.load(city_model)
    assert model.calibration is not None
    assert set(model.calibration.tables) == {"visual", "no_visual"}
    from houseprice.data.houses import load_dataset

    ds = load_dataset(tiny_city, purpose="predict")
    rec = ds.records.iloc[:40]
    f8 = model.predict_frame(rec, ds.tiles)
    f9 = model.predict_frame(rec, ds.tiles, interval=0.9)
    assert set(RANGE_COLUMNS) <= set(f8.columns)
    assert (f8["interval_level"] == 0.8).all() and (f9["interval_level"] == 0.9).all()
    assert (f8["price_low"] < f8["price_high"]).all()
    assert (f9["price_low"] <= f8["price_low"]).all() and (
        f9["price_high"] >= f8["price_high"]
    ).all()
    assert (f8["fsd"] > 0).all() and np.array_equal(f8["fsd"], f9["fsd"])
    assert set(f8["confidence"]) <= {"high", "medium", "low"}


@pytest.mark.parametrize("bad", ["0", "1", "1.5", "nan", "-0.1"])
def test_bad_interval_is_exit_2(city_model: Path, tiny_city: Path, tmp_path: Path, bad: str):
    code, out = run(
        "predict", "--model", city_model, "--input", tiny_city, "--out", tmp_path / "p.csv",
        "--interval", bad, "--quiet",
    )  # fmt: skip
    assert code == 2, out
    assert "--interval" in out and "between 0 and 1" in out
    assert not (tmp_path / "p.csv").exists()


def test_old_folder_predicts_and_says_how_to_calibrate(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    old = _strip_calibration(city_model, tmp_path / "old_model")
    assert HousePriceModel.load(old).calibration is None
    code, out = run(
        "predict", "--model", old, "--input", tiny_city, "--out", tmp_path / "p.csv", "--quiet"
    )
    assert code == 0, out
    assert "no price-range calibration" in out and f"houseprice calibrate --model {old}" in out
    assert out.count("no price-range calibration") == 1
    assert "price_low" not in pd.read_csv(tmp_path / "p.csv").columns

    code, out = run("calibrate", "--model", old, "--data", tiny_city, "--quiet")
    assert code == 0, out
    code, out = run(
        "predict", "--model", old, "--input", tiny_city, "--out", tmp_path / "q.csv", "--quiet"
    )
    assert code == 0 and "no price-range calibration" not in out
    again = pd.read_csv(tmp_path / "q.csv")
    code, _ = run(
        "predict", "--model", city_model, "--input", tiny_city, "--out", tmp_path / "r.csv",
        "--quiet",
    )  # fmt: skip
    trained = pd.read_csv(tmp_path / "r.csv")
    # the calibration added later is the one training writes (same rows, same regressors)
    np.testing.assert_allclose(again["price_low"], trained["price_low"], rtol=1e-5)
    np.testing.assert_allclose(again["price_high"], trained["price_high"], rtol=1e-5)


def test_calibrate_refuses_what_it_may_not_rewrite(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    code, out = run("calibrate", "--model", city_model, "--data", tiny_city, "--quiet")
    assert code == 2 and "already has a price-range calibration" in out
    old = _strip_calibration(city_model, tmp_path / "old_model")
    (old / "notes.txt").write_text("mine")
    code, out = run("calibrate", "--model", old, "--data", tiny_city, "--quiet")
    assert code == 2 and "did not write" in out
    assert (old / "notes.txt").read_text() == "mine" and not (old / CALIBRATION_FILE).exists()


def test_evaluate_reports_ratio_study_and_coverage(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    code, text = run(
        "evaluate", "--model", city_model, "--data", tiny_city, "--out", out, "--quiet"
    )
    assert code == 0, text
    assert "IAAO ratio study" in text and "COD" in text and "(IAAO 5.0–15.0)" in text
    report = json.loads((out / "report.json").read_text())
    rs = report["ratio_study"]
    assert rs["overall"]["n"] == report["test_size"]
    assert set(rs["price_quintile"]) == {"Q1", "Q2", "Q3", "Q4", "Q5"}
    assert sum(s["n"] for s in rs["price_quintile"].values()) == report["test_size"]
    assert set(rs["flags"]) == {"used_visual", "outside_training_area", "outside_training_period"}
    assert rs["price_quintile"]["Q1"]["warning"]  # 64 test houses: 13 per quintile < 20
    levels = report["price_ranges"]["levels"]
    assert set(levels) == {"0.8", "0.9"}
    for runs in levels.values():
        assert set(runs) == {"with_visual", "without_visual"}
        assert 0.0 < runs["with_visual"]["coverage"] <= 1.0
    md = (out / "report.md").read_text()
    assert "## IAAO ratio study" in md and ("🟢" in md or "🔴" in md)
    assert "## Price ranges: empirical coverage" in md
    assert (out / "ratio_study.png").read_bytes()[:4] == b"\x89PNG"
