"""Ablation of the siamese training choices: visual-feature lift per attribute set and seed.

Run (each configuration × seed trains a standard-profile model, ~2.5 min on 2 cores):

    python benchmarks/siamese_ablation.py --data demo_out/city --seeds 0 1 \\
        --config "" --config "aux_weight=0" --config "pair_target=price aux_weight=0" \\
        --config "pooling=gap"

A configuration is space-separated ``key=value`` overrides of the standard profile:
``aux_weight``, ``pooling``, ``radial_prior_sigma`` (``none`` for flat), ``epochs``, ``lr``,
``tie_margin`` … (``SiameseConfig`` / ``SiameseTrainConfig`` fields) and ``pair_target``,
``n_folds`` (``TrainConfig``).
Appends one JSON line per run to benchmarks/results/siamese_ablation.jsonl and prints a table.
The numbers in docs/pricing.md were measured this way.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from houseprice.data.houses import load_dataset
from houseprice.valuation.config import TrainConfig, profile_config
from houseprice.valuation.evaluate import evaluate
from houseprice.valuation.model import HousePriceModel
from houseprice.vision.siamese import check_configs

RESULTS = Path(__file__).resolve().parent / "results"
TRAIN_KEYS = {"pair_target": str, "n_folds": int}


def configure(overrides: str, seed: int) -> TrainConfig:
    """The standard profile with ``key=value`` overrides applied."""
    cfg = profile_config("standard", seed=seed)
    for item in overrides.split():
        key, _, raw = item.partition("=")
        if key in TRAIN_KEYS:
            setattr(cfg, key, TRAIN_KEYS[key](raw))
            continue
        part = next((p for p in (cfg.siamese, cfg.siamese_training) if hasattr(p, key)), None)
        if part is None:
            raise SystemExit(f"unknown override {key!r} in {overrides!r}")
        cur = getattr(part, key)
        value: Any = None if raw == "none" else type(cur if cur is not None else 0.0)(raw)
        setattr(part, key, value)
        if key == "aux_weight":  # the auxiliary pair head exists iff it is trained
            cfg.siamese.aux_head = value > 0
    check_configs(cfg.siamese, cfg.siamese_training)
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True, help="synthetic city folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--config", action="append", default=None, help="overrides ('' = default)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.data)
    RESULTS.mkdir(exist_ok=True)
    for overrides in args.config or [""]:
        for seed in args.seeds:
            cfg = configure(overrides, seed)
            t0 = time.perf_counter()
            model = HousePriceModel.fit(ds, cfg, progress=True)
            report, _ = evaluate(model, ds, with_regressors=False)
            lifts = {k: v["lift"] for k, v in report["accuracy_within_10pct"].items()}
            row = {
                "config": overrides or "(default)",
                "seed": seed,
                "lift": lifts,
                "oracle_lift": report.get("oracle", {}).get("lift"),
                "seconds": time.perf_counter() - t0,
            }
            with open(RESULTS / "siamese_ablation.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            cells = " ".join(f"{k}:{100 * v:+.1f}" for k, v in lifts.items())
            print(f"{row['config']:<40} seed {seed}  {cells}  ({row['seconds']:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
