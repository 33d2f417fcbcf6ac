"""The demo job: generate the synthetic city, train, evaluate, explain on a map."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from houseprice.artifacts import check_output_folder, tree_files, write_manifest
from houseprice.errors import UserInputError
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
    """Generate the synthetic city, train, evaluate, explain on a map.

    ``out`` must be new, empty, or a previous demo's output that nothing was added to or
    changed in (its ``manifest.json`` lists every file); anything else is refused, never
    deleted. With ``overwrite=False`` even a previous demo's output is refused.
    """
    from houseprice.synth.city import generate_city

    spec = get_profile(profile)
    if n_houses is not None and n_houses < 1:
        raise UserInputError(f"--houses must be at least 1, got {n_houses}")
    out = Path(os.path.abspath(out))
    check_output_folder(out, overwrite=overwrite)
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)  # houseprice's own previous demo, checked just above
    out.mkdir(parents=True, exist_ok=True)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    data = out / "city"
    generate_city(
        data,
        n_houses=spec.city.houses if n_houses is None else n_houses,
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
    write_manifest(out, kind="houseprice-demo", version=1, files=tree_files(out))
    return DemoResult(
        out=out,
        dataset=data,
        model=model_dir,
        report_dir=out / "report",
        report=report,
        map_html=res.map_html,
        seconds=t,
    )
