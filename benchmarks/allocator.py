"""Benchmark: glibc's allocator defaults vs houseprice's settings on the forward pass.

Run: python benchmarks/allocator.py [--chunks 4] [--rounds 2]
Builds the same quick-profile model as ``scale_out.py`` (a 200-house city, one epoch), then
computes the visual features of ``--chunks`` chunks of 2,048 random 64-px tiles (1 torch
thread) in four settings, each in a fresh process, ``--rounds`` times in interleaved order:

- ``main, glibc defaults``: this process's main thread, nothing tuned (the CLI before);
- ``main, tune_allocator``: the same after :func:`houseprice.runtime.tune_allocator` (the CLI);
- ``dask task, dask defaults``: a task on a 1-worker LocalCluster started with distributed's
  own worker environment (``MALLOC_TRIM_THRESHOLD_=65536``);
- ``dask task, houseprice's LocalCluster``: the same with ``LOCAL_CLUSTER_CONFIG``
  (:data:`houseprice.runtime.ALLOCATOR_ENV` in the workers' environment).

Reports wall time, user/system CPU time and minor page faults of the computing thread, and
the process's peak RSS. Writes benchmarks/results/allocator.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = ("main-default", "main-tuned", "dask-default", "dask-houseprice")
LABELS = {
    "main-default": "main thread, glibc defaults",
    "main-tuned": "main thread, `tune_allocator()` (the CLI)",
    "dask-default": "Dask task, distributed's worker environment",
    "dask-houseprice": "Dask task, houseprice's LocalCluster",
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
for _k in list(ENV):
    if _k.startswith("MALLOC_"):
        del ENV[_k]  # every setting starts from glibc's defaults


def features(model_dir: str, chunks: int) -> dict[str, float]:
    """Visual features of ``chunks`` x 2,048 random tiles; this thread's costs."""
    import resource
    import time

    import numpy as np
    import torch

    from houseprice.valuation.model import HousePriceModel

    torch.set_num_threads(1)
    featurizer = HousePriceModel.load(model_dir).featurizer
    tiles = np.random.default_rng(0).integers(0, 255, (2048, 64, 64, 3), dtype=np.uint8)
    featurizer.transform(tiles[:256], device="cpu")  # warm-up
    r0 = resource.getrusage(resource.RUSAGE_THREAD)
    t0 = time.perf_counter()
    for _ in range(chunks):
        featurizer.transform(tiles, device="cpu")
    r1 = resource.getrusage(resource.RUSAGE_THREAD)
    return {
        "seconds": time.perf_counter() - t0,
        "user_seconds": r1.ru_utime - r0.ru_utime,
        "system_seconds": r1.ru_stime - r0.ru_stime,
        "minor_faults": r1.ru_minflt - r0.ru_minflt,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def one(setting: str, model_dir: str, chunks: int) -> dict[str, float]:
    """One measurement in this (fresh) process."""
    if setting.startswith("main"):
        if setting == "main-tuned":
            from houseprice.runtime import tune_allocator

            assert tune_allocator()
        return features(model_dir, chunks)
    import logging

    import dask
    from distributed import Client, LocalCluster

    from houseprice.jobs.engines import LOCAL_CLUSTER_CONFIG

    config = LOCAL_CLUSTER_CONFIG if setting == "dask-houseprice" else {}
    with (
        dask.config.set(config),
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env={"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
        ) as cluster,
        Client(cluster) as client,
    ):
        return client.submit(features, model_dir, chunks, pure=False).result()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        setting, model_dir, chunks = args.one
        print(json.dumps(one(setting, model_dir, int(chunks))))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scale_out import build

    runs: dict[str, list[dict[str, float]]] = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, _ = build(Path(tmp), [])
        for r in range(args.rounds):
            for s in SETTINGS:
                cmd = [sys.executable, __file__, "--one", s, str(model_dir), str(args.chunks)]
                done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=False)
                if done.returncode != 0:
                    raise SystemExit(f"{s} failed:\n{done.stderr[-4000:]}")
                runs[s].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {r + 1} {s}: {runs[s][-1]['seconds']:.1f} s", flush=True)
    report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, float]]]) -> None:
    def mean(s: str, k: str) -> float:
        return statistics.fmean(r[k] for r in runs[s])

    result = {
        "chunks": args.chunks,
        "rounds": args.rounds,
        "tiles": 2048 * args.chunks,
        "runs": runs,
        "speedup_main": mean("main-default", "seconds") / mean("main-tuned", "seconds"),
        "speedup_dask": mean("dask-default", "seconds") / mean("dask-houseprice", "seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "allocator.json").write_text(json.dumps(result, indent=2) + "\n")

    def each(s: str) -> str:
        return " / ".join(f"{r['seconds']:.1f}" for r in runs[s])

    rows = "\n".join(
        f"| {LABELS[s]} | {each(s)} | "
        f"{mean(s, 'user_seconds'):.1f} | {mean(s, 'system_seconds'):.1f} | "
        f"{mean(s, 'minor_faults') / 1e6:.2f} | {mean(s, 'peak_rss_mb'):.0f} |"
        for s in SETTINGS
    )
    md = (
        "# Allocator settings on the forward pass (CPU, 1 thread)\n\n"
        f"`python benchmarks/allocator.py --chunks {args.chunks} --rounds {args.rounds}` — "
        f"visual features of {result['tiles']:,} random 64-px tiles (quick-profile model, "
        f"2 siamese nets, batches of 256), each setting in a fresh process, rounds interleaved; "
        f"{result['machine']}.\n\n"
        "| setting | seconds (each round) | user s | system s | minor faults (M) | "
        "peak RSS MB |\n"
        "|---|---|---:|---:|---:|---:|\n"
        f"{rows}\n\n"
        f"- houseprice's settings: **{result['speedup_main']:.2f}×** faster in the main thread, "
        f"**{result['speedup_dask']:.2f}×** in a Dask task (means over rounds)\n"
    )
    (RESULTS / "allocator.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
