"""The LocalCluster houseprice starts gives its workers glibc's own memory trimming."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("distributed")


def test_local_cluster_workers_do_not_get_dasks_malloc_trim_threshold() -> None:
    from houseprice.jobs.engines import dask_client

    with dask_client(None, 1) as client:
        seen = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        threads = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
    assert list(seen.values()) == [None], seen  # 65536 costs +20-30% on the forward pass
    assert list(threads.values()) == ["1"]
