"""The benchmark jobs: the explainer localisation benchmark on CUB-layout data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from houseprice.errors import UserInputError


def bench_explainers(
    *,
    out: str | Path,
    data: str | Path | None = None,
    cub: str | Path | None = None,
    model_dir: str | Path | None = None,
    profile: str = "standard",
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    retrain_runs: int | None = None,
) -> dict[str, Any]:
    """Run every registered explainer on synthetic birds (``data``) or CUB-200-2011 (``cub``).

    ``retrain_runs`` > 1 retrains that many embedding nets (seeds seed, seed+1, ...) for the
    spread across nets that Bachhawat reports (None: the profile's).
    """
    from houseprice.bench.runner import run_benchmark

    if (data is None) == (cub is None):
        raise UserInputError("pass exactly one of --data (synthetic birds) or --cub (CUB-200-2011)")
    return run_benchmark(
        data=None if data is None else Path(data),
        cub=None if cub is None else Path(cub),
        out=Path(out),
        profile=profile,
        seed=seed,
        device=device,
        progress=progress,
        model_dir=None if model_dir is None else Path(model_dir),
        retrain_runs=retrain_runs,
    )


def bench_pricing(
    *,
    out: str | Path,
    profile: str = "standard",
    cities: int | None = None,
    seeds: int | None = None,
    houses: int | None = None,
    with_ames: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """The pricing benchmark (sealed cities × training seeds); writes report.json/.md/plot."""
    from houseprice.artifacts import (
        atomic_directory,
        atomic_write_bytes,
        atomic_write_json,
        atomic_write_text,
        check_output_folder,
    )
    from houseprice.bench.pricing import SEALED_CITY_SEEDS, TRAINING_SEEDS, run_pricing_benchmark
    from houseprice.bench.pricing_report import plot_lifts, report_markdown

    check_output_folder(out, overwrite=overwrite)  # before the long run
    out = Path(out)
    journal = out.with_name(f".{out.name}.runs.jsonl")  # resumable; removed when complete
    report = run_pricing_benchmark(
        profile=profile,
        cities=cities or len(SEALED_CITY_SEEDS),
        seeds=seeds or len(TRAINING_SEEDS),
        houses=houses,
        with_ames=with_ames,
        progress=progress,
        journal=journal,
    )
    with atomic_directory(out, overwrite=overwrite, kind="houseprice-bench-pricing") as tmp:
        atomic_write_json(tmp / "report.json", report)
        atomic_write_bytes(tmp / "lift.png", plot_lifts(report))
        atomic_write_text(tmp / "report.md", report_markdown(report, "lift.png"))
    journal.unlink(missing_ok=True)
    return report
