"""The validation harness for visual-feature recipes: development cities, the test path.

Why: the sealed benchmark scores test rows with the mean of the fold nets projected onto net
0 (``VisualFeaturizer.transform``), while ``evaluate(split="validation")`` scores validation
rows with single out-of-fold nets; a harness that does not follow the test path cannot choose
a recipe. Here each run takes a *development* city (:data:`DEV_CITY_SEEDS`, never the sealed
seeds of ``houseprice.bench.pricing``), keeps only its training period (the first 60% by sale
date: the city's test rows are dropped before anything is fitted), fits the whole
``HousePriceModel`` on the first 75% of that period and scores the last 25% with
``houseprice.valuation.evaluate.evaluate(split="test")``: exactly the code that scores a
sealed city's test rows, only on rows that lie before that city's test period.

Per run it records (G,Bed,Bath,T,A unless noted):
- the 10% accuracy lift of every Table-2 attribute set, and the oracle's lift (the generator's
  hidden drivers instead of visual features);
- log-RMSE without / with visual features / with the oracle's drivers, hence the share of the
  oracle's log-RMSE gain the visual features reach (smoother than accuracy on 300 houses);
- per driver (``effect_*`` and the total ``visual_log_premium`` of the generator's truth): the
  share of its variance *beyond the attributes* that the visual features explain, on the
  scored rows (LightGBM of the effect on attributes, with and without the features, fitted on
  the fitting rows). The generator's truth is used for scoring only.
- training seconds (siamese + regressors) and predict-path seconds for the scored rows.

``--config ceiling`` is the diagnostic ceiling: the same architecture and training, but the
main pair head ranks the generator's *true* visual premium of the training houses (no
auxiliary head). It is never part of the product and never written to a model folder; it says
how much of the oracle this net could carry from the tiles at best.

Run (criterion and candidates: docs/pricing.md, "Choosing a recipe on the harness"):

    python benchmarks/visual_harness.py --cities 101 102 103 --seeds 0 1 \\
        --config "" --config "aux_dim=4 test_time_dihedral=true" --config ceiling

Appends one JSON line per run to ``benchmarks/results/visual_harness.jsonl`` (committed raw
results; ``python benchmarks/visual_harness.py --render`` prints the docs table from it).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from houseprice.bench.pricing import SEALED_CITY_SEEDS
from houseprice.data.houses import Dataset, load_dataset
from houseprice.pricing.attributes import (
    FULL_SET,
    attribute_frame,
    set_name,
    time_split,
    with_visual,
)
from houseprice.synth.city import generate_city
from houseprice.valuation import model as model_module
from houseprice.valuation.config import TrainConfig, profile_config
from houseprice.valuation.evaluate import evaluate, read_truth, split_features
from houseprice.valuation.model import HousePriceModel
from houseprice.vision.siamese import check_configs

RESULTS = Path(__file__).resolve().parent / "results"
JOURNAL = RESULTS / "visual_harness.jsonl"
#: Generator seeds of the development cities (never the sealed benchmark seeds).
DEV_CITY_SEEDS = (101, 102, 103)
#: The harness's fitting share of each city's training period (the rest is scored).
FIT_FRACTION = 0.75
TRAIN_KEYS = {"pair_target": str, "n_folds": int, "weights": str}
DRIVERS = (
    "effect_pool",
    "effect_lot",
    "effect_trees",
    "effect_water",
    "effect_park",
    "effect_highway",
    "visual_log_premium",
)


def _parse(raw: str, cur: Any) -> Any:
    if raw == "none":
        return None
    if isinstance(cur, bool):
        return raw.lower() in ("1", "true", "yes")
    return type(cur if cur is not None else 0.0)(raw)


def configure(overrides: str, seed: int, profile: str = "standard") -> TrainConfig:
    """The profile's config with space-separated ``key=value`` overrides applied.

    Keys: ``SiameseConfig`` / ``SiameseTrainConfig`` / ``BackboneConfig`` fields (``backbone``
    = its name), ``pair_target``, ``n_folds``, ``weights`` (``TrainConfig``)."""
    from houseprice.vision.backbones import BackboneConfig

    cfg = profile_config(profile, seed=seed)
    for item in overrides.split():
        key, _, raw = item.partition("=")
        if key in TRAIN_KEYS:
            setattr(cfg, key, TRAIN_KEYS[key](raw))
            continue
        if key == "backbone":
            cfg.siamese.backbone = BackboneConfig(name=raw)
            continue
        parts = (cfg.siamese, cfg.siamese_training, cfg.siamese.backbone)
        part = next((p for p in parts if hasattr(p, key)), None)
        if part is None:
            raise SystemExit(f"unknown override {key!r} in {overrides!r}")
        value = _parse(raw, getattr(part, key))
        setattr(part, key, value)
        if key == "aux_weight":  # the auxiliary pair head exists iff it is trained
            cfg.siamese.aux_head = value > 0
            if not cfg.siamese.aux_head:
                cfg.siamese.aux_dim = 0
    check_configs(cfg.siamese, cfg.siamese_training)
    cfg.siamese.__post_init__()
    return cfg


def dev_city(seed: int, work: Path, houses: int) -> Path:
    """The development city of ``seed`` (generated once into ``work``)."""
    if seed in SEALED_CITY_SEEDS:
        raise SystemExit(f"city seed {seed} is sealed (houseprice.bench.pricing); pick another")
    folder = work / f"dev_city_{seed}_{houses}"
    if not folder.exists():
        generate_city(folder, n_houses=houses, seed=seed, progress=False)
    return folder


def training_period(ds: Dataset) -> Dataset:
    """The city restricted to its own training rows (its test rows are dropped unread)."""
    tr, _ = time_split(ds.records, 0.6)
    return ds.subset(ds.records.iloc[tr].reset_index(drop=True))


def _premium_targets(truth: pd.DataFrame, ids: np.ndarray) -> Callable[..., np.ndarray]:
    """For the ceiling: rank the generator's true visual premium instead of the residual.

    ``ids`` are the dataset's house ids by row position (the fit's frames keep that index)."""
    premium = truth.set_index("house_id")["visual_log_premium"]

    def targets(x: pd.DataFrame, log_price: np.ndarray, cfg: TrainConfig) -> np.ndarray:
        return premium.reindex(ids[x.index.to_numpy()]).to_numpy(dtype=np.float64)

    return targets


def fit_model(ds: Dataset, cfg: TrainConfig, ceiling: bool) -> HousePriceModel:
    """``HousePriceModel.fit``; for the ceiling its pair targets are the true premium."""
    if not ceiling:
        return HousePriceModel.fit(ds, cfg, progress=False)
    truth = read_truth(ds)
    assert truth is not None, "the ceiling needs the generator's truth"
    ids = ds.records["house_id"].astype(str).to_numpy()
    original = model_module._residual_targets
    model_module._residual_targets = _premium_targets(truth, ids)
    try:
        return HousePriceModel.fit(ds, cfg, progress=False)
    finally:
        model_module._residual_targets = original


def _fit_predict(cfg: TrainConfig, x: pd.DataFrame, y: np.ndarray, fit: np.ndarray,
                 score: np.ndarray) -> np.ndarray:  # fmt: skip
    return cfg.build_regressor().fit(x.iloc[fit], y[fit]).predict(x.iloc[score])


def diagnostics(model: HousePriceModel, ds: Dataset) -> dict[str, Any]:
    """:func:`scores` of the model's own features on the test path (``split_features``)."""
    fit, score, feats = split_features(model, ds, split="test")
    return scores(model.config, ds, fit, score, feats)


