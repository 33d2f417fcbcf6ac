"""The explain job: price and explain every house of a table; overlays, a table, a map, scores.

Heatmaps come from the model's grad-weight database by nearest-neighbour transfer (no
backpropagation, :mod:`houseprice.valuation.gradweights`); where the dataset has evidence masks
(the synthetic city) the maps are scored (:mod:`houseprice.valuation.evidence`). The per-house
work (prices, contributions, PNGs) runs partition by partition here or, with
``engine="dask"``, on Dask workers (:mod:`houseprice.jobs.explain_dask`), into a work folder
that ``resume`` picks up after an interruption (:mod:`houseprice.jobs.explain_work`); the
table, report and map are always written here.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from houseprice.artifacts import atomic_write_json, atomic_write_text, check_output_folder
from houseprice.data.houses import Dataset, load_any
from houseprice.data.houses.imagery import open_raster
from houseprice.data.houses.source import FolderTiles
from houseprice.errors import UserInputError
from houseprice.jobs.engines import tile_recipe
from houseprice.jobs.explain_dask import CHUNK, explain_on_dask, explain_rows, write_heatmaps
from houseprice.jobs.explain_work import (
    check_targets,
    explain_job_info,
    finish,
    part_done,
    prepare,
    read_parts,
    write_part,
)
from houseprice.jobs.guards import check_scheduler, locks_output
from houseprice.jobs.houses import warn_uncalibrated
from houseprice.jobs.outputs import write_csv
from houseprice.jobs.stream import Partition, model_digest, plan, records_digest
from houseprice.maps import folder_for
from houseprice.valuation.evidence import evidence_markdown, evidence_scores
from houseprice.valuation.folder import kernel_note
from houseprice.valuation.model import HousePriceModel

#: Above this many houses the map is a folder (index.html + lazily loaded chunks).
FOLDER_THRESHOLD = 5000


@dataclass
class ExplainResult:
    table: Path
    overlays: Path
    map_html: Path | None
    report: dict[str, Any] | None
    frame: pd.DataFrame
    partitions: int = 1  # row-range partitions of the run
    reused: int = 0  # of them kept from an interrupted run (``resume``)


def _write_heatmaps(
    model: HousePriceModel,
    ds: Dataset,
    frame: pd.DataFrame,
    out: Path,
    *,
    device: str,
    progress: bool,
    chunk: int = CHUNK,
) -> bool:
    """:func:`write_heatmaps` for a dataset's records and tiles."""
    assert ds.tiles is not None  # a model with visual features was trained on tiles
    return write_heatmaps(
        model, ds.records, ds.tiles, frame, out, device=device, progress=progress, chunk=chunk
    )


def _scorable(model: HousePriceModel, ds: Dataset) -> bool:
    """The explanations can be scored: evidence masks, prices, and the training houses.

    The scores need the model's training houses (reference pairs of the direct methods); a
    table with only some houses of a city is explained and mapped, with a warning instead.
    """
    import warnings

    if not (
        model.featurizer is not None
        and (ds.meta.get("truth") or {}).get("evidence_dir")
        and "price" in ds.records.columns
        and ds.records["price"].notna().all()
    ):
        return False
    ids = set(ds.records["house_id"].astype(str))
    present = sum(h in ids for h in model.train_ids)
    if present < len(model.train_ids):
        warnings.warn(
            f"evidence scores skipped: the table holds {present} of the model's "
            f"{len(model.train_ids)} training houses (score on the full dataset table)",
            stacklevel=3,
        )
        return False
    return True


