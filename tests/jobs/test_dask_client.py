"""The LocalCluster houseprice starts: glibc's own memory trimming, no stack profiler."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("distributed")


def test_local_cluster_workers_do_not_get_dasks_malloc_trim_threshold() -> None:
    from houseprice.jobs.engines import dask_client

    with dask_client(None, 1) as client:
        seen = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        threads = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
        profiling = client.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks)
    assert list(seen.values()) == [None], seen  # 65536 costs +20-30% on the forward pass
    assert list(threads.values()) == ["1"]
    assert list(profiling.values()) == [False]  # the 10 ms stack sampler costs 2-8%
