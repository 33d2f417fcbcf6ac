"""``houseprice bench ...``: benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    Common,
    Device,
    Overwrite,
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
    retrain_runs: Annotated[
        int | None,
        typer.Option(
            "--retrain-runs",
            min=1,
            max=16,
            help="Embedding nets trained, for the spread across nets (default: the profile's).",
        ),
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
            retrain_runs=retrain_runs,
        ),
    )
    r = report["retrieval"]
    say(
        f"Recall@1 {r['recall_at_1']:.3f}, NMI {r['nmi']:.3f}; "
        f"{len(report['methods'])} methods; report {Path(out) / 'report.md'}"
    )


@bench_app.command("pricing")
def bench_pricing_cmd(
    out: Annotated[Path, typer.Option("--out", help="Report folder.")],
    profile: ProfileOpt = Profile.standard,
    cities: Annotated[
        int | None, typer.Option("--cities", min=1, help="Sealed cities (default: all 5).")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option("--seeds", min=1, help="Training seeds (default: all 3).")
    ] = None,
    houses: Annotated[
        int | None, typer.Option("--houses", min=50, max=200_000, help="City size override.")
    ] = None,
    ames: Annotated[bool, typer.Option("--ames/--no-ames", help="Also score Ames.")] = True,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Visual-feature lift over sealed cities x training seeds: mean, spread, oracle share.

    Example: houseprice bench pricing --out reports/pricing --profile standard
    """
    from houseprice.jobs import bench_pricing

    c = Common(quiet=quiet)
    report = run_job(
        c,
        lambda: bench_pricing(
            out=out,
            profile=profile.value,
            cities=cities,
            seeds=seeds,
            houses=houses,
            with_ames=ames,
            overwrite=overwrite,
            progress=c.progress,
        ),
    )
    s = report["test"]["sets"]["G,Bed,Bath,T,A"]
    say(
        f"G,Bed,Bath,T,A lift {100 * s['mean']:+.1f} ± {100 * s['std']:.1f} points over "
        f"{s['n']} runs ({100 * (s['share_of_oracle'] or 0):.0f}% of the oracle lift); "
        f"report {Path(out) / 'report.md'}"
    )