@locks_output("out_dir")  # one run at a time per output folder (houseprice.jobs.guards)
def explain_table(
    model_dir: str | Path,
    table: str | Path,
    out_dir: str | Path,
    *,
    map_html: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    test_only: bool = False,
    max_evidence: int = 200,
    overwrite: bool = False,
    label_masks: str | Path | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    partitions: int | None = None,
    resume: bool = False,
    chunk_size: int = CHUNK,
    gpkg: str | Path | None = None,
    crs: str | None = None,
    map_imagery: list[Path] | None = None,
    basemap: str | None = None,
) -> ExplainResult:
    """Price and explain every house of a table: overlays, a table, a map, a score report.

    The houses are explained in row-range partitions (one per ``chunk_size`` houses, or
    ``partitions`` of them on Dask) into the work folder ``.<out name>.explain-work/``
    (:mod:`houseprice.jobs.explain_work`), which is renamed to ``out_dir`` once the table,
    report and map are written: an interrupted run never leaves a partial ``out_dir``, and
    ``resume`` keeps the partitions an interrupted run of the same job finished and explains
    only the rest (a work folder of another job is refused; ``overwrite`` starts over). An
    existing ``out_dir`` is replaced only with ``overwrite`` and only if houseprice wrote it.
    Paths in ``explanations.csv`` are relative to ``out_dir``; the returned frame holds
    absolute ones. ``label_masks``: folder of the synthetic city's label masks for the
    per-driver scores (default ``<table folder>/masks``; skipped without them).
    ``engine="dask"``: prices, contributions and heatmap PNGs are computed by Dask workers, one
    task per partition (:mod:`houseprice.jobs.explain_dask`; ``scheduler``, ``workers``,
    ``partitions`` as for ``predict``); the table, report and map are written here, identical
    to the local engine's.
    ``gpkg``: also write the table as GIS layers (``.gpkg``: layers ``houses`` and ``areas``;
    or ``.geoparquet``, :mod:`houseprice.jobs.gis_out`) in ``crs`` (default EPSG:4326;
    ``"input"``: the input table's CRS); inside ``out`` it moves with the folder.
    ``map_imagery``: the orthophotos (GeoTIFF/COG) drawn under the map's houses, offline;
    ``basemap="osm"`` adds OpenStreetMap's online street layer (off unless asked for).
    """
    _check_engine(engine, scheduler=scheduler, workers=workers, partitions=partitions)
    check_scheduler(scheduler)  # answers as a Dask scheduler, before any folder is made
    if max_evidence < 1:
        raise UserInputError(f"max_evidence must be at least 1 house, got {max_evidence}")
    out = Path(os.path.abspath(out_dir))
    inputs = (model_dir, table)
    map_path = None if map_html is None else Path(os.path.abspath(map_html))
    check_targets(out, overwrite=overwrite, resume=resume, inputs=inputs)
    model = HousePriceModel.load(model_dir)
    if note := kernel_note(model_dir):
        warnings.warn(note, stacklevel=2)
    warn_uncalibrated(model)
    full = load_any(table, purpose="predict")
    rec = full.records
    if test_only:
        rec = rec[~rec["house_id"].astype(str).isin(set(model.train_ids))]
        if not len(rec):
            raise UserInputError(
                f"{table}: all {len(full.records)} houses are the model's training houses; "
                "nothing to explain with --unseen-only (drop the flag to explain them)"
            )
    ds = full.subset(rec)
    if map_path is not None and out not in map_path.parents:
        _check_file_target(map_path, overwrite, inputs=inputs)
        if len(rec) > FOLDER_THRESHOLD:  # a folder map: refuse before the long work
            check_output_folder(folder_for(map_path), overwrite=overwrite, inputs=inputs)
    gis = _gis_target(gpkg, crs, out, table, overwrite=overwrite, inputs=inputs)
    base = _check_base(map_path, map_imagery, basemap)
    parts = plan(len(rec), chunk_size=chunk_size, partitions=partitions)
    options = {"test_only": test_only, "max_evidence": max_evidence, "label_masks": label_masks}
    info = _job_info(model_dir, table, full, ds, parts, out, map_path, options=options)
    work = prepare(out, info, overwrite=overwrite, resume=resume)
    todo = [p for p in parts if not (resume and part_done(work, p, info["key"]))]
    run = {"scheduler": scheduler, "workers": workers, "device": device, "progress": progress}
    _per_house(model_dir, model, ds, work, todo, key=info["key"], engine=engine, run=run)
    frame, signed = read_parts(work, parts, rec)
    frame["image"] = ds.tiles.describe(rec) if ds.tiles is not None else None  # client's paths
    options = {**options, "device": device, "progress": progress, "overwrite": overwrite}
    options["base"] = base
    report, page = _write_outputs(model, full, ds, frame, (work, out, map_path), signed, options)
    if gis is not None:
        _write_gis(frame.drop(columns=model.visual_columns), work, out, gis)
    finish(work, out, overwrite=overwrite, inputs=inputs)
    for col in ("overlay", "heatmap"):
        frame[col] = [None if v is None else str(out / v) for v in frame[col]]
    return ExplainResult(
        table=out / "explanations.csv",
        overlays=out / "overlays",
        map_html=page,
        report=report,
        frame=frame,
        partitions=len(parts),
        reused=len(parts) - len(todo),
    )


