"""predict on Dask: same output as the local engine, one model load per worker, dead workers.

One LocalCluster (2 worker processes, 1 thread each) serves the module; the tests connect to
it by address, which is also how ``--scheduler`` reaches an existing cluster.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

import houseprice.jobs.engines as engines  # noqa: E402
from houseprice.jobs.engines import score_table  # noqa: E402
from houseprice.jobs.stream import read_predictions  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_result(city_model: Path, tiny_city: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("local") / "p.parquet"
    score_table(city_model, tiny_city, out, chunk_size=20, progress=False)
    return read_predictions(out)


def test_dask_equals_local(
    scheduler: str, local_result: pd.DataFrame, city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    out = tmp_path / "d.parquet"
    res = score_table(
        city_model,
        tiny_city,
        out,
        engine="dask",
        scheduler=scheduler,
        partitions=4,
        chunk_size=16,
        progress=False,
    )
    assert res.partitions == 4 and res.rows == 160
    assert all(r.model_loads == 1 for r in res.results), "a worker loaded the model twice"
    pd.testing.assert_frame_equal(read_predictions(out), local_result)
    assert not (out / "_records.parquet").exists()


def dying_partition(job, part, records_path, *, marker: str):  # type: ignore[no-untyped-def]
    """Partition 1's first attempt kills its worker process after writing its first chunk."""

    def hook(frame: pd.DataFrame) -> None:
        if part.index != 1:
            return
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # the retry: carry on
        os._exit(1)  # the worker process dies mid-partition (no cleanup, like a kill -9)

    return engines.dask_partition(job, part, records_path, on_chunk=hook)


def test_dead_worker_loses_and_duplicates_nothing(
    scheduler: str, local_result: pd.DataFrame, city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests
    marker = tmp_path / "died"
    out = tmp_path / "d.parquet"
    score_table(
        city_model,
        tiny_city,
        out,
        engine="dask",
        scheduler=scheduler,
        partitions=4,
        chunk_size=8,  # 5 chunks in partition 1: the worker dies with a half-written file
        progress=False,
        task=functools.partial(dying_partition, marker=str(marker)),
    )
    assert marker.exists(), "no worker died: the test tested nothing"
    got = read_predictions(out)
    assert got["house_id"].is_unique and len(got) == 160
    pd.testing.assert_frame_equal(got, local_result)
    assert sorted(p.name for p in out.iterdir()) == [
        "_job.json",
        "manifest.json",
        *[f"part-{i:05d}.parquet" for i in range(4)],
    ]
