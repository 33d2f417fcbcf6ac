"""Benchmark: streaming predict on one process vs Dask workers (houses/s, peak memory).

Run: python benchmarks/scale_out.py [--rows 20000] [--memory-rows 10000,100000]
Builds a small synthetic city, trains a quick-profile model (one epoch: speed does not depend
on the weights), and writes bigger tables whose rows repeat the city's houses (new ids, the
same tile files). Each measurement runs in a fresh subprocess, so peak RSS is its own:

- throughput on ``--rows`` rows: the local engine (1 torch thread), Dask with 1 worker and
  with 2 workers (LocalCluster processes, 1 thread each; cluster start and worker warm-up are
  timed apart, the job's wall time is what houses/s is computed from);
- peak RSS per worker (and of the client) with 2 workers at each of ``--memory-rows`` (a size
  that is also ``--rows`` reuses the 2-worker speed run: the same measurement);
- the machine's own ceiling for 2 cores: two local-engine processes started together, each on
  half the rows (no Dask, nothing shared but the machine). Their speed-up over one process on
  all the rows bounds what any 2-worker engine can reach here.

Every process runs with OMP_NUM_THREADS=1 (LightGBM too), so 1 worker = 1 core, and with
houseprice's allocator settings (``houseprice.runtime``: the CLI's ``tune_allocator`` here, the
LocalCluster's worker environment for Dask). Both engines use the default partitions (one per
``--chunk-size`` 2,048 rows), so they score the same chunks.

Writes benchmarks/results/scale_out.{json,md}. The machine is shared: ratios come from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from houseprice.runtime import ALLOCATOR_ENV, tune_allocator

RESULTS = Path(__file__).resolve().parent / "results"
LOAD_AT_START = os.getloadavg()[0]


def build(tmp: Path, rows: list[int]) -> tuple[Path, dict[int, Path]]:
    """The model folder and one table per size (rows repeat the city's houses)."""
    import pandas as pd

    from houseprice.data.houses import load_dataset
    from houseprice.synth.city import generate_city
    from houseprice.valuation.config import profile_config
    from houseprice.valuation.model import HousePriceModel

    city = generate_city(tmp / "city", n_houses=200, seed=0, progress=False)
    cfg = profile_config("quick")
    cfg.siamese_training.epochs = 1
    model = HousePriceModel.fit(load_dataset(city, purpose="train"), cfg, progress=False)
    model_dir = model.save(tmp / "model")
    base = pd.read_csv(city / "houses.csv", dtype=str, keep_default_na=False)
    tables = {}
    for n in rows:
        big = base.iloc[[i % len(base) for i in range(n)]].reset_index(drop=True)
        big["house_id"] = [f"B{i:07d}" for i in range(n)]
        tables[n] = big.drop(columns=["price"]).to_csv(city / f"houses_{n}.csv", index=False)
        tables[n] = city / f"houses_{n}.csv"
    return model_dir, tables


def one(spec: dict) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    from houseprice.jobs.engines import score_table

    torch.set_num_threads(1)
    tune_allocator()  # as the CLI does (houseprice.runtime); Dask workers: LOCAL_CLUSTER_CONFIG
    kw = {"chunk_size": 2048, "progress": False, "collect": False}
    start = time.perf_counter()
    cluster = None
    if spec["engine"] == "dask":
        import logging

        import dask
        from distributed import Client, LocalCluster

        from houseprice.jobs.engines import LOCAL_CLUSTER_CONFIG

        dask.config.set(LOCAL_CLUSTER_CONFIG)  # as houseprice's own LocalCluster
        cluster = LocalCluster(
            n_workers=spec["workers"],
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env={"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
        )
        with Client(cluster) as c:  # warm up: imports and the model, once per worker
            c.run(lambda: __import__("houseprice.valuation.model"))
        kw.update(engine="dask", scheduler=cluster.scheduler_address)  # partitions: the default
    started = time.perf_counter() - start
    if "start_at" in spec:  # start together with the other process of a pair
        time.sleep(max(0.0, spec["start_at"] - time.time()))
    wall0 = time.time()
    t0 = time.perf_counter()
    res = score_table(spec["model"], spec["table"], spec["out"], **kw)
    seconds = time.perf_counter() - t0
    if cluster is not None:
        cluster.close()
    per_worker: dict[int, float] = {}
    for r in res.results:
        per_worker[r.pid] = max(per_worker.get(r.pid, 0.0), r.max_rss_mb)
    return {
        **{k: spec[k] for k in ("engine", "workers", "rows")},
        "seconds": seconds,
        "startup_seconds": started,
        "houses_per_second": spec["rows"] / seconds,
        "wall_start": wall0,
        "wall_end": wall0 + seconds,
        "client_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb": sorted(per_worker.values()) if cluster is not None else [],
        "model_loads_per_worker": sorted({r.model_loads for r in res.results}),
    }


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}  # 1 core each


def run(spec: dict) -> dict:
    print("…", spec["engine"], spec["workers"], spec["rows"], flush=True)
    cmd = [sys.executable, __file__, "--one", json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        raise SystemExit(f"measurement {spec} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {result['seconds']:.1f} s, {result['houses_per_second']:.0f} houses/s", flush=True)
    return result


def run_pair(specs: list[dict], *, delay: float = 20.0) -> dict:
    """Two local processes at once (each starts its job at the same wall-clock second)."""
    print("… 2 local processes at once,", specs[0]["rows"], "rows each", flush=True)
    start_at = time.time() + delay  # both have imported torch by then
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--one", json.dumps({**s, "start_at": start_at})],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for s in specs
    ]
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"paired measurement failed:\n{err[-4000:]}")
    each = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    rows = sum(e["rows"] for e in each)
    wall = max(e["wall_end"] for e in each) - min(e["wall_start"] for e in each)
    print(f"  {wall:.1f} s, {rows / wall:.0f} houses/s", flush=True)
    return {"rows": rows, "seconds": wall, "houses_per_second": rows / wall, "each": each}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--memory-rows", default="10000,100000")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    mem_rows = [int(x) for x in args.memory_rows.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, tables = build(Path(tmp), sorted({args.rows, args.rows // 2, *mem_rows}))

        def spec(engine: str, workers: int, rows: int) -> dict:
            out = Path(tmp) / f"out_{engine}_{workers}_{rows}.parquet"
            return {"engine": engine, "workers": workers, "rows": rows, "model": str(model_dir),
                    "table": str(tables[rows]), "out": str(out)}  # fmt: skip

        speed = [run(spec("local", 1, args.rows)), run(spec("dask", 1, args.rows))]
        speed.append(run(spec("dask", 2, args.rows)))
        half = [spec("local", 1, args.rows // 2) for _ in range(2)]
        half[1]["out"] = half[1]["out"].replace(".parquet", "_b.parquet")
        pair = run_pair(half)
        done = {(r["engine"], r["workers"], r["rows"]): r for r in speed}
        memory = [done.get(("dask", 2, n)) or run(spec("dask", 2, n)) for n in mem_rows]
    report(args, speed, memory, pair)


def report(args: argparse.Namespace, speed: list, memory: list, pair: dict) -> None:
    local, d1, d2 = speed
    ceiling = pair["houses_per_second"] / local["houses_per_second"]
    result = {
        "rows": args.rows,
        "speed": speed,
        "memory_dask_2_workers": memory,
        "speedup_2_vs_1_workers": d2["houses_per_second"] / d1["houses_per_second"],
        "dask_overhead_1_worker": d1["seconds"] / local["seconds"] - 1,
        "two_local_processes": pair,
        "machine_ceiling_2_vs_1": ceiling,
        "speedup_share_of_ceiling": d2["houses_per_second"] / d1["houses_per_second"] / ceiling,
        "worker_rss_growth": max(memory[-1]["worker_peak_rss_mb"])
        / max(memory[0]["worker_peak_rss_mb"])
        - 1,
        "goals": {"speedup": 1.7, "overhead": 0.15, "rss_growth": 0.20},
        "allocator": ALLOCATOR_ENV,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average "
        f"{LOAD_AT_START:.1f} when the run started (1-min, from os.getloadavg)",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_out.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(
        f"| {r['engine']} | {r['workers']} | {r['rows']:,} | {r['seconds']:.1f} | "
        f"{r['houses_per_second']:.0f} | {r['startup_seconds']:.1f} |"
        for r in speed
    )
    mem = "\n".join(
        f"| {d['rows']:,} | {', '.join(f'{v:.0f}' for v in d['worker_peak_rss_mb'])} | "
        f"{d['client_peak_rss_mb']:.0f} |"
        for d in memory
    )
    md = (
        "# Scale-out: streaming predict, local vs Dask (CPU)\n\n"
        f"`python benchmarks/scale_out.py --rows {args.rows} --memory-rows "
        f"{args.memory_rows}` — quick-profile model, 64-px tiles repeated from a 200-house "
        "city, Parquet output, `--chunk-size 2048`, 1 torch thread per process; "
        f"{result['machine']}.\n\n"
        "| engine | workers | rows | job s | houses/s | cluster start + warm-up s |\n"
        "|---|---:|---:|---:|---:|---:|\n"
        f"{rows}\n\n"
        f"- 2 vs 1 workers: **{result['speedup_2_vs_1_workers']:.2f}x** (goal >= 1.7x)\n"
        f"- Dask overhead at 1 worker vs local: **{100 * result['dask_overhead_1_worker']:+.1f}%** "
        "(goal <= 15%)\n"
        f"- the machine's ceiling: two local processes at once, {pair['rows'] // 2:,} rows each, "
        f"{pair['seconds']:.1f} s, {pair['houses_per_second']:.0f} houses/s: **{ceiling:.2f}x** "
        f"one local process; 2 Dask workers price "
        f"**{100 * d2['houses_per_second'] / pair['houses_per_second']:.0f}%** as many houses per "
        "second as the two independent processes\n\n"
        "Peak RSS (MB):\n\n"
        "| rows | per Dask worker (2 workers) | Dask client |\n"
        "|---:|---|---:|\n"
        f"{mem}\n\n"
        f"- worker peak RSS growth from {memory[0]['rows']:,} to {memory[-1]['rows']:,} rows: "
        f"**{100 * result['worker_rss_growth']:+.1f}%** (goal: flat within 20%). The client (like "
        "the local engine) holds the validated records table, loaded whole: it grows with N.\n"
    )
    (RESULTS / "scale_out.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
