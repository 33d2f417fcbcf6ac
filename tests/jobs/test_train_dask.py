"""``houseprice train --engine dask``: the price regressors on Dask, the same model folder.

An in-process LocalCluster (2 worker threads; LightGBM's network state is per thread) is
reached by address, the way ``--scheduler`` reaches an existing cluster.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

distributed = pytest.importorskip("distributed")

from cli.main import app  # noqa: E402

runner = CliRunner()


def run(*args: object) -> tuple[int, str]:
    """Invoke the CLI; torch's thread count (which the CLI sets) is restored afterwards, so a
    later in-process training in this session is not changed by it."""
    import torch

    threads = torch.get_num_threads()
    try:
        res = runner.invoke(app, [str(a) for a in args])
    finally:
        torch.set_num_threads(threads)
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def dask_model(scheduler: str, tiny_city: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``city_model``'s training (same call, same process settings) with the Dask engine."""
    from houseprice.jobs import train

    out = tmp_path_factory.mktemp("dask_model") / "model"
    train(tiny_city, out, profile="quick", progress=False, engine="dask", scheduler=scheduler)
    return out


def test_dask_training_changes_only_the_regressors(dask_model: Path, city_model: Path) -> None:
    info = json.loads((dask_model / "model.json").read_text())["info"]
    assert info["tabular_engine"] == {
        "engine": "dask",
        "workers": 2,
        "partitions": [2, 2],
        "tree_learner": "data",
    }
    for name in ("regressor.txt", "regressor_no_visual.txt"):
        body = (dask_model / name).read_text()
        assert body.startswith("tree\n") and "[tree_learner: data]" in body
        assert "[num_machines: 2]" in body
        assert body != (city_model / name).read_text()  # really trained on the cluster
    # the siamese stage stayed local: the same weights as the local model's, byte for byte
    assert (dask_model / "siamese.safetensors").read_bytes() == (
        city_model / "siamese.safetensors"
    ).read_bytes()


def test_dask_trained_prices_are_close_to_local(
    dask_model: Path, city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    """Same features, same parameters: on 160 houses (96 training rows, 48 per worker) the
    median log-price gap is < 0.05 and the prices correlate > 0.95 (measured: see report)."""
    from houseprice.jobs import predict

    _, d, _ = predict(dask_model, tiny_city / "houses.csv", tmp_path / "d.csv", progress=False)
    _, lo, _ = predict(city_model, tiny_city / "houses.csv", tmp_path / "l.csv", progress=False)
    assert d is not None and lo is not None
    assert d["used_visual"].tolist() == lo["used_visual"].tolist()
    log_gap = np.log(d["predicted_price"]) - np.log(lo["predicted_price"])
    assert float(np.median(np.abs(log_gap))) < 0.05
    assert np.corrcoef(d["predicted_price"], lo["predicted_price"])[0, 1] > 0.95


def test_cli_dask_training_writes_a_model_folder_that_predict_accepts(
    scheduler: str, tiny_city: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    code, text = run(
        "train", "--data", tiny_city, "--out", out, "--profile", "quick",
        "--engine", "dask", "--scheduler", scheduler, "--quiet",
    )  # fmt: skip
    assert code == 0, text
    assert "[tree_learner: data]" in (out / "regressor.txt").read_text()
    code, text = run(
        "predict", "--model", out, "--input", tiny_city / "houses.csv",
        "--out", tmp_path / "p.csv", "--quiet",
    )  # fmt: skip
    assert code == 0, text
    prices = pd.read_csv(tmp_path / "p.csv")
    assert len(prices) == len(pd.read_csv(tiny_city / "houses.csv"))
    assert prices["predicted_price"].gt(0).all() and prices["used_visual"].any()


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "nonsense-address"])
def test_unreachable_scheduler_is_a_user_error(
    address: str, tiny_city: Path, tmp_path: Path
) -> None:
    import dask

    out = tmp_path / "model"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code, text = run(
            "train", "--data", tiny_city, "--out", out, "--profile", "quick",
            "--engine", "dask", "--scheduler", address, "--quiet",
        )  # fmt: skip
    assert code == 2, text
    assert "cannot connect to a Dask scheduler" in text and address in text
    assert not out.exists()  # refused before any training


def test_unknown_engine_is_a_user_error(tiny_city: Path, tmp_path: Path) -> None:
    from houseprice.errors import UserInputError
    from houseprice.jobs import train

    with pytest.raises(UserInputError, match="--engine must be one of local, dask"):
        train(tiny_city, tmp_path / "m", profile="quick", engine="spark", progress=False)
    with pytest.raises(UserInputError, match="need --engine dask"):
        train(tiny_city, tmp_path / "m", profile="quick", scheduler="tcp://x:1", progress=False)
    assert not (tmp_path / "m").exists()
