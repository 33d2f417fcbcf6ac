"""The pricing benchmark: visual-feature lift over fresh cities × training seeds, sealed.

Each run generates a synthetic city from a *sealed* generator seed (never used while
developing houseprice: :data:`SEALED_CITY_SEEDS`, chosen once on 2026-12-01 before any run),
trains the profile's model with a training seed, and scores Chen Table 2 once on the city's
test split (the validation split's lifts are recorded too, for reference). The report gives,
per attribute set, the mean lift with its standard deviation and a 95% t-interval over all
runs, and the share of the oracle lift (mean lift / mean oracle lift). Ames (real, no tiles)
is scored per LightGBM seed for the attribute-only accuracy.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Generator seeds of the sealed cities (written down once; never tune on them).
SEALED_CITY_SEEDS: tuple[int, ...] = (52_101, 52_102, 52_103, 52_104, 52_105)
TRAINING_SEEDS: tuple[int, ...] = (0, 1, 2)


def interval(values: list[float]) -> dict[str, Any]:
    """Mean, sample std and a two-sided 95% Student-t interval of ``values``."""
    from scipy import stats

    a = np.asarray(values, dtype=np.float64)
    n = len(a)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
    ci = [mean - half, mean + half] if n > 1 else None
    return {"n": n, "mean": mean, "std": std, "ci95": ci, "values": a.tolist()}


def run_city(
    city_seed: int, train_seed: int, *, profile: str, houses: int, work: Path
) -> dict[str, Any]:
    """One run: generate the city, train the profile's model, score test and validation."""
    from houseprice.data.houses import load_dataset
    from houseprice.synth.city import generate_city
    from houseprice.valuation.config import profile_config
    from houseprice.valuation.evaluate import evaluate
    from houseprice.valuation.model import HousePriceModel

    folder = work / f"city_{city_seed}"
    if not folder.exists():
        generate_city(folder, n_houses=houses, seed=city_seed, progress=False)
    ds = load_dataset(folder, purpose="train")
    t0 = time.perf_counter()
    model = HousePriceModel.fit(ds, profile_config(profile, seed=train_seed), progress=False)
    test, _ = evaluate(model, ds, with_regressors=False, split="test")
    val, _ = evaluate(model, ds, with_regressors=False, split="validation")
    return {
        "city_seed": city_seed,
        "train_seed": train_seed,
        "seconds": time.perf_counter() - t0,
        "test": _lifts(test),
        "validation": _lifts(val),
        # the IAAO ratio study of the test split and the price ranges' coverage (issue 27)
        "ratio_study": test["ratio_study"]["overall"],
        "price_ranges": test.get("price_ranges", {}).get("levels"),
    }


def _lifts(report: dict[str, Any]) -> dict[str, Any]:
    table = report["accuracy_within_10pct"]
    return {
        "without_visual": {k: v["without_visual"] for k, v in table.items()},
        "with_visual": {k: v["with_visual"] for k, v in table.items()},
        "lift": {k: v["lift"] for k, v in table.items()},
        "oracle_lift": report.get("oracle", {}).get("lift"),
        "size": report["test_size"],
    }


def ames_runs(seeds: tuple[int, ...]) -> dict[str, Any]:
    """Attribute-only 10% accuracy on Ames per attribute set, one LightGBM seed per run."""
    from houseprice.data.houses.ames import AmesSource
    from houseprice.pricing.attributes import TABLE2_SETS, attribute_frame, set_name, time_split
    from houseprice.pricing.metrics import within_pct_accuracy
    from houseprice.valuation.config import TrainConfig

    rec = AmesSource().load(purpose="train").records
    tr, te = time_split(rec)
    y = rec["price"].to_numpy(np.float64)
    out: dict[str, list[float]] = {}
    for letters in TABLE2_SETS[1:]:
        x = attribute_frame(rec, letters)
        for seed in seeds:
            reg = TrainConfig(seed=seed).build_regressor().fit(x.iloc[tr], y[tr])
            acc = within_pct_accuracy(y[te], reg.predict(x.iloc[te]))
            out.setdefault(set_name(letters), []).append(acc)
    return {"test_size": len(te), "accuracy": {k: interval(v) for k, v in out.items()}}


def _journal_runs(path: Path, profile: str, houses: int) -> dict[tuple[int, int], dict[str, Any]]:
    import json

    if not path.is_file():
        return {}
    runs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {
        (r["city_seed"], r["train_seed"]): r
        for r in runs
        if r.get("profile") == profile and r.get("houses") == houses
    }


def _append_journal(path: Path, run: dict[str, Any]) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(run) + "\n")
        fh.flush()


def summarise(runs: list[dict[str, Any]], split: str = "test") -> dict[str, Any]:
    """Per attribute set: lift statistics over runs and the share of the oracle lift."""
    sets = list(runs[0][split]["lift"])
    oracle = [r[split]["oracle_lift"] for r in runs]
    summary: dict[str, Any] = {"oracle_lift": interval(oracle), "sets": {}}
    for name in sets:
        lifts = [r[split]["lift"][name] for r in runs]
        s = interval(lifts)
        s["share_of_oracle"] = s["mean"] / float(np.mean(oracle)) if np.mean(oracle) > 0 else None
        s["without_visual"] = interval([r[split]["without_visual"][name] for r in runs])
        summary["sets"][name] = s
    return summary


def run_pricing_benchmark(
    *,
    profile: str = "standard",
    cities: int = len(SEALED_CITY_SEEDS),
    seeds: int = len(TRAINING_SEEDS),
    houses: int | None = None,
    with_ames: bool = True,
    progress: bool = True,
    journal: Path | None = None,
) -> dict[str, Any]:
    """Every (sealed city × training seed) run, the summaries and Ames; a report dict.

    ``journal`` (a JSON-lines file) records each finished run as it completes; runs already
    in it (same profile and city size) are not repeated, so an interrupted benchmark resumes.
    """
    from tqdm.auto import tqdm

    from houseprice.errors import UserInputError
    from houseprice.profiles import get_profile

    spec = get_profile(profile)
    if not 1 <= cities <= len(SEALED_CITY_SEEDS) or not 1 <= seeds <= len(TRAINING_SEEDS):
        raise UserInputError(
            f"--cities must be 1..{len(SEALED_CITY_SEEDS)} and --seeds 1..{len(TRAINING_SEEDS)}"
        )
    n = houses or spec.city.houses
    pairs = [(c, s) for c in SEALED_CITY_SEEDS[:cities] for s in TRAINING_SEEDS[:seeds]]
    t0 = time.perf_counter()
    done = _journal_runs(journal, profile, n) if journal is not None else {}
    runs = []
    with tempfile.TemporaryDirectory(prefix="houseprice-bench-pricing-") as tmp:
        for c, s in tqdm(pairs, desc="city x seed", disable=not progress):
            run = done.get((c, s)) or run_city(c, s, profile=profile, houses=n, work=Path(tmp))
            if journal is not None and (c, s) not in done:
                _append_journal(journal, {**run, "profile": profile, "houses": n})
            runs.append(run)
    report: dict[str, Any] = {
        "profile": spec.name,
        "houses_per_city": n,
        "city_seeds": list(SEALED_CITY_SEEDS[:cities]),
        "training_seeds": list(TRAINING_SEEDS[:seeds]),
        "runs": runs,
        "test": summarise(runs, "test"),
        "validation": summarise(runs, "validation"),
    }
    if with_ames:
        report["ames"] = ames_runs(TRAINING_SEEDS[:seeds])
    report["seconds"] = time.perf_counter() - t0
    return report
