"""Speed benchmarks of houseprice.explain; every ratio is measured within one run.

1. weight-transfer heatmaps vs a plain forward pass on the same batch (goal <= 1.15x);
2. our batched Grad-CAM vs the ``grad-cam`` package's GradCAM, same model and batch (goal <= 1x);
3. fast vs vanilla L2-CAF per image (goal >= 5x faster) and batched L2-CAF throughput;
4. grad-weight database query time at 10k, 100k and 1M entries of 128-d (goal <= 1 ms per
   query at 1M), exact and approximate (IVF) indexes;
5. the house model's transfer (compact rank-siamese net, 64-px tiles, batch 128): the final
   8x8 layer vs the finer 16x16 ``penultimate`` layer, unsigned (top-M) vs signed (every
   channel) weights, each against the plain forward pass (goal <= 1.15x).

Usage: ``python benchmarks/explain_speed.py [--quick] [--threads N] [--out DIR] [--house-only]``;
writes ``explain_speed.json`` and ``explain_speed.md`` to ``benchmarks/results/`` by default
(``--house-only``: only part 5, to ``explain_speed_house.json`` / ``.md``). Models are
randomly initialised (nothing is downloaded). Times are medians of repeated runs after a
warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from houseprice.explain import (
    L2CAF,
    GradCAM,
    GradWeightDatabase,
    L2CAFConfig,
    WeightTransferCAM,
    weighted_sum,
)

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class BenchConfig:
    """Sizes of one benchmark run (``--quick`` shrinks everything)."""

    image_size: int = 224
    batch: int = 16
    repeats: int = 5
    l2caf_iterations: int = 100  # fixed (eps = 0) so fast and vanilla do the same work
    l2caf_batch: int = 16
    db_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    db_dim: int = 128
    db_channels: int = 512
    top_m: int = 50
    queries: int = 1000  # batched queries (a tenth for exact search); single: first 200
    threads: int = 1

    @classmethod
    def quick(cls, threads: int) -> BenchConfig:
        return cls(
            image_size=112,
            batch=4,
            repeats=3,
            l2caf_iterations=30,
            l2caf_batch=4,
            db_sizes=(10_000, 100_000),
            queries=200,
            threads=threads,
        )


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up run."""
    return statistics.median(interleaved({"fn": fn}, repeats)["fn"])


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Wall times of each function; runs alternate (a, b, a, b, ...) after a warm-up of each,
    so load changes on a shared machine hit both sides of a ratio alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def paired(times: dict[str, list[float]], numerator: str, denominator: str) -> dict[str, float]:
    """Medians of both sides and the median of the per-round ratios (adjacent runs)."""
    ratios = [a / b for a, b in zip(times[numerator], times[denominator], strict=True)]
    return {
        f"{numerator}_s": statistics.median(times[numerator]),
        f"{denominator}_s": statistics.median(times[denominator]),
        "ratio": statistics.median(ratios),
    }


def resnet(out_dim: int, seed: int) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torchvision.models.resnet18(num_classes=out_dim).eval()