def _job_info(
    model_dir: str | Path,
    table: str | Path,
    full: Dataset,
    ds: Dataset,
    parts: list[Partition],
    out: Path,
    map_path: Path | None,
    *,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The ``_job.json`` of this run: what the output depends on (not engine, workers or
    device; the partition ranges are fixed by the chunk size or ``--partitions``)."""
    inside = map_path is not None and out in map_path.parents
    masks = options["label_masks"]
    return explain_job_info(
        model=str(Path(model_dir).resolve()),
        model_digest=model_digest(model_dir),
        table=str(Path(table).resolve()),
        records=records_digest(full.records),
        rows=len(ds.records),
        tiles=None if ds.tiles is None else repr(tile_recipe(ds.tiles)),
        test_only=options["test_only"],
        max_evidence=options["max_evidence"],
        label_masks=str(Path(masks if masks is not None else full.root / "masks").resolve()),
        map=None if map_path is None else str(map_path.relative_to(out) if inside else map_path),
        map_inside=inside,
        partitions=[[p.start, p.stop] for p in parts],
    )


def _per_house(
    model_dir: str | Path,
    model: HousePriceModel,
    ds: Dataset,
    work: Path,
    todo: list[Partition],
    *,
    key: str,
    engine: str,
    run: dict[str, Any],
) -> None:
    """Prices, contributions and PNGs of the partitions ``todo``: here, or on Dask. Each
    finished partition leaves its frame file in ``work``. ``run``: ``device``, ``progress``
    and Dask's ``scheduler``, ``workers``."""
    rec = ds.records
    device, progress = run["device"], run["progress"]
    if engine == "dask" and len(rec):
        explain_on_dask(
            model_dir,
            rec,
            ds.tiles,
            work,
            todo,
            key=key,
            options={"device": device, "progress": progress},
            scheduler=run["scheduler"],
            workers=run["workers"],
        )
        return
    from tqdm.auto import tqdm

    total = sum(p.rows for p in todo)
    with tqdm(total=total, desc="houses", unit="house", disable=not progress) as bar:
        for p in todo:
            rows = rec.iloc[p.start : p.stop]
            frame, signed = explain_rows(model, rows, ds.tiles, work, device=device, progress=False)
            write_part(work, p, frame, key=key, signed=signed)
            bar.update(p.rows)


def _write_outputs(
    model: HousePriceModel,
    full: Dataset,
    ds: Dataset,
    frame: pd.DataFrame,
    paths: tuple[Path, Path, Path | None],
    signed: bool,
    options: dict[str, Any],
) -> tuple[dict[str, Any] | None, Path | None]:
    """``explanations.csv``, the evidence report and the map, into the work folder (a map
    outside ``out`` goes to its own path). ``paths``: the work folder, ``out``, the map;
    ``options``: ``max_evidence``, ``label_masks``, ``device``, ``progress``, ``overwrite``.
    Returns the report and the page to open."""
    work, out, map_path = paths
    write_csv(frame.drop(columns=model.visual_columns), work / "explanations.csv")
    report = None
    if _scorable(model, full):
        try:
            report = evidence_scores(
                model,
                full,
                max_houses=options["max_evidence"],
                device=options["device"],
                progress=options["progress"],
                label_masks=options["label_masks"],
            )
        except UserInputError as err:  # the scores are an extra: the explanations stand
            warnings.warn(f"evidence scores skipped: {err}", stacklevel=2)
        else:
            atomic_write_json(work / "report.json", report)
            atomic_write_text(work / "report.md", evidence_markdown(report))
    if map_path is None:
        return report, None
    inside = out in map_path.parents
    target = work / map_path.relative_to(out) if inside else map_path
    page = _render_map(
        model,
        ds,
        frame,
        work,
        target,
        overwrite=options["overwrite"],
        signed=signed,
        base=options.get("base") or {},
    )
    return report, (out / page.relative_to(work) if inside else page)  # moves with the folder


#: ``--basemap osm``: OpenStreetMap's standard tiles (online; see its tile usage policy).
OSM_TILES = ("https://tile.openstreetmap.org/{z}/{x}/{y}.png", "© OpenStreetMap contributors")


def _check_base(
    map_path: Path | None, imagery: list[Path] | None, basemap: str | None
) -> dict[str, Any]:
    """``render_valuation_map``'s base-layer arguments; the imagery files are opened and
    checked now, before the long work."""
    from houseprice.data.houses.imagery import open_raster

    if map_path is None and (imagery or basemap):
        raise UserInputError("--map-imagery and --basemap need --map (they draw under the map)")
    if basemap not in (None, "osm"):
        raise UserInputError(f"--basemap must be osm (an online street layer), got {basemap!r}")
    base: dict[str, Any] = {}
    if imagery:
        for path in imagery:
            open_raster(path).close()
        base["imagery"] = [Path(p) for p in imagery]
    if basemap == "osm":
        base["base_tiles_url"], base["base_tiles_attribution"] = OSM_TILES
    return base


def _gis_target(
    path: str | Path | None,
    crs: str | None,
    out: Path,
    table: str | Path,
    *,
    overwrite: bool,
    inputs: tuple[str | Path, ...],
) -> tuple[Path, Any] | None:
    """The GIS file and its CRS, checked before the long work (None: no GIS output)."""
    from houseprice.jobs.gis_out import check_gis_target, layer_crs

    if path is None:
        if crs is not None:
            raise UserInputError("--crs applies only with --gpkg (the CRS of its layers)")
        return None
    target = Path(os.path.abspath(path))
    if out not in target.parents:
        _refuse_inputs(target, inputs, "--gpkg")
        check_gis_target(target, overwrite=overwrite, inputs=inputs)
    elif target.suffix.lower() not in (".gpkg", ".geoparquet"):
        check_gis_target(target, overwrite=False)  # names the accepted suffixes
    return target, layer_crs(crs, table)


def _write_gis(table: pd.DataFrame, work: Path, out: Path, gis: tuple[Path, Any]) -> Path:
    """The explanations as GIS layers: into the work folder when inside ``out``."""
    from houseprice.jobs.gis_out import area_inputs, write_gis

    path, crs = gis
    target = work / path.relative_to(out) if out in path.parents else path
    return write_gis(target, [table], area_inputs(table), crs)


def _check_engine(engine: str, **dask_options: Any) -> None:
    """``engine`` is known; the Dask options are given only with ``engine="dask"``."""
    if engine not in ("local", "dask"):
        raise UserInputError(f"--engine must be local or dask, got {engine!r}")
    given = [f"--{k}" for k, v in dask_options.items() if v is not None]
    if engine == "local" and given:
        raise UserInputError(
            f"{', '.join(given)}: only with --engine dask (the local engine does not use them)"
        )


def _check_file_target(path: Path, overwrite: bool, *, inputs: tuple[str | Path, ...]) -> None:
    """An output file outside the output folder: refuse to replace one without ``overwrite``."""
    from houseprice.errors import OutputExistsError

    if path.is_dir():
        raise OutputExistsError(f"{path} is a folder; --map must name an .html file")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    _refuse_inputs(path, inputs, "--map")


def _refuse_inputs(path: Path, inputs: tuple[str | Path, ...], option: str) -> None:
    """A file output may be neither an input nor inside an input folder (model, dataset)."""
    from houseprice.errors import OutputExistsError

    for item in inputs:
        if Path(item).resolve() == path.resolve():
            raise OutputExistsError(f"{path} is an input of this job; choose another {option}")
    for folder in _input_folders(inputs):
        if folder in path.resolve().parents:
            raise OutputExistsError(
                f"{path} is inside the input folder {folder}; choose another {option}"
            )


def _input_folders(inputs: tuple[str | Path, ...]) -> list[Path]:
    """The folders a job reads from: an input that is a folder (the model, a dataset), and
    the dataset folder (with ``dataset.json``) around an input table."""
    out = []
    for item in map(Path, inputs):
        if item.is_dir():
            out.append(item.resolve())
        elif (item.parent / "dataset.json").is_file():
            out.append(item.parent.resolve())
    return out


def _render_map(
    model: HousePriceModel,
    ds: Dataset,
    frame: pd.DataFrame,
    tmp: Path,
    target: Path,
    *,
    overwrite: bool = False,
    signed: bool = False,
    base: dict[str, Any] | None = None,
) -> Path:
    """The offline map; returns the page to open (the file, or ``<name>/index.html`` for a
    folder map above ``FOLDER_THRESHOLD`` houses). ``signed``: the heatmaps are two-colour
    signed maps (the legend's colour bar uses the same diverging scale)."""

    # The popup lists every column: leave out machine data (paths of the overlays, the raw
    # 4-d features) that means nothing to the reader of a shared map.
    shown = frame.drop(columns=["overlay", *model.visual_columns]).copy()
    paths = ds.tiles.paths(ds.records) if isinstance(ds.tiles, FolderTiles) else None
    # a tile that could not be read (missing file) is left out of its popup, not an error:
    # the house was priced without visual features and the table says why (tile_problem)
    shown["image"] = (
        None
        if paths is None
        else [None if p is None or not Path(p).is_file() else str(p) for p in paths]
    )
    shown["heatmap"] = [None if v is None else str(tmp / v) for v in frame["heatmap"]]
    target.parent.mkdir(parents=True, exist_ok=True)
    base = dict(base or {})
    rasters = [open_raster(p) for p in base.pop("imagery", [])]
    try:
        return _render(shown, target, model, signed, overwrite, {**base, "imagery": rasters})
    finally:
        for raster in rasters:
            raster.close()


def _render(
    shown: pd.DataFrame,
    target: Path,
    model: HousePriceModel,
    signed: bool,
    overwrite: bool,
    base: dict[str, Any],
) -> Path:
    from houseprice.maps import render_valuation_map
    from houseprice.maps.overlay import SIGNED_CMAP

    return render_valuation_map(
        shown,
        target,
        tile_meters=float(model.tile_meters or 70.0),
        title="houseprice valuations",
        heatmap_cmap=SIGNED_CMAP if signed else "jet",
        overwrite=overwrite,
        folder_threshold=FOLDER_THRESHOLD,
        **base,
    )
