"""Benchmark: prediction throughput with visual features on CPU (target ≥ 200 houses/s).

Run: python benchmarks/predict_throughput.py [--houses 600] [--repeat 3] [--profile standard]
Generates a synthetic city, trains a model with the profile's architecture (K cross-fitted
siamese nets, radial gate, LightGBM; one epoch each, since weights do not change speed), then times
``HousePriceModel.predict_frame`` over every house (tiles read from disk, K aligned siamese
nets, LightGBM) and the pieces separately. Writes benchmarks/results/predict_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from houseprice.artifacts import atomic_write_json, atomic_write_text
from houseprice.data.houses import load_dataset
from houseprice.synth.city import generate_city
from houseprice.valuation.config import profile_config
from houseprice.valuation.model import HousePriceModel

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--houses", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", choices=["quick", "standard"], default="standard")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_city(Path(tmp) / "city", n_houses=args.houses, seed=0, progress=False)
        ds = load_dataset(data, purpose="train")
        cfg = profile_config(args.profile)
        cfg.siamese_training.epochs = 1  # speed depends on the architecture, not on the weights
        model = HousePriceModel.fit(ds, cfg, progress=False)
        rec = ds.records
        n = len(rec)
        best = {"end_to_end": 1e9, "tile_read": 1e9, "features": 1e9}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = model.predict_frame(rec, ds.tiles)
            best["end_to_end"] = min(best["end_to_end"], time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert ds.tiles is not None
            tiles = ds.tiles.read(rec, cfg.siamese.image_size, warn=False)
            best["tile_read"] = min(best["tile_read"], time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert model.featurizer is not None
            model.featurizer.transform(tiles.pixels)
            best["features"] = min(best["features"], time.perf_counter() - t0)
        assert out["used_visual"].all()
    result = {
        "houses": n,
        "threads": args.threads,
        "profile": args.profile,
        "n_siamese_nets": len(model.featurizer.models_),
        "tile_px": cfg.siamese.image_size,
        "houses_per_second": {k: n / v for k, v in best.items()},
        "seconds": best,
        "target_houses_per_second": 200,
        "machine": f"{platform.machine()} {platform.processor()} torch {torch.__version__}",
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "predict_throughput.json", result)
    hps = result["houses_per_second"]
    md = (
        "# Prediction throughput (CPU)\n\n"
        f"`python benchmarks/predict_throughput.py --houses {args.houses} "
        f"--profile {args.profile}` — {n} houses, {args.threads} threads, "
        f"{args.profile}-profile architecture, {result['n_siamese_nets']} aligned siamese nets, "
        f"{cfg.siamese.image_size}-px tiles; best of {args.repeat}.\n\n"
        "| stage | houses/s |\n|---|---:|\n"
        f"| end to end (read tiles + features + LightGBM) | {hps['end_to_end']:.0f} |\n"
        f"| tile reading only | {hps['tile_read']:.0f} |\n"
        f"| visual features only | {hps['features']:.0f} |\n\n"
        f"Target ≥ 200 houses/s end to end: "
        f"{'met' if hps['end_to_end'] >= 200 else 'NOT met'}.\n"
    )
    atomic_write_text(RESULTS / "predict_throughput.md", md)
    print(md)


if __name__ == "__main__":
    main()
