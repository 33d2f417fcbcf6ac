"""The explain job's per-house work (prices, contributions, heatmap PNGs) and its Dask engine.

:func:`explain_rows` is what both engines run on each row-range partition of the table
(:func:`houseprice.jobs.stream.plan`, one per :data:`CHUNK` rows unless ``--partitions``): the
local engine in this process (:func:`houseprice.jobs.explain.explain_table`), the Dask engine
as one task per partition (:func:`explain_on_dask`). Either way a finished partition leaves its
houses' overlay/heatmap PNGs and its frame file ``part-NNNNN.parquet`` in the job's work folder
(:mod:`houseprice.jobs.explain_work`), so ``--resume`` can skip it.

For Dask the records are written once as ``_records.parquet`` into the work folder; a task
reads its rows, its own tiles and the model (loaded once per worker process:
:func:`houseprice.jobs.engines.cached_model`), runs :func:`explain_rows`, writes its PNGs and
its frame file on the worker and returns only a small :class:`PartDone`. The client reads the
frame files back in row order and writes the table, the evidence report and the map itself.

The work folder, the model folder and the tiles must be reachable under the same paths from
every worker (shared storage). A task that raises is retried ``retries`` times, one whose
worker dies is rescheduled; PNGs and frame files are written atomically (temp file + rename)
under the house's id / partition index, so a retry replaces only its own files (no
duplicates, nothing half-written).
"""

from __future__ import annotations

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
from houseprice.jobs.explain_work import clear_temp_files, part_done, restore_dtypes, write_part
from houseprice.jobs.outputs import safe_name
from houseprice.jobs.stream import RECORDS_FILE, Partition, model_digest
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
@dataclass(frozen=True)
class ExplainJob:
    """What a partition task needs (picklable; paths absolute)."""

    model_dir: str
    model_digest: str  # the per-worker model cache key (engines.cached_model)
    out: str  # the work folder: PNGs go to <out>/overlays, <out>/heatmaps, frames to <out>/part-*
    records: str  # <out>/_records.parquet
    tiles: Any  # a picklable tile recipe (engines.tile_recipe)
    dtypes: dict[str, Any]  # the client's record dtypes, restored after the Parquet round trip
    key: str  # the job key, written into each frame file's footer
    device: str = "cpu"
    threads: int | None = 1  # torch threads per task (one per worker thread)


@dataclass(frozen=True)
class PartDone:
    """What a task returns: which partition, its rows, whether its maps are signed."""

    index: int
    rows: int
    signed: bool


def explain_partition(job: ExplainJob, part: Partition) -> tuple[pd.DataFrame, bool]:
    """A partition's work on a worker: its rows, its tiles, the cached model; its PNGs."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    model = cached_model(job.model_dir, job.model_digest)
    tiles = cached_tiles(job.tiles)
    rows = restore_dtypes(read_rows(job.records, part.start, part.stop), job.dtypes)
    return explain_rows(model, rows, tiles, Path(job.out), device=job.device, progress=False)


def store_partition(
    job: ExplainJob,
    part: Partition,
    compute: Callable[..., tuple[pd.DataFrame, bool]] = explain_partition,
) -> PartDone:
    """The task run on a worker: ``compute`` the partition, write its frame file, report."""
    frame, signed = compute(job, part)
    write_part(Path(job.out), part, frame, key=job.key, signed=signed)
    return PartDone(index=part.index, rows=len(frame), signed=signed)


def explain_on_dask(
    model_dir: str | Path,
    records: pd.DataFrame,
    tiles: Any,
    work: Path,
    todo: list[Partition],
    *,
    key: str,
    options: dict[str, Any],
    scheduler: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    task: Callable[..., tuple[pd.DataFrame, bool]] = explain_partition,
) -> list[PartDone]:
    """Explain the partitions ``todo`` of ``records`` on Dask, one task each: PNGs and frame
    files land in the work folder ``work`` (read them with
    :func:`houseprice.jobs.explain_work.read_parts`). ``task`` computes one partition on a
    worker; ``options``: ``device`` and ``progress``.
    """
    if not todo:
        return []
    path = write_records(records, work / RECORDS_FILE, row_group_size=max(p.rows for p in todo))
    job = ExplainJob(
        model_dir=str(Path(model_dir).resolve()),
        model_digest=model_digest(model_dir),
        out=str(work.resolve()),
        records=str(path.resolve()),
        tiles=tile_recipe(tiles) if tiles is not None else None,
        dtypes=dict(records.drop(columns="geometry", errors="ignore").dtypes),
        key=key,
        device=options.get("device", "cpu"),
    )
    try:
        done = run_partitions(
            store_partition,
            job,
            todo,
            task,
            kind="explain",
            scheduler=scheduler,
            workers=workers,
            retries=retries,
            progress=options.get("progress"),
        )
    finally:
        path.unlink(missing_ok=True)
        clear_temp_files(work)
    missing = [p.index for p in todo if not part_done(work, p, key)]
    if missing:  # a bug, not a user error: never write a partial table
        raise RuntimeError(f"Dask explain left partitions {missing} without their frame file")
    return list(done)


__all__ = [
    "CHUNK",
    "ExplainJob",
    "PartDone",
    "explain_on_dask",
    "explain_partition",
    "explain_rows",
    "store_partition",
    "write_heatmaps",
]
