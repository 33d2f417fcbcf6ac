"""One CliRunner test per command (quick profile, tiny generated data, never the network)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


@pytest.mark.parametrize(
    "command",
    [
        ["demo"],
        ["train"],
        ["predict"],
        ["evaluate"],
        ["calibrate"],
        ["explain"],
        ["data", "synth-city"],
        ["data", "synth-birds"],
        ["data", "ames"],
        ["data", "validate"],
        ["data", "import"],
        ["data", "tiles"],
        ["bench", "explainers"],
    ],
)
def test_every_command_has_help_with_example(command: list[str]) -> None:
    code, out = run(*command, "--help")
    assert code == 0 and "Example: houseprice" in out


def test_data_synth_city_and_validate(tmp_path: Path) -> None:
    code, out = run("data", "synth-city", "--out", tmp_path / "c", "--houses", "30", "--quiet")
    assert code == 0, out
    assert (tmp_path / "c" / "tiles").is_dir() and "wrote 30 houses" in out
    code, out = run("data", "validate", tmp_path / "c", "--for", "train")
    assert code == 0 and '"rows": 30' in out
    code, out = run("data", "synth-city", "--out", tmp_path / "c", "--houses", "30", "--quiet")
    assert code == 2 and "not empty" in out  # refuses to overwrite silently


def test_data_validate_reports_every_problem(tmp_path: Path) -> None:
    p = tmp_path / "h.csv"
    p.write_text("house_id,latitude,longitude,price\nA,95,0,1\nA,0,0,-3\n")
    code, out = run("data", "validate", p, "--for", "train")
    assert code == 2
    assert "row 1, column 'latitude', value '95': must be <= 90" in out
    assert "row 2, column 'house_id', value 'A': must be unique" in out
    assert "row 2, column 'price', value '-3': must be > 0" in out
    assert "required column 'sold_date' is missing" in out
    assert "Traceback" not in out


def test_data_ames(tmp_path: Path) -> None:
    code, out = run("data", "ames", "--out", tmp_path / "ames")
    assert code == 0, out
    assert len(pd.read_csv(tmp_path / "ames" / "houses.csv")) == 2930


def test_data_synth_birds(tmp_path: Path) -> None:
    code, out = run(
        "data",
        "synth-birds",
        "--out",
        tmp_path / "b",
        "--profile",
        "quick",
        "--classes",
        "4",
        "--per-class",
        "2",
        "--quiet",
    )
    assert code == 0, out
    assert len((tmp_path / "b" / "images.txt").read_text().splitlines()) == 8


@pytest.fixture(scope="module")
def model_dir(tiny_city: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    code, text = run("train", "--data", tiny_city, "--out", out, "--profile", "quick", "--quiet")
    assert code == 0, text
    assert "with visual features" in text
    return out


def test_train_writes_model_folder(model_dir: Path) -> None:
    meta = json.loads((model_dir / "model.json").read_text())
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "calibration.json",
        "model.json",
        "regressor_no_visual.txt",
        "siamese.safetensors",
        "regressor.txt",
        "gradweights.safetensors",
        "gradweights.json",
    }
    assert meta["attributes"] == ["G", "Bed", "Bath", "T", "A"]


def test_train_bad_input_exits_2(tiny_city: Path, tmp_path: Path) -> None:
    code, out = run(
        "train",
        "--data",
        tiny_city,
        "--out",
        tmp_path / "m",
        "--attributes",
        "G,Pool",
        "--profile",
        "quick",
    )
    assert code == 2 and "unknown attribute(s) Pool" in out
    code, out = run("train", "--data", tmp_path / "nope", "--out", tmp_path / "m")
    assert code == 2 and "no such file" in out
    code, out = run(
        "train", "--data", tiny_city, "--out", tmp_path / "m", "--folds", "1", "--profile", "quick"
    )
    assert code == 2 and "--folds must be 0 (naive, in-sample) or at least 2, got 1" in out


def test_predict(model_dir: Path, tiny_city: Path, tmp_path: Path) -> None:
    df = pd.read_csv(tiny_city / "houses.csv").drop(columns=["price"]).head(12)
    df.loc[0, "image"] = "tiles/does_not_exist.png"
    df.to_csv(tiny_city / "new.csv", index=False)
    try:
        code, out = run(
            "predict",
            "--model",
            model_dir,
            "--input",
            tiny_city / "new.csv",
            "--out",
            tmp_path / "p.csv",
            "--quiet",
        )
    finally:
        (tiny_city / "new.csv").unlink()
    assert code == 0, out
    assert "1 of 12 rows had no usable tile" in out
    pred = pd.read_csv(tmp_path / "p.csv")
    assert len(pred) == 12 and (pred["predicted_price"] > 0).all()
    assert pred["used_visual"].tolist() == [False] + [True] * 11


def test_evaluate(model_dir: Path, tiny_city: Path, tmp_path: Path) -> None:
    code, out = run(
        "evaluate", "--model", model_dir, "--data", tiny_city, "--out", tmp_path / "r", "--quiet"
    )
    assert code == 0, out
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert {
        "test_size",
        "accuracy_within_10pct",
        "regressors",
        "mape",
        "median_ape",
        "oracle",
    } <= set(rep)
    assert set(rep["accuracy_within_10pct"]) == {
        "none",
        "G",
        "G,Bed,Bath",
        "G,Bed,Bath,T",
        "G,A",
        "G,Bed,Bath,T,A",
    }
    for row in rep["accuracy_within_10pct"].values():
        assert row["lift"] == pytest.approx(row["with_visual"] - row["without_visual"])
    assert (tmp_path / "r" / "predictions.png").stat().st_size > 1000
    assert "| G,Bed,Bath,T,A |" in (tmp_path / "r" / "report.md").read_text()


def test_explain(model_dir: Path, tiny_city: Path, tmp_path: Path) -> None:
    code, out = run(
        "explain",
        "--model",
        model_dir,
        "--input",
        tiny_city,
        "--out",
        tmp_path / "e",
        "--map",
        tmp_path / "e" / "map.html",
        "--unseen-only",
        "--quiet",
    )
    assert code == 0, out
    table = pd.read_csv(tmp_path / "e" / "explanations.csv")
    assert table["overlay"].notna().all()
    assert not any(Path(p).is_absolute() for p in table["overlay"])  # no local paths
    assert all((tmp_path / "e" / p).exists() for p in table["overlay"])
    rep = json.loads((tmp_path / "e" / "report.json").read_text())
    assert {"transfer", "direct", "embeddingcam", "l2caf", "centre_prior"} <= set(
        rep["evidence_mask_ratio"]
    )
    assert 0 < rep["uniform"] < 1
    meta = json.loads((model_dir / "model.json").read_text())
    train_ids = set(meta["train_ids"])
    assert set(table["neighbour"].dropna()) <= train_ids  # weights come from training houses
    html = (tmp_path / "e" / "map.html").read_text()
    assert str(tmp_path / "e" / "overlays") not in html  # no local paths in a shared map
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?https?://", html)  # no CDN


def test_bench_explainers_needs_one_source(tmp_path: Path) -> None:
    code, out = run("bench", "explainers", "--out", tmp_path)
    assert code == 2 and "exactly one of --data" in out


def test_demo_quick(tmp_path: Path) -> None:
    code, out = run(
        "demo", "--out", tmp_path / "d", "--profile", "quick", "--houses", "150", "--quiet"
    )
    assert code == 0, out
    assert "G,Bed,Bath,T,A" in out and "report:" in out and "map:" in out
    assert (tmp_path / "d" / "map.html").exists()
