"""Streaming predict on one machine: chunking changes nothing, resume, interrupted runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import houseprice.jobs.engines as engines
from houseprice.data.houses import load_any
from houseprice.errors import OutputExistsError, UserInputError
from houseprice.jobs import predict
from houseprice.jobs.outputs import write_table
from houseprice.jobs.stream import plan, read_predictions
from houseprice.valuation.model import HousePriceModel


def _one_shot(city_model: Path, tiny_city: Path) -> pd.DataFrame:
    """What predict wrote before streaming: one predict_frame over the whole table."""
    model = HousePriceModel.load(city_model)
    ds = load_any(tiny_city, purpose="predict")
    return model.predict_frame(ds.records, ds.tiles)


def _norm(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing text as None (an all-empty text column is str+NaN in Parquet, object+None)."""
    out = frame.reset_index(drop=True).astype(object)
    return out.where(out.notna(), None)


def test_plan_is_fixed_row_ranges() -> None:
    parts = plan(10, chunk_size=4)
    assert [(p.start, p.stop) for p in parts] == [(0, 4), (4, 8), (8, 10)]
    assert [(p.start, p.stop) for p in plan(10, chunk_size=4, partitions=2)] == [(0, 5), (5, 10)]
    assert len(plan(3, chunk_size=1, partitions=8)) == 3
    with pytest.raises(UserInputError, match="--chunk-size"):
        plan(3, chunk_size=0)


def test_chunked_equals_one_shot(city_model: Path, tiny_city: Path, tmp_path: Path) -> None:
    old = _one_shot(city_model, tiny_city)
    write_table(old, tmp_path / "old.csv")
    for chunk in (37, 10_000):
        _, frame, _ = predict(
            city_model, tiny_city, tmp_path / f"c{chunk}.csv", chunk_size=chunk, progress=False
        )
        assert (tmp_path / f"c{chunk}.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()
        assert frame is not None and frame["house_id"].tolist() == old["house_id"].tolist()
    predict(city_model, tiny_city, tmp_path / "p.parquet", chunk_size=37, progress=False)
    got = read_predictions(tmp_path / "p.parquet")
    assert len(list((tmp_path / "p.parquet").glob("part-*.parquet"))) == 5
    pd.testing.assert_frame_equal(_norm(got), _norm(old))
    assert np.array_equal(got["predicted_price"].to_numpy(), old["predicted_price"].to_numpy())


REAL_SCORE_PARTITION = engines.score_partition


class SimulatedCrash(BaseException):
    """Not an Exception: nothing on the way may swallow it (like a kill or Ctrl-C)."""


def _count_partitions(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> list[int]:
    """Record the partitions scored in this process; raise at the ``fail_at``-th one."""
    seen: list[int] = []
    real = REAL_SCORE_PARTITION

    def spy(job, part, *args, **kwargs):  # type: ignore[no-untyped-def]
        if fail_at is not None and len(seen) == fail_at:
            raise SimulatedCrash("simulated interruption")
        seen.append(part.index)
        return real(job, part, *args, **kwargs)

    monkeypatch.setattr(engines, "score_partition", spy)
    return seen


def test_resume_scores_only_missing_partitions(
    city_model: Path, tiny_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "p.parquet"
    predict(city_model, tiny_city, out, chunk_size=40, progress=False, collect=False)
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == 4
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in parts}
    (out / "part-00002.parquet").unlink()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        predict(city_model, tiny_city, out, chunk_size=40, progress=False)
    with pytest.raises(UserInputError, match="another job"):
        predict(city_model, tiny_city, out, chunk_size=50, resume=True, progress=False)
    seen = _count_partitions(monkeypatch)
    _, frame, _ = predict(city_model, tiny_city, out, chunk_size=40, resume=True, progress=False)
    assert seen == [2]
    for p in sorted(out.glob("part-*.parquet")):
        data, mtime = before[p.name]
        assert p.read_bytes() == data  # the recomputed partition is the same file
        assert p.name == "part-00002.parquet" or p.stat().st_mtime_ns == mtime
    assert frame is not None and len(frame) == 160 and frame["house_id"].is_unique


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_interrupted_run_never_looks_complete(
    suffix: str,
    city_model: Path,
    tiny_city: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / f"p.{suffix}"
    work = out if suffix == "parquet" else tmp_path / f".p.{suffix}.parts"
    _count_partitions(monkeypatch, fail_at=2)
    with pytest.raises(SimulatedCrash):
        predict(city_model, tiny_city, out, chunk_size=40, progress=False)
    assert not (work / "manifest.json").exists()
    assert suffix == "parquet" or not out.exists()
    assert sorted(p.name for p in work.glob("part-*")) == [
        f"part-00000.{suffix}",
        f"part-00001.{suffix}",
    ]
    assert not [p for p in os.listdir(work) if p.endswith(".tmp")]
    with pytest.raises(OutputExistsError, match="unfinished run"):
        predict(city_model, tiny_city, out, chunk_size=40, progress=False)
    seen = _count_partitions(monkeypatch)
    predict(city_model, tiny_city, out, chunk_size=40, resume=True, progress=False)
    assert seen == [2, 3]
    predict(city_model, tiny_city, tmp_path / f"ref.{suffix}", chunk_size=160, progress=False)
    got, ref = read_predictions(out), read_predictions(tmp_path / f"ref.{suffix}")
    pd.testing.assert_frame_equal(got, ref)
    if suffix == "csv":
        assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes() and not work.exists()