def scores(
    cfg: TrainConfig, ds: Dataset, fit: np.ndarray, score: np.ndarray, feats: np.ndarray
) -> dict[str, Any]:
    """10% accuracy and log-RMSE without / with the features / with the oracle's drivers, and
    the per-driver explained shares (the generator's truth is read for scoring only)."""
    from houseprice.pricing.metrics import within_pct_accuracy

    rec = ds.records
    y = rec["price"].to_numpy(np.float64)
    x = attribute_frame(rec, FULL_SET)
    xv = with_visual(x, feats)
    truth = read_truth(ds)
    assert truth is not None
    drivers = rec[["house_id"]].merge(truth, on="house_id", how="left")
    cols = list(ds.meta["truth"]["oracle_columns"])
    xo = pd.concat([x, drivers[cols].set_index(x.index).astype("float64")], axis=1)
    rmse, acc = {}, {}
    for name, frame in (("without", x), ("with", xv), ("oracle", xo)):
        pred = _fit_predict(cfg, frame, y, fit, score)
        rmse[name] = float(np.sqrt(np.mean((np.log(pred) - np.log(y[score])) ** 2)))
        acc[name] = within_pct_accuracy(y[score], pred)
    explained = {}
    for d in DRIVERS:
        e = drivers[d].to_numpy(np.float64)
        e_pos = np.exp(e)  # PriceRegressor models log(target): feed exp(effect), take logs
        base = np.log(_fit_predict(cfg, x, e_pos, fit, score))
        full = np.log(_fit_predict(cfg, xv, e_pos, fit, score))
        sse_base = float(np.sum((e[score] - base) ** 2))
        sse_full = float(np.sum((e[score] - full) ** 2))
        total = float(np.sum((e[score] - e[score].mean()) ** 2))
        explained[d] = {
            "beyond_attributes": 1.0 - sse_full / sse_base if sse_base > 0 else None,
            "attributes_r2": 1.0 - sse_base / total if total > 0 else None,
        }
    gain = rmse["without"] - rmse["oracle"]
    return {
        "log_rmse": rmse,
        "accuracy": acc,
        "rmse_share_of_oracle": (rmse["without"] - rmse["with"]) / gain if gain > 0 else None,
        "explained": explained,
    }


