"""Benchmark: calibrated price ranges and the IAAO ratio study on test splits (demo city, Ames).

Run: python benchmarks/coverage.py [--profile standard] [--work DIR] [--datasets demo ames]

Two datasets, each scored once on its test split (the last 40% of sales by date; the ranges
are calibrated on the training rows only, :mod:`houseprice.valuation.calibration`):

- **demo**: the synthetic city of ``houseprice demo`` (city seed 0, the profile's size), a
  model trained with the profile (training seed 0): ranges with and without visual features;
- **ames**: the 2,930 real Ames sales (no imagery): the attributes-only model.

For each: empirical coverage of the 80% and 90% ranges overall and per sale-price quintile,
their mean relative width, the confidence-grade shares, and the overall / per-quintile IAAO
ratio study (median ratio, COD, PRD, PRB, MKI with 95% intervals). Goal (issue 27): coverage
within ±2 points of the level overall and ±5 per quintile. ``--work`` keeps the city, the
Ames folder and the model folders between runs (a model folder found there is reused; one
without calibration is calibrated with ``houseprice calibrate``'s job first).

Writes benchmarks/results/coverage.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = ("0.8", "0.9")


def _model(data: Path, folder: Path, profile: str) -> None:
    """Train ``folder`` from ``data`` unless it exists; calibrate it if it has no ranges."""
    from houseprice.jobs.model import calibrate_folder, train
    from houseprice.valuation.model import HousePriceModel

    if not folder.exists():
        train(data, folder, profile=profile, seed=0, progress=False)
    elif HousePriceModel.load(folder).calibration is None:
        calibrate_folder(folder, data)


def _score(data: Path, folder: Path) -> dict[str, Any]:
    from houseprice.data.houses import load_dataset
    from houseprice.valuation.evaluate import evaluate
    from houseprice.valuation.model import HousePriceModel

    report, _ = evaluate(
        HousePriceModel.load(folder), load_dataset(data, purpose="train"), with_regressors=False
    )
    rs = report["ratio_study"]
    return {
        "test_size": report["test_size"],
        "price_ranges": report["price_ranges"],
        "ratio_study": {"overall": rs["overall"], "price_quintile": rs["price_quintile"]},
    }


def _verdict(result: dict[str, Any]) -> dict[str, dict[str, bool]]:
    """Per level and model: overall coverage within ±2 points, every quintile within ±5."""
    out = {}
    for level in LEVELS:
        for model, c in result["price_ranges"]["levels"][level].items():
            lvl = float(level)
            out[f"{level} {model}"] = {
                "overall": bool(abs(c["coverage"] - lvl) <= 0.02),
                "quintiles": bool(all(abs(v - lvl) <= 0.05 for v in c["by_quintile"].values())),
            }
    return out


def run(profile: str, work: Path, datasets: tuple[str, ...] = ("demo", "ames")) -> dict[str, Any]:
    from houseprice.data.houses.ames import write_ames
    from houseprice.profiles import get_profile
    from houseprice.synth.city import generate_city

    t0 = time.perf_counter()
    city, ames = work / "city", work / "ames"
    if "demo" in datasets and not city.exists():
        generate_city(city, n_houses=get_profile(profile).city.houses, seed=0, progress=False)
    if "ames" in datasets and not ames.exists():
        write_ames(ames)
    out: dict[str, Any] = {"profile": profile, "datasets": {}}
    for name, data in (("demo", city), ("ames", ames)):
        if name not in datasets:
            continue
        folder = work / f"model_{name}_{profile}"
        _model(data, folder, profile)
        out["datasets"][name] = _score(data, folder)
        out["datasets"][name]["meets_goal"] = _verdict(out["datasets"][name])
    out["seconds"] = time.perf_counter() - t0
    out["machine"] = f"{platform.machine()}, {platform.processor() or 'cpu'}; shared 2-core host"
    return out


def markdown(res: dict[str, Any]) -> str:
    from houseprice.valuation.assessment_report import coverage_markdown, figure_text

    lines = [
        f"# Price ranges and ratio study on test splits (profile {res['profile']})",
        "",
        "Written by `python benchmarks/coverage.py`. Goal: coverage within ±2 points of the "
        "level overall and ±5 per sale-price quintile.",
    ]
    for name, d in res["datasets"].items():
        o = d["ratio_study"]["overall"]
        stats = "; ".join(
            f"{k} {figure_text(k, o[k])}" for k in ("median_ratio", "cod", "prd", "prb", "mki")
        )
        goal = "; ".join(
            f"{k}: overall {'met' if v['overall'] else 'not met'}, quintiles "
            f"{'met' if v['quintiles'] else 'not met'}"
            for k, v in d["meets_goal"].items()
        )
        lines += [
            "",
            f"## {name} ({d['test_size']} test sales)",
            "",
            coverage_markdown(d["price_ranges"]).split("\n", 2)[2],
            "",
            f"Goal: {goal}.",
            "",
            f"Ratio study ({o['n_used']} sales, {o['n_trimmed']} trimmed): {stats}.",
        ]
    lines.append(f"\nWall time {res['seconds']:.0f} s ({res['machine']}).")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--work", type=Path, default=None, help="keep data and models here")
    ap.add_argument("--datasets", nargs="+", choices=("demo", "ames"), default=["demo", "ames"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="houseprice-coverage-") as tmp:
        res = run(args.profile, args.work or Path(tmp), tuple(args.datasets))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "coverage.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "coverage.md").write_text(markdown(res), encoding="utf-8")
    print(markdown(res))


if __name__ == "__main__":
    main()
