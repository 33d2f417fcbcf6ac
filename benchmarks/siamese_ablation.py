"""Ablation of the siamese training choices: visual-feature lift on the VALIDATION split.

Each configuration × development city × training seed trains a standard-profile model (~4 min
on 2 cores) and scores Table 2 on the validation split only (the last 25% by date of the
training rows, ``houseprice.valuation.evaluate.validation_split``): the test rows are never
read, and the development cities are generated from :data:`DEV_CITY_SEEDS`, disjoint from the
sealed benchmark seeds (``houseprice.bench.pricing.SEALED_CITY_SEEDS``). Run:

    python benchmarks/siamese_ablation.py --cities 101 102 --seeds 0 \\
        --config "" --config "local_fraction=0.5" --config "feature_dim=8"

A configuration is space-separated ``key=value`` overrides of the standard profile:
``aux_weight``, ``pooling``, ``radial_prior_sigma`` (``none`` for flat), ``epochs``, ``lr``,
``tie_margin`` … (``SiameseConfig`` / ``SiameseTrainConfig`` fields) and ``pair_target``,
``n_folds`` (``TrainConfig``).
Appends one JSON line per run to benchmarks/results/siamese_ablation.jsonl (committed: the raw
results behind every choice made with it) and prints a line per run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from visual_harness import DEV_CITY_SEEDS, configure, dev_city  # the same cities and overrides

from houseprice.data.houses import load_dataset
from houseprice.valuation.evaluate import evaluate
from houseprice.valuation.model import HousePriceModel

RESULTS = Path(__file__).resolve().parent / "results"


def log_rmse_gain(model: HousePriceModel, ds: Any) -> dict[str, float]:
    """Validation RMSE of log price for the full attribute set without / with visual features
    (and with the generator's drivers): a smooth criterion next to the noisy 10% accuracy."""
    from houseprice.pricing.attributes import FULL_SET, attribute_frame, with_visual
    from houseprice.valuation.evaluate import read_truth, split_features

    core, val, feats = split_features(model, ds, split="validation")
    rec = ds.records
    y = np.log(rec["price"].to_numpy(np.float64))
    x = attribute_frame(rec, FULL_SET)
    truth = read_truth(ds)
    drivers = rec[["house_id"]].merge(truth, on="house_id", how="left")
    cols = list(ds.meta["truth"]["oracle_columns"])  # the oracle row of Table 2
    frames = {
        "without": x,
        "with": with_visual(x, feats),
        "oracle": pd.concat([x, drivers[cols].set_index(x.index).astype("float64")], axis=1),
    }
    out = {}
    for name, xf in frames.items():
        pred = model.config.build_regressor().fit(xf.iloc[core], y[core]).predict(xf.iloc[val])
        out[name] = float(np.sqrt(np.mean((pred - y[val]) ** 2)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cities", type=int, nargs="+", default=list(DEV_CITY_SEEDS[:2]))
    ap.add_argument("--houses", type=int, default=2000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/houseprice-ablation"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--config", action="append", default=None, help="overrides ('' = default)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    for overrides in args.config or [""]:
        for city in args.cities:
            ds = load_dataset(dev_city(city, args.work, args.houses))
            for seed in args.seeds:
                cfg = configure(overrides, seed)
                t0 = time.perf_counter()
                model = HousePriceModel.fit(ds, cfg, progress=False)
                report, _ = evaluate(model, ds, with_regressors=False, split="validation")
                acc = report["accuracy_within_10pct"]
                rmse = log_rmse_gain(model, ds)
                row = {
                    "config": overrides or "(default)",
                    "split": "validation",
                    "city_seed": city,
                    "houses": args.houses,
                    "seed": seed,
                    "lift": {k: v["lift"] for k, v in acc.items()},
                    "without": {k: v["without_visual"] for k, v in acc.items()},
                    "oracle_lift": report.get("oracle", {}).get("lift"),
                    "log_rmse": rmse,
                    "seconds": time.perf_counter() - t0,
                }
                with open(RESULTS / "siamese_ablation.jsonl", "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                cells = " ".join(f"{k}:{100 * v:+.1f}" for k, v in row["lift"].items())
                print(
                    f"{row['config']:<28} city {city} seed {seed}  {cells}  "
                    f"oracle {100 * (row['oracle_lift'] or 0):+.1f}  log-RMSE "
                    f"{rmse['without']:.4f}->{rmse['with']:.4f} (oracle {rmse['oracle']:.4f}) "
                    f"({row['seconds']:.0f}s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
