"""The LocalCluster houseprice starts: houseprice's allocator settings, no stack profiler."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("distributed")


def forward_faults() -> list[int]:
    """Minor page faults of 8 forward passes over 256 tiles, in the calling thread."""
    import resource

    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
    ).eval()
    x = torch.rand(256, 3, 64, 64)
    faults = []
    with torch.no_grad():
        for _ in range(8):
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            net(x)
            faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    return faults


def test_local_cluster_workers_start_with_houseprices_allocator_and_no_profiler() -> None:
    from houseprice.jobs.engines import dask_client
    from houseprice.runtime import ALLOCATOR_ENV

    with dask_client(None, 1) as client:
        env = client.run(
            lambda: {k: os.environ.get(k) for k in (*ALLOCATOR_ENV, "OMP_NUM_THREADS")}
        )
        profiling = client.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks)
        faults = client.submit(forward_faults, pure=False).result()  # in the task thread
    assert list(env.values()) == [{**ALLOCATOR_ENV, "OMP_NUM_THREADS": "1"}], env
    assert list(profiling.values()) == [False]  # the 10 ms stack sampler costs 2-8%
    # dask's default (MALLOC_TRIM_THRESHOLD_=65536, a thread arena) faults every pass's
    # activations in again: ~57,000 faults a pass (> 300,000 in six), +20-30% time
    assert sum(faults[2:]) < 30_000, faults
