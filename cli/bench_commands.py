"""``houseprice bench ...``: benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    Common,
    Device,
    ProfileOpt,
    Quiet,
    Seed,
    bench_app,
    run_job,
    say,
)
from houseprice.profiles import Profile


@bench_app.command("explainers")
def bench_explainers(
    out: Annotated[Path, typer.Option("--out", help="Report folder.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Synthetic-birds folder (made if absent).")
    ] = None,
    cub: Annotated[Path | None, typer.Option("--cub", help="Real CUB-200-2011 folder.")] = None,
    model_dir: Annotated[
        Path | None, typer.Option("--model", help="Reuse a trained embedding net.")
    ] = None,
    profile: ProfileOpt = Profile.standard,
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """Localisation benchmark of every explainer (Chen Table 1 layout) on CUB-style data.

    Example: houseprice bench explainers --data data/birds --out reports/bench --profile quick
    """
    from houseprice.jobs import bench_explainers as job

    c = Common(seed, device, quiet)
    report = run_job(
        c,
        lambda: job(
            out=out,
            data=data,
            cub=cub,
            model_dir=model_dir,
            profile=profile.value,
            seed=seed,
            device=device,
            progress=c.progress,
        ),
    )
    r = report["retrieval"]
    say(
        f"Recall@1 {r['recall_at_1']:.3f}, NMI {r['nmi']:.3f}; "
        f"{len(report['methods'])} methods; report {Path(out) / 'report.md'}"
    )
