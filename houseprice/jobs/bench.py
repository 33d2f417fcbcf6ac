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
) -> dict[str, Any]:
    """Run every registered explainer on synthetic birds (``data``) or CUB-200-2011 (``cub``)."""
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
    )