def run_reference(city: int, seed: int, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """A reference row (``mosaiks`` / ``efficientnet`` + cross-fitted ridge; not the product)."""
    import reference_features as ref

    cfg = configure("", seed, args.profile)
    cfg.train_fraction = FIT_FRACTION
    ds = training_period(load_dataset(dev_city(city, args.work, args.houses)))
    rec = ds.records
    fit, score = time_split(rec, FIT_FRACTION)
    t0 = time.perf_counter()
    assert ds.tiles is not None
    pixels = ds.tiles.read(rec, cfg.siamese.image_size).pixels
    raw = ref.mosaiks(pixels, fit, seed=seed) if kind == "mosaiks" else ref.efficientnet(pixels)
    log_y = np.log(rec["price"].to_numpy(np.float64))
    x_fit = attribute_frame(rec.iloc[fit], cfg.attributes)
    resid = model_module._residual_targets(x_fit, log_y[fit], cfg)
    feats = ref.cross_fitted_ridge(raw, resid, fit, seed=seed)[:, None].astype(np.float32)
    train_s = time.perf_counter() - t0
    sc = scores(cfg, ds, fit, score, feats)
    return {
        "config": f"reference: {kind} + ridge",
        "scored": len(score),
        "lift": {set_name(FULL_SET): sc["accuracy"]["with"] - sc["accuracy"]["without"]},
        "oracle_lift": sc["accuracy"]["oracle"] - sc["accuracy"]["without"],
        **sc,
        "train_seconds": train_s,
        "predict_seconds": None,
    }


def predict_seconds(model: HousePriceModel, ds: Dataset) -> float:
    """Wall seconds of ``predict_frame`` over the scored rows (features + regressor)."""
    _, score = time_split(ds.records, model.config.train_fraction)
    rows = ds.records.iloc[score]
    t0 = time.perf_counter()
    model.predict_frame(rows, ds.tiles)
    return time.perf_counter() - t0


def run(city: int, seed: int, overrides: str, args: argparse.Namespace) -> dict[str, Any]:
    if overrides.startswith("reference:"):
        row = run_reference(city, seed, overrides.split(":", 1)[1].strip(), args)
        return {**_run_keys(city, seed, args), **row}
    ceiling = overrides.strip() == "ceiling"
    cfg = configure("aux_weight=0" if ceiling else overrides, seed, args.profile)
    cfg.train_fraction = FIT_FRACTION
    ds = training_period(load_dataset(dev_city(city, args.work, args.houses)))
    t0 = time.perf_counter()
    model = fit_model(ds, cfg, ceiling)
    train_s = time.perf_counter() - t0
    report, _ = evaluate(model, ds, with_regressors=False, split="test")
    acc = report["accuracy_within_10pct"]
    diag = diagnostics(model, ds)
    return {
        **_run_keys(city, seed, args),
        "config": overrides or "(default)",
        "scored": report["test_size"],
        "lift": {k: v["lift"] for k, v in acc.items()},
        "without": {k: v["without_visual"] for k, v in acc.items()},
        "oracle_lift": report.get("oracle", {}).get("lift"),
        **diag,
        "train_seconds": train_s,
        "predict_seconds": predict_seconds(model, ds),
    }


def _run_keys(city: int, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "profile": args.profile,
        "harness": "dev-test-path-v1",
        "city_seed": city,
        "houses": args.houses,
        "seed": seed,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cities", type=int, nargs="+", default=list(DEV_CITY_SEEDS))
    ap.add_argument("--houses", type=int, default=2000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hp-dev"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--config", action="append", default=None, help="overrides ('' = default)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--journal", type=Path, default=JOURNAL)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.journal.parent.mkdir(parents=True, exist_ok=True)
    main_set = set_name(FULL_SET)
    for overrides in args.config or [""]:
        for city in args.cities:
            for seed in args.seeds:
                row = run(city, seed, overrides, args)
                with open(args.journal, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                share = row["rmse_share_of_oracle"]
                print(
                    f"{row['config']:<36} city {city} seed {seed}  "
                    f"lift {100 * row['lift'][main_set]:+.1f} "
                    f"oracle {100 * (row['oracle_lift'] or 0):+.1f}  rmse-share "
                    f"{share if share is None else round(share, 3)}  premium explained "
                    f"{row['explained']['visual_log_premium']['beyond_attributes']:.3f}  "
                    f"train {row['train_seconds']:.0f}s predict {row['predict_seconds'] or 0:.1f}s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