def resnet_head(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """layer4 output -> model output (avgpool, flatten, fc) for the fast L2-CAF."""
    return lambda a: model.fc(torch.flatten(model.avgpool(a), 1))


def bench_transfer(cfg: BenchConfig, x: Tensor) -> dict[str, Any]:
    model = resnet(cfg.db_dim, seed=0)
    generator = torch.Generator().manual_seed(0)
    n = 5000
    database = GradWeightDatabase.build(
        torch.randn(n, cfg.db_dim, generator=generator),
        torch.randn(n, cfg.db_channels, generator=generator),
        top_m=cfg.top_m,
    )
    explainer = WeightTransferCAM(model, model.layer4, database)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    times = interleaved({"transfer": lambda: explainer.explain(x), "forward": forward}, cfg.repeats)
    result = paired(times, "transfer", "forward")
    # the parts that are not the forward pass, timed alone
    activations, output = explainer.forward_activations(x)
    weights = database.dense_weights(database.query(output).indices)

    def render() -> None:
        explainer.postprocess(weighted_sum(activations, weights).clamp_min(0), x.shape[-2:])

    return {
        "database_entries": n,
        "index": database.backend,
        **result,
        "query_s": median_seconds(lambda: database.query(output), cfg.repeats),
        "render_s": median_seconds(render, cfg.repeats),
        "goal": 1.15,
        "met": result["ratio"] <= 1.15,
    }


def bench_house_transfer(cfg: BenchConfig, batch: int = 128) -> list[dict[str, Any]]:
    """Transfer on the house model's net at both explain layers, unsigned and signed, with
    either search key (the visual feature is the net's output; the pooled map comes out of
    the same forward pass through ``PooledKey``, as in ``transfer_maps``)."""
    from houseprice.valuation.gradweights import PooledKey
    from houseprice.vision.siamese import RankSiamese, SiameseConfig

    with torch.random.fork_rng():
        torch.manual_seed(4)
        net = RankSiamese(SiameseConfig(aux_head=True)).eval()
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(batch, 3, 64, 64, generator=generator)
    n = 1200  # the standard demo's database size
    with torch.no_grad():
        pooled_dim = PooledKey(net)(x[:1]).shape[1]
    rows = []
    for key, model, dim in (
        ("visual", net, net.config.feature_dim),
        ("pooled", PooledKey(net), pooled_dim),
    ):
        keys = torch.randn(n, dim, generator=generator)
        for layer in ("final", "penultimate"):
            with torch.no_grad():
                channels = WeightTransferCAM(net, net.explain_layer(layer), _dummy_db(1, 2, 1))
                c = channels.forward_activations(x[:1])[0].shape[1]
            dense = torch.randn(n, c, generator=generator)
            db = GradWeightDatabase.build(
                keys, dense, top_m=min(50, c), signed=dense, normalize=key == "pooled"
            )
            for signed in (False, True):
                cam = WeightTransferCAM(model, net.explain_layer(layer), db, signed=signed)

                def forward() -> None:
                    with torch.no_grad():
                        net(x)

                # a small net: 3x the repeats so load on a shared machine averages out
                times = interleaved(
                    {"transfer": lambda cam=cam: cam.explain(x), "forward": forward},
                    3 * cfg.repeats,
                )
                result = paired(times, "transfer", "forward")
                rows.append(
                    {
                        "key": key,
                        "layer": layer,
                        "signed": signed,
                        "channels": c,
                        **result,
                        "goal": 1.15,
                        "met": result["ratio"] <= 1.15,
                    }
                )
    return rows


def _dummy_db(n: int, c: int, m: int) -> GradWeightDatabase:
    """A placeholder database (only to read a layer's channel count)."""
    return GradWeightDatabase.build(torch.zeros(n, 4), torch.zeros(n, c), top_m=m)


def bench_gradcam(cfg: BenchConfig, x: Tensor) -> dict[str, Any]:
    from pytorch_grad_cam import GradCAM as TheirGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = resnet(1000, seed=1)
    classes = list(range(x.shape[0]))
    ours = GradCAM(model, model.layer4)
    targets = [ClassifierOutputTarget(c) for c in classes]
    with TheirGradCAM(model, [model.layer4]) as theirs:
        times = interleaved(
            {"ours": lambda: ours.explain(x, classes), "grad_cam": lambda: theirs(x, targets)},
            cfg.repeats,
        )
    result = paired(times, "ours", "grad_cam")
    return {**result, "goal": 1.0, "met": result["ratio"] <= 1.0}


def bench_l2caf(cfg: BenchConfig) -> dict[str, Any]:
    model = resnet(cfg.db_dim, seed=2)
    steps = L2CAFConfig(max_iter=cfg.l2caf_iterations, eps=0.0)
    fast = L2CAF(model, model.layer4, head=resnet_head(model), config=steps)
    vanilla = L2CAF(model, model.layer4, fast=False, config=steps)
    generator = torch.Generator().manual_seed(3)
    size = cfg.image_size
    one = torch.randn(1, 3, size, size, generator=generator)
    batch = torch.randn(cfg.l2caf_batch, 3, size, size, generator=generator)
    repeats = max(1, cfg.repeats // 2)
    times = interleaved(
        {
            "fast": lambda: fast.explain(one),
            "vanilla": lambda: vanilla.explain(one),
            "batched": lambda: fast.explain(batch),
        },
        repeats,
    )
    result = paired(times, "vanilla", "fast")
    fast_s, speedup = result["fast_s"], result["ratio"]
    batched_s = statistics.median(times["batched"])
    return {
        "iterations": cfg.l2caf_iterations,
        "vanilla_per_image_s": result["vanilla_s"],
        "fast_per_image_s": fast_s,
        "speedup": speedup,
        "goal": 5.0,
        "met": speedup >= 5.0,
        "batched_fast": {
            "batch": cfg.l2caf_batch,
            "seconds": batched_s,
            "images_per_s": cfg.l2caf_batch / batched_s,
            "speedup_vs_one_at_a_time": cfg.l2caf_batch * fast_s / batched_s,
        },
    }


def clustered_embeddings(
    n: int, dim: int, n_clusters: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Unit vectors around ``n_clusters`` random centres (like class-structured embeddings)."""
    centres = F.normalize(torch.randn(n_clusters, dim, generator=generator), dim=1)
    assign = torch.randint(0, n_clusters, (n,), generator=generator)
    points = centres[assign] + 0.35 * torch.randn(n, dim, generator=generator) / dim**0.5
    return F.normalize(points, dim=1), centres


def bench_database(cfg: BenchConfig, size: int, index: str) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(size)
    data, centres = clustered_embeddings(size, cfg.db_dim, max(10, size // 1000), generator)
    queries = F.normalize(
        centres[torch.randint(0, len(centres), (cfg.queries,), generator=generator)]
        + 0.35 * torch.randn(cfg.queries, cfg.db_dim, generator=generator) / cfg.db_dim**0.5,
        dim=1,
    )
    channels = torch.randint(0, cfg.db_channels, (size, cfg.top_m), generator=generator)
    weights = torch.rand(size, cfg.top_m, generator=generator)
    database = GradWeightDatabase(data, channels, weights, cfg.db_channels)
    database.set_index(index)  # type: ignore[arg-type]
    start = time.perf_counter()
    backend = database.backend  # builds the index
    build_s = time.perf_counter() - start
    if index == "exact":  # a linear scan per query: fewer queries keep the 1M run short
        queries = queries[: max(1, len(queries) // 10)]
    batched_s = median_seconds(lambda: database.query(queries), max(1, cfg.repeats // 2))
    single = queries[:200]
    start = time.perf_counter()
    found = [int(database.query(single[i : i + 1]).indices[0]) for i in range(len(single))]
    single_s = (time.perf_counter() - start) / len(single)
    exact = torch.cdist(single, database.embeddings).argmin(dim=1)
    return {
        "entries": size,
        "index": index,
        "backend": backend,
        "build_s": build_s,
        "ms_per_query_single": 1000 * single_s,
        "ms_per_query_batched": 1000 * batched_s / len(queries),
        "recall_at_1": float((torch.tensor(found) == exact).float().mean()),
    }


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, path)


def house_markdown(rows: list[dict[str, Any]]) -> list[str]:
    mark = {True: "yes", False: "**no**"}
    lines = [
        "## House transfer (compact rank-siamese, 64-px tiles, batch 128, 1,200 entries)",
        "",
        "| search key | layer | map | channels | transfer ms | forward ms | ratio | goal | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.get('key', 'visual')} | {r['layer']} | "
        f"{'signed' if r['signed'] else 'unsigned top-50'} | {r['channels']} "
        f"| {r['transfer_s'] * 1000:.1f} | {r['forward_s'] * 1000:.1f} | {r['ratio']:.3f}x "
        f"| <= 1.15x | {mark[r['met']]} |"
        for r in rows
    ]
    return [*lines, ""]


def markdown(report: dict[str, Any]) -> str:
    t, g, l2, db = (
        report["transfer_vs_forward"],
        report["gradcam_vs_grad_cam"],
        report["l2caf"],
        report["database_query"],
    )
    c = report["config"]
    mark = {True: "yes", False: "**no**"}
    lines = [
        "# houseprice.explain speed",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}, torch {report['torch']}, {c['threads']} thread(s); "
        f"ResNet-18 (random weights), images {c['image_size']} px, batch {c['batch']}. "
        "Times are medians after a warm-up; a ratio is the median of per-round ratios of "
        "alternating runs in this one run.",
        "",
        "| measurement | value | goal | met |",
        "|---|---|---|---|",
        f"| weight transfer / plain forward (same batch) | {t['ratio']:.3f}x "
        f"({t['transfer_s'] * 1000:.1f} ms vs {t['forward_s'] * 1000:.1f} ms; query "
        f"{t['query_s'] * 1000:.1f} ms + map {t['render_s'] * 1000:.1f} ms) | <= 1.15x "
        f"| {mark[t['met']]} |",
        f"| our Grad-CAM / grad-cam GradCAM | {g['ratio']:.3f}x ({g['ours_s'] * 1000:.1f} ms "
        f"vs {g['grad_cam_s'] * 1000:.1f} ms) | <= 1.0x | {mark[g['met']]} |",
        f"| vanilla / fast L2-CAF per image ({l2['iterations']} iterations) | "
        f"{l2['speedup']:.1f}x ({l2['vanilla_per_image_s']:.2f} s vs "
        f"{l2['fast_per_image_s']:.3f} s) | >= 5x | {mark[l2['met']]} |",
        f"| batched fast L2-CAF, batch {l2['batched_fast']['batch']} | "
        f"{l2['batched_fast']['images_per_s']:.1f} images/s "
        f"({l2['batched_fast']['speedup_vs_one_at_a_time']:.1f}x one at a time) | | |",
        "",
        "## Database query (128-d, clustered synthetic embeddings)",
        "",
        "| entries | index | backend | build s | ms/query (single) | ms/query (batched) "
        "| recall@1 vs exact |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['entries']:,} | {r['index']} | {r['backend']} | {r['build_s']:.2f} | "
        f"{r['ms_per_query_single']:.3f} | {r['ms_per_query_batched']:.4f} | "
        f"{r['recall_at_1']:.3f} |"
        for r in db
    ]
    largest = report["database_goal"]
    lines += [
        "",
        f"Goal <= 1 ms per single query at {largest['entries']:,} entries: best "
        f"{largest['best_ms']:.3f} ms ({largest['index']}) - {mark[largest['met']]}.",
        "",
    ]
    if "house_transfer" in report:
        lines += house_markdown(report["house_transfer"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--threads", type=int, default=1, help="torch/faiss threads (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--house-only", action="store_true", help="only the house transfer part")
    args = parser.parse_args(argv)
    cfg = BenchConfig.quick(args.threads) if args.quick else BenchConfig(threads=args.threads)
    torch.set_num_threads(cfg.threads)
    if args.house_only:
        print("house transfer ...", flush=True)
        house = {
            "command": "python benchmarks/explain_speed.py --house-only"
            + (" --quick" if args.quick else ""),
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "torch": torch.__version__,
            "threads": cfg.threads,
            "house_transfer": bench_house_transfer(cfg),
        }
        text = "\n".join(
            [f"Command: `{house['command']}`", "", *house_markdown(house["house_transfer"])]
        )
        atomic_write(args.out / "explain_speed_house.json", json.dumps(house, indent=2) + "\n")
        atomic_write(args.out / "explain_speed_house.md", text)
        print(text)
        return 0
    try:
        import faiss

        faiss.omp_set_num_threads(cfg.threads)
        faiss_version = faiss.__version__
    except ImportError:
        faiss_version = None

    x = torch.randn(
        cfg.batch, 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(9)
    )
    print("weight transfer vs forward ...", flush=True)
    transfer = bench_transfer(cfg, x)
    print("Grad-CAM vs grad-cam ...", flush=True)
    gradcam = bench_gradcam(cfg, x)
    print("L2-CAF fast vs vanilla ...", flush=True)
    l2caf = bench_l2caf(cfg)
    rows = []
    for size in cfg.db_sizes:
        for index in ("exact", "ivf"):
            print(f"database {size:,} {index} ...", flush=True)
            rows.append(bench_database(cfg, size, index))
    print("house transfer ...", flush=True)
    house = bench_house_transfer(cfg)
    largest = [r for r in rows if r["entries"] == max(cfg.db_sizes)]
    best = min(largest, key=lambda r: r["ms_per_query_single"])
    report = {
        "command": "python benchmarks/explain_speed.py"
        + (" --quick" if args.quick else "")
        + (f" --threads {args.threads}" if args.threads != 1 else ""),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "torch": torch.__version__,
        "faiss": faiss_version,
        "config": asdict(cfg),
        "transfer_vs_forward": transfer,
        "gradcam_vs_grad_cam": gradcam,
        "l2caf": l2caf,
        "database_query": rows,
        "house_transfer": house,
        "database_goal": {
            "entries": best["entries"],
            "index": best["index"],
            "best_ms": best["ms_per_query_single"],
            "goal_ms": 1.0,
            "met": best["ms_per_query_single"] <= 1.0,
        },
    }
    out = args.out
    atomic_write(out / "explain_speed.json", json.dumps(report, indent=2) + "\n")
    atomic_write(out / "explain_speed.md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
