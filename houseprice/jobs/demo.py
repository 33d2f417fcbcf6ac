"""The demo job: generate the synthetic city, train, evaluate, explain on a map."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from houseprice.jobs.explain import explain_table
from houseprice.jobs.model import evaluate_folder, train
from houseprice.profiles import get_profile


@dataclass
class DemoResult:
    out: Path
    dataset: Path
    model: Path
    report_dir: Path
    report: dict[str, Any]
    map_html: Path | None
    seconds: dict[str, float]


def run_demo(
    out: str | Path,
    *,
    profile: str = "standard",
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = True,
    n_houses: int | None = None,
) -> DemoResult:
    """Generate the synthetic city, train, evaluate, explain on a map."""
    from houseprice.synth.city import generate_city

    spec = get_profile(profile)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    data = out / "city"
    generate_city(
        data,
        n_houses=n_houses or spec.city.houses,
        seed=seed,
        progress=progress,
        overwrite=overwrite,
    )
    t["generate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model_dir, _ = train(
        data,
        out / "model",
        profile=profile,
        seed=seed,
        device=device,
        overwrite=overwrite,
        progress=progress,
    )
    t["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = evaluate_folder(
        model_dir,
        data,
        out / "report",
        device=device,
        progress=progress,
        with_regressors=spec.train.with_regressors,
    )
    t["evaluate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = explain_table(
        model_dir,
        data / "houses.csv",
        out / "explain",
        map_html=out / "map.html",
        device=device,
        progress=progress,
        test_only=True,
    )
    t["explain"] = time.perf_counter() - t0
    return DemoResult(
        out=out,
        dataset=data,
        model=model_dir,
        report_dir=out / "report",
        report=report,
        map_html=res.map_html,
        seconds=t,
    )
