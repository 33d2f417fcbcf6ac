"""The explain job's per-house work (prices, contributions, heatmap PNGs) and its Dask engine.

:func:`explain_rows` is what both engines run on a block of rows (the local engine on the whole
table in this process, :func:`houseprice.jobs.explain.explain_table`).

The records are cut into fixed row-range partitions (:func:`houseprice.jobs.stream.plan`) and
written once as ``_records.parquet`` into the job's temporary output folder; one task per
partition reads its rows, its own tiles and the model (loaded once per worker process:
:func:`houseprice.jobs.engines.cached_model`), runs :func:`explain_rows`
and writes its houses' overlay/heatmap PNGs into that same folder. It returns its partition's
frame (one row per house); the client concatenates them in row order and writes the table, the
evidence report and the map itself (:func:`houseprice.jobs.explain.explain_table`).

The temporary output folder, the model folder and the tiles must be reachable under the same
paths from every worker (shared storage). A task that raises is retried ``retries`` times, one
whose worker dies is rescheduled; PNGs are written atomically under the house's id, so a retry
replaces only its own houses' files (no duplicates, nothing half-written).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from houseprice.artifacts import atomic_write_bytes
from houseprice.jobs.engines import (
    cached_model,
    cached_tiles,
    read_rows,
    run_partitions,
    tile_recipe,
    write_records,
)
from houseprice.jobs.outputs import safe_name
from houseprice.jobs.stream import RECORDS_FILE, Partition, model_digest, plan
from houseprice.runtime import resolve_device
from houseprice.valuation.gradweights import (
    database_ids,
    explained_net,
    load_database,
    transfer_maps,
)
from houseprice.valuation.model import HousePriceModel

#: Houses whose tiles are read, explained and written together (memory is flat in N).
CHUNK = 512


# ------------------------------------------------------------ the per-house work (both engines)
def write_heatmaps(
    model: HousePriceModel,
    records: pd.DataFrame,
    tiles_source: Any,
    frame: pd.DataFrame,
    out: Path,
    *,
    device: str,
    progress: bool,
    chunk: int = CHUNK,
) -> bool:
    """Transfer heatmaps for every row with a usable tile; overlay + heatmap PNG per house.

    Rows are processed ``chunk`` at a time (read tiles, transfer, write PNGs), so memory does
    not grow with the table. The maps are signed (two colours, "raises price" / "lowers
    price") when the database holds signed weights, else relevance maps as before; returns
    whether they were signed. ``frame`` gets the files' paths relative to ``out``
    (``overlays/<id>.png``) and the id of the database neighbour whose weights were used.
    Both PNGs are written atomically (temp file + rename) under the house's id, so a Dask
    task that is retried or run twice replaces only its own houses' files.
    """
    import io

    from PIL import Image
    from tqdm.auto import tqdm

    from houseprice.maps.overlay import heatmap_overlay, save_overlay_png, signed_overlay

    dev = resolve_device(device)
    net = explained_net(model).to(dev)
    db, cfg = load_database(model)
    signed = db.signed is not None
    db_ids = database_ids(model)
    ids = frame["house_id"].astype(str).to_numpy()
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    (out / "heatmaps").mkdir(parents=True, exist_ok=True)
    size = model.config.siamese.image_size
    bar = tqdm(total=len(records), desc="overlays", disable=not progress, leave=False)
    for start in range(0, len(records), chunk):
        part = records.iloc[start : start + chunk]
        tiles = tiles_source.read(part, size, warn=False)
        idx = np.flatnonzero(tiles.ok)
        bar.update(len(part))
        if not len(idx):
            continue
        maps, neigh = transfer_maps(
            net, db, tiles.pixels[idx], cfg.key, device=dev, layer=cfg.layer, signed=signed
        )
        for k, j in enumerate(idx):
            i = start + int(j)
            tile, hm = tiles.pixels[j], maps[k].numpy()
            name = f"{safe_name(ids[i])}.png"
            save_overlay_png(
                tile, hm, out / "overlays" / name, colorbar=True, title=ids[i], signed=signed
            )
            pixel = signed_overlay(tile, hm) if signed else heatmap_overlay(tile, hm)
            buffer = io.BytesIO()
            Image.fromarray(pixel).save(buffer, format="PNG")
            atomic_write_bytes(out / "heatmaps" / name, buffer.getvalue())
            frame.loc[frame.index[i], "overlay"] = f"overlays/{name}"
            frame.loc[frame.index[i], "heatmap"] = f"heatmaps/{name}"
            frame.loc[frame.index[i], "neighbour"] = db_ids[int(neigh[k])]
    bar.close()
    net.to("cpu")
    return signed


def explain_rows(
    model: HousePriceModel,
    records: pd.DataFrame,
    tiles: Any,
    out: Path,
    *,
    device: str,
    progress: bool,
) -> tuple[pd.DataFrame, bool]:
    """Price and explain ``records``: the frame (prices, contributions, PNG paths relative to
    ``out``, neighbours) and whether the maps are signed; PNGs are written into ``out``."""
    frame = model.predict_frame(
        records, tiles, device=device, progress=progress, contributions=True
    )
    frame["image"] = tiles.describe(records) if tiles is not None else None
    frame["heatmap"] = None
    frame["overlay"] = None
    frame["neighbour"] = None
    signed = False
    if model.featurizer is not None:
        assert tiles is not None  # a model with visual features was trained on tiles
        signed = write_heatmaps(model, records, tiles, frame, out, device=device, progress=progress)
    return frame, signed


# ------------------------------------------------------------------------------ Dask engine
#: Folders of the PNGs that tasks write (leftover temp files of dead attempts are removed).
PNG_FOLDERS = ("overlays", "heatmaps")


@dataclass(frozen=True)
class ExplainJob:
    """What a partition task needs (picklable; paths absolute)."""

    model_dir: str
    model_digest: str  # the per-worker model cache key (engines.cached_model)
    out: str  # the job's temporary output folder: PNGs go to <out>/overlays, <out>/heatmaps
    records: str  # <out>/_records.parquet
    tiles: Any  # a picklable tile recipe (engines.tile_recipe)
    dtypes: dict[str, Any]  # the client's record dtypes, restored after the Parquet round trip
    device: str = "cpu"
    threads: int | None = 1  # torch threads per task (one per worker thread)


def explain_partition(job: ExplainJob, part: Partition) -> tuple[pd.DataFrame, bool]:
    """The task run on a worker: its rows, its tiles, the cached model; its houses' PNGs."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    model = cached_model(job.model_dir, job.model_digest)
    tiles = cached_tiles(job.tiles)
    rows = _restore(read_rows(job.records, part.start, part.stop), job.dtypes)
    return explain_rows(model, rows, tiles, Path(job.out), device=job.device, progress=False)


def _restore(rows: pd.DataFrame, dtypes: dict[str, Any]) -> pd.DataFrame:
    """The rows with the client's dtypes (Parquet may read a column back in another one)."""
    for col, dtype in dtypes.items():
        if col in rows.columns and rows[col].dtype != dtype:
            rows[col] = rows[col].astype(dtype)
    return rows


def explain_on_dask(
    model_dir: str | Path,
    records: pd.DataFrame,
    tiles: Any,
    out: Path,
    *,
    options: dict[str, Any],
    scheduler: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    task: Callable[..., tuple[pd.DataFrame, bool]] = explain_partition,
) -> tuple[pd.DataFrame, bool]:
    """Explain ``records`` on Dask; PNGs land in ``out``. Returns the frame (index of
    ``records``, row order kept) and whether the maps are signed.

    ``options``: ``device``, ``progress`` and ``partitions`` (default: one per ``CHUNK`` rows).
    """
    parts = plan(len(records), chunk_size=CHUNK, partitions=options.get("partitions"))
    path = write_records(records, out / RECORDS_FILE, row_group_size=parts[0].rows)
    frame_of = records.drop(columns="geometry", errors="ignore")
    job = ExplainJob(
        model_dir=str(Path(model_dir).resolve()),
        model_digest=model_digest(model_dir),
        out=str(out.resolve()),
        records=str(path.resolve()),
        tiles=tile_recipe(tiles) if tiles is not None else None,
        dtypes=dict(frame_of.dtypes),
        device=options.get("device", "cpu"),
    )
    try:
        results = _run(job, parts, task, scheduler, workers, retries, options.get("progress"))
    finally:
        path.unlink(missing_ok=True)
        _clear_leftovers(out)
    frame = pd.concat([f for f, _ in results])
    if len(frame) != len(records):  # a bug, not a user error: never write a partial table
        raise RuntimeError(f"Dask explain returned {len(frame)} rows for {len(records)}")
    frame.index = records.index
    return frame, any(s for _, s in results)


def _run(
    job: ExplainJob,
    parts: list[Partition],
    task: Callable[..., tuple[pd.DataFrame, bool]],
    scheduler: str | None,
    workers: int | None,
    retries: int,
    progress: bool | None,
) -> list[tuple[pd.DataFrame, bool]]:
    """One task per partition; wait for all (:func:`houseprice.jobs.engines.run_partitions`)."""
    return run_partitions(
        task,
        job,
        parts,
        kind="explain",
        scheduler=scheduler,
        workers=workers,
        retries=retries,
        progress=progress,
    )


def _clear_leftovers(out: Path) -> None:
    """Remove temp files that attempts killed mid-write left (``.<name>.png.*.tmp``)."""
    for sub in PNG_FOLDERS:
        folder = out / sub
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


__all__ = [
    "CHUNK",
    "ExplainJob",
    "explain_on_dask",
    "explain_partition",
    "explain_rows",
    "write_heatmaps",
]
