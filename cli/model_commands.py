"""``houseprice demo | train | predict | evaluate | explain``: the model commands."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    Common,
    Device,
    Overwrite,
    ProfileOpt,
    Quiet,
    Scheduler,
    Seed,
    Workers,
    app,
    run_job,
    say,
)
from houseprice.profiles import Profile


class EvalSplit(str, Enum):
    test = "test"
    validation = "validation"


# ----------------------------------------------------------------------------- demo
@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo_out"),
    profile: ProfileOpt = Profile.standard,
    seed: Seed = 0,
    device: Device = "cpu",
    houses: Annotated[
        int | None, typer.Option("--houses", min=1, max=200_000, help="City size override.")
    ] = None,
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


# ----------------------------------------------------------------------------- model
class Engine(str, Enum):
    local = "local"
    dask = "dask"


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
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="Where the price regressors (LightGBM) are fitted: local, or dask "
            "(lightgbm.dask on a Dask cluster; the siamese stage stays local).",
        ),
    ] = Engine.local,
    scheduler: Scheduler = None,
    workers: Workers = None,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            min=1,
            max=1024,
            help="Train the siamese nets data-parallel on N local processes (torchrun; gloo on "
            "CPU, nccl with one GPU each). Only rank 0 writes --out.",
        ),
    ] = 1,
    profile: ProfileOpt = Profile.standard,
    seed: Seed = 0,
    device: Device = "cpu",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Train the visual features and price regressors; write a model folder.

    Example: houseprice train --data data/city --out models/city --profile quick
    (add --engine dask [--scheduler tcp://host:8786] to fit the regressors on Dask, or
    --nproc 2 to train the siamese nets on 2 processes with torch DDP)
    """
    from houseprice.jobs import train
    from houseprice.jobs.launch import is_main_process, relaunch

    c = Common(seed, device, quiet)
    if nproc > 1:  # re-run this command under torchrun, without --nproc
        raise typer.Exit(run_job(c, lambda: relaunch(nproc)))
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
            engine=engine.value,
            scheduler=scheduler,
            workers=workers,
        ),
    )
    kind = (
        "with visual features"
        if model.featurizer is not None
        else "without visual features (dataset has no tiles)"
    )
    if is_main_process():
        say(f"trained on {model.info['n_train']} houses {kind}; model in {path}")


GisCrs = Annotated[
    str | None,
    typer.Option(
        "--crs",
        help="CRS of the GIS layers (.gpkg/.geoparquet): EPSG:4326 by default, e.g. "
        "EPSG:26915, or 'input' for the input table's own CRS.",
    ),
]


@app.command("predict")
def predict_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder.")],
    input: Annotated[Path, typer.Option("--input", help="Table of houses (CSV/Parquet).")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Output: a .csv file, a .parquet folder of partitions + manifest, or a GIS "
            "file: .gpkg (layers houses + areas) / .geoparquet (+ .areas.geoparquet).",
        ),
    ],
    imagery: Annotated[
        list[Path] | None,
        typer.Option("--imagery", help="Cut tiles on the fly from GeoTIFF/COG (repeatable)."),
    ] = None,
    explain_contributions: Annotated[
        bool,
        typer.Option(
            "--explain-contributions",
            help="Add each house's price split in money: base_price, contrib_<group>.",
        ),
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option("--engine", help="local: this process. dask: partitions on Dask workers."),
    ] = Engine.local,
    scheduler: Scheduler = None,
    workers: Workers = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            "--partitions", min=1, help="Partition files (default: one per --chunk-size rows)."
        ),
    ] = None,
    chunk_size: Annotated[
        int,
        typer.Option("--chunk-size", min=1, help="Houses scored at once (memory is flat in N)."),
    ] = 2048,  # houseprice.jobs.stream.DEFAULT_CHUNK (not imported: keeps --help fast)
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Keep the partitions an interrupted run of the same job wrote."
        ),
    ] = False,
    crs: GisCrs = None,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            help="Level of the calibrated price range (price_low, price_high), strictly "
            "between 0 and 1; default 0.8. fsd and confidence do not depend on it.",
        ),
    ] = None,
    overwrite: Overwrite = False,
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """Price every house of a table (no row is dropped; see used_visual), with a calibrated
    price range, its FSD and a confidence grade per house.

    Example: houseprice predict --model models/city --input new_houses.csv --out prices.csv

    For a GIS (QGIS, ArcGIS): --out prices.gpkg [--crs EPSG:26915 | --crs input]
    Price ranges at another level: --interval 0.9
    """
    from houseprice.jobs.engines import score_table

    c = Common(seed, device, quiet)
    res = run_job(
        c,
        lambda: score_table(
            model,
            input,
            out,
            device=device,
            progress=c.progress,
            overwrite=overwrite,
            imagery=imagery,
            contributions=explain_contributions,
            engine=engine.value,
            scheduler=scheduler,
            workers=workers,
            partitions=partitions,
            chunk_size=chunk_size,
            resume=resume,
            crs=crs,
            interval=interval,
        ),
    )
    kept = f"; {res.reused} of {res.partitions} partitions kept from before" if res.reused else ""
    say(f"priced {res.rows} houses ({res.n_fallback} without visual features) → {res.path}{kept}")


