"""Shared fixtures of the job tests: a 2-worker Dask LocalCluster for the Dask engines."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a 2-process LocalCluster (1 thread per worker), one per test module."""
    distributed = pytest.importorskip("distributed")
    env = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
        env=env,
    ) as cluster:
        yield cluster.scheduler_address
