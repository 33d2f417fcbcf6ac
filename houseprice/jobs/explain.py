"""The explain job: price and explain every house of a table; overlays, a table, a map, scores.

Heatmaps come from the model's grad-weight database by nearest-neighbour transfer (no
backpropagation, :mod:`houseprice.valuation.gradweights`); where the dataset has evidence masks
(the synthetic city) the maps are scored (:mod:`houseprice.valuation.evidence`). The per-house
work (prices, contributions, PNGs) runs here or, with ``engine="dask"``, on Dask workers
(:mod:`houseprice.jobs.explain_dask`); the table, report and map are always written here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from houseprice.artifacts import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    check_output_folder,
)
from houseprice.data.houses import Dataset, load_any
from houseprice.data.houses.source import FolderTiles
from houseprice.errors import UserInputError
from houseprice.jobs.explain_dask import CHUNK, explain_on_dask, explain_rows, write_heatmaps
from houseprice.jobs.outputs import write_csv
from houseprice.maps import folder_for
from houseprice.valuation.evidence import evidence_markdown, evidence_scores
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
) -> ExplainResult:
    """Price and explain every house of a table: overlays, a table, a map, a score report.

    ``out_dir`` is written atomically (an existing one is replaced only with ``overwrite`` and
    only if houseprice wrote it). Paths in ``explanations.csv`` are relative to ``out_dir``; the
    returned frame holds absolute ones. ``label_masks``: folder of the synthetic city's label
    masks for the per-driver scores (default ``<table folder>/masks``; skipped without them).
    ``engine="dask"``: prices, contributions and heatmap PNGs are computed by Dask workers, one
    task per row-range partition (:mod:`houseprice.jobs.explain_dask`; ``scheduler``,
    ``workers``, ``partitions`` as for ``predict``); the table, report and map are written
    here, identical to the local engine's.
    """
    _check_engine(engine, scheduler=scheduler, workers=workers, partitions=partitions)
    if max_evidence < 1:
        raise UserInputError(f"max_evidence must be at least 1 house, got {max_evidence}")
    model = HousePriceModel.load(model_dir)
    full = load_any(table, purpose="predict")
    rec = full.records
    if test_only:
        rec = rec[~rec["house_id"].astype(str).isin(set(model.train_ids))]
    ds = full.subset(rec)
    out = Path(os.path.abspath(out_dir))
    map_path = None if map_html is None else Path(os.path.abspath(map_html))
    inside = map_path is not None and out in map_path.parents
    if map_path is not None and not inside:
        _check_file_target(map_path, overwrite, inputs=(model_dir, table))
        if len(rec) > FOLDER_THRESHOLD:  # a folder map: refuse before the long work
            check_output_folder(
                folder_for(map_path), overwrite=overwrite, inputs=(model_dir, table)
            )
    page = None
    report = None
    with atomic_directory(
        out, overwrite=overwrite, kind="houseprice-explanations", inputs=(model_dir, table)
    ) as tmp:
        dask = {"scheduler": scheduler, "workers": workers, "partitions": partitions}
        frame, signed = _per_house(
            model_dir, model, ds, tmp, engine=engine, device=device, progress=progress, dask=dask
        )
        write_csv(frame.drop(columns=model.visual_columns), tmp / "explanations.csv")
        if _scorable(model, full):
            report = evidence_scores(
                model,
                full,
                max_houses=max_evidence,
                device=device,
                progress=progress,
                label_masks=label_masks,
            )
            atomic_write_json(tmp / "report.json", report)
            atomic_write_text(tmp / "report.md", evidence_markdown(report))
        if map_path is not None:
            target = tmp / map_path.relative_to(out) if inside else map_path
            page = _render_map(model, ds, frame, tmp, target, overwrite=overwrite, signed=signed)
            if inside:  # the page moves with the folder
                page = out / page.relative_to(tmp)
    for col in ("overlay", "heatmap"):
        frame[col] = [None if v is None else str(out / v) for v in frame[col]]
    return ExplainResult(
        table=out / "explanations.csv",
        overlays=out / "overlays",
        map_html=page,
        report=report,
        frame=frame,
    )


def _per_house(
    model_dir: str | Path,
    model: HousePriceModel,
    ds: Dataset,
    tmp: Path,
    *,
    engine: str,
    device: str,
    progress: bool,
    dask: dict[str, Any],
) -> tuple[pd.DataFrame, bool]:
    """Prices, contributions and PNGs (into ``tmp``) of every house: here, or on Dask."""
    rec = ds.records
    if engine != "dask" or not len(rec):
        return explain_rows(model, rec, ds.tiles, tmp, device=device, progress=progress)
    frame, signed = explain_on_dask(
        model_dir,
        rec,
        ds.tiles,
        tmp,
        options={"device": device, "progress": progress, "partitions": dask["partitions"]},
        scheduler=dask["scheduler"],
        workers=dask["workers"],
    )
    frame["image"] = ds.tiles.describe(rec) if ds.tiles is not None else None  # client's paths
    return frame, signed


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
    for item in inputs:
        if Path(item).resolve() == path.resolve():
            raise OutputExistsError(f"{path} is an input of this job; choose another --map")


def _render_map(
    model: HousePriceModel,
    ds: Dataset,
    frame: pd.DataFrame,
    tmp: Path,
    target: Path,
    *,
    overwrite: bool = False,
    signed: bool = False,
) -> Path:
    """The offline map; returns the page to open (the file, or ``<name>/index.html`` for a
    folder map above ``FOLDER_THRESHOLD`` houses). ``signed``: the heatmaps are two-colour
    signed maps (the legend's colour bar uses the same diverging scale)."""
    from houseprice.maps import render_valuation_map
    from houseprice.maps.overlay import SIGNED_CMAP

    # The popup lists every column: leave out machine data (paths of the overlays, the raw
    # 4-d features) that means nothing to the reader of a shared map.
    shown = frame.drop(columns=["overlay", *model.visual_columns]).copy()
    paths = ds.tiles.paths(ds.records) if isinstance(ds.tiles, FolderTiles) else None
    shown["image"] = None if paths is None else [None if p is None else str(p) for p in paths]
    shown["heatmap"] = [None if v is None else str(tmp / v) for v in frame["heatmap"]]
    target.parent.mkdir(parents=True, exist_ok=True)
    return render_valuation_map(
        shown,
        target,
        tile_meters=float(model.tile_meters or 70.0),
        title="houseprice valuations",
        heatmap_cmap=SIGNED_CMAP if signed else "jet",
        overwrite=overwrite,
        folder_threshold=FOLDER_THRESHOLD,
    )