@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder.")],
    data: Annotated[Path, typer.Option("--data", help="The dataset it was trained on.")],
    out: Annotated[Path, typer.Option("--out", help="Report folder.")],
    split: Annotated[
        EvalSplit,
        typer.Option(
            "--split",
            help="test: the sealed score. validation: the last 25% of the training period, "
            "for every choice (never reads the test rows).",
        ),
    ] = EvalSplit.test,
    overwrite: Overwrite = False,
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """10% accuracy per attribute set with/without visual features, lift, regressors; the
    IAAO ratio study (median ratio, COD, PRD, PRB, MKI) and the price ranges' coverage.

    Example: houseprice evaluate --model models/city --data data/city --out reports/city
    """
    from houseprice.jobs import evaluate_folder, table2_text
    from houseprice.valuation.assessment_report import ratio_study_lines

    c = Common(seed, device, quiet)
    report = run_job(
        c,
        lambda: evaluate_folder(
            model,
            data,
            out,
            device=device,
            progress=c.progress,
            overwrite=overwrite,
            split=split.value,
        ),
    )
    say(table2_text(report))
    say(ratio_study_lines(report["ratio_study"]))
    say(f"report: {Path(out) / 'report.md'}")


@app.command("calibrate")
def calibrate_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder (houseprice wrote it).")],
    data: Annotated[Path, typer.Option("--data", help="The dataset it was trained on.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing calibration.")
    ] = False,
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """Add price-range calibration (calibration.json) to a model folder saved without one.

    Refits only LightGBM regressors on the training rows (forward-chained by sale date, with
    the stored visual features); the nets are not retrained.

    Example: houseprice calibrate --model models/city --data data/city
    """
    from houseprice.jobs.model import calibrate_folder

    c = Common(seed, device, quiet)
    path, _ = run_job(c, lambda: calibrate_folder(model, data, overwrite=overwrite))
    say(f"calibrated price ranges added to {path} (calibration.json)")


ExplainResume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Keep the partitions an interrupted run of the same job finished (in the hidden "
        ".<out>.explain-work folder next to --out) and explain only the rest.",
    ),
]


@app.command("explain")
def explain_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder.")],
    input: Annotated[Path, typer.Option("--input", help="Table of houses (CSV/Parquet).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (overlays, table).")],
    map_html: Annotated[Path | None, typer.Option("--map", help="Write an offline map.")] = None,
    unseen_only: Annotated[
        bool, typer.Option("--unseen-only", help="Skip the model's training houses.")
    ] = False,
    label_masks: Annotated[
        Path | None,
        typer.Option(
            "--label-masks",
            help="Folder of label masks <id>.png for the per-driver scores (synthetic city; "
            "default: <input folder>/masks).",
        ),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="local: this process. dask: prices and heatmap PNGs per partition on Dask "
            "workers (the table, report and map are written here).",
        ),
    ] = Engine.local,
    scheduler: Scheduler = None,
    workers: Workers = None,
    partitions: Annotated[
        int | None,
        typer.Option("--partitions", min=1, help="Dask tasks (default: one per 512 houses)."),
    ] = None,
    resume: ExplainResume = False,
    gpkg: Annotated[
        Path | None,
        typer.Option(
            "--gpkg",
            help="Also write the table as GIS layers: a .gpkg (houses + areas) or .geoparquet.",
        ),
    ] = None,
    crs: GisCrs = None,
    map_imagery: Annotated[
        list[Path] | None,
        typer.Option(
            "--map-imagery",
            help="Orthophoto(s) (GeoTIFF/COG) drawn under the map, offline: the ones the tiles "
            "were cut from (repeatable; a layer you can untick).",
        ),
    ] = None,
    basemap: Annotated[
        str | None,
        typer.Option(
            "--basemap",
            help="osm: add OpenStreetMap's online street layer (needs a network; off by "
            "default, never needed).",
        ),
    ] = None,
    overwrite: Overwrite = False,
    seed: Seed = 0,
    device: Device = "cpu",
    quiet: Quiet = False,
) -> None:
    """Price and explain houses: heatmap overlays by weight transfer, a table and a map.

    Example: houseprice explain --model models/city --input data/city/houses.csv\
    --out expl --map expl/map.html
    (add --engine dask [--scheduler tcp://host:8786] to run the per-house work on Dask;
    add --gpkg expl/houses.gpkg for layers a GIS opens, --map-imagery ortho.tif to draw the
    orthophoto under the map)

    Interrupted (Ctrl-C, a killed job)? Run the same command with --resume: the partitions
    already explained are kept and only the missing ones run, e.g.
    houseprice explain --model models/city --input data/city/houses.csv --out expl
    --map expl/map.html --resume
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
            label_masks=label_masks,
            overwrite=overwrite,
            engine=engine.value,
            scheduler=scheduler,
            workers=workers,
            partitions=partitions,
            resume=resume,
            gpkg=gpkg,
            crs=crs,
            map_imagery=map_imagery,
            basemap=basemap,
        ),
    )
    n_vis = int(res.frame["heatmap"].notna().sum())
    kept = f"; {res.reused} of {res.partitions} partitions kept from before" if res.reused else ""
    say(f"explained {len(res.frame)} houses ({n_vis} with heatmaps); table {res.table}{kept}")
    if res.report is not None:
        ratios = ", ".join(f"{k} {v:.3f}" for k, v in res.report["evidence_mask_ratio"].items())
        say(f"evidence-mask ratio: {ratios}, uniform {res.report['uniform']:.3f}")
    if res.map_html is not None:
        say(f"map: {res.map_html}")
    if gpkg is not None:
        say(f"GIS layers: {gpkg}")
