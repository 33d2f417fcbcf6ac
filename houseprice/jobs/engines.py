"""Where partitions of a scoring job run: this process (``local``) or Dask workers (``dask``).

Both engines run :func:`houseprice.jobs.stream.score_partition` on the partitions still to do
and return one :class:`~houseprice.jobs.stream.PartResult` per partition; the partition files
they write are the same (docs/scaling.md).

The Dask engine submits one task per partition. A worker reads its partition's rows from the
records copy in the work folder (``_records.parquet``), its own tiles, and the model from a
per-process cache keyed by the model folder's path and manifest digest, so each worker process
loads the model once however many partitions it scores. The model folder, the input tiles and
the output folder must be reachable under the same paths from every worker (shared storage).
A task that raises is retried ``retries`` times; a task whose worker dies is rescheduled by the
scheduler (``distributed.scheduler.allowed-failures``, 3 by default). Partition files are
atomic and named by index, so a retried or doubled partition replaces only its own file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import resource
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from houseprice.data.houses.columns import REJECTED_COLUMNS
from houseprice.errors import FormatError, OutputExistsError, UserInputError
from houseprice.jobs.guards import (
    check_dask_options,
    check_scheduler,
    check_side_file,
    locks_output,
)
from houseprice.jobs.stream import (
    DEFAULT_CHUNK,
    RECORDS_FILE,
    ChunkHook,
    Partition,
    PartResult,
    ScoringJob,
    check_work,
    csv_header,
    date_anchor,
    fallback_count,
    finish_csv,
    finish_parquet,
    job_info,
    model_digest,
    output_schema,
    part_is_done,
    plan,
    prepare_work,
    read_predictions,
    records_digest,
    score_partition,
    work_folder,
)
from houseprice.runtime import ALLOCATOR_ENV, cpu_isa_env

ENGINES = ("local", "dask")

# ------------------------------------------------------------- per-process caches (workers)
_MODELS: dict[tuple[str, str], Any] = {}
_TILES: dict[str, Any] = {}  # (thread, recipe) -> open tile source
_STATS = {"model_loads": 0}


def cached_model(model_dir: str, digest: str) -> Any:
    """The model of ``model_dir``, loaded once per process (and again only if it changed)."""
    key = (model_dir, digest)
    if key not in _MODELS:
        from houseprice.valuation.model import HousePriceModel

        found = model_digest(model_dir)
        if found != digest:
            raise FormatError(
                f"{model_dir}: this worker sees another model folder than the client (manifest "
                "digest differs); workers need the same model folder under the same path"
            )
        _MODELS.clear()  # one model per worker process
        _MODELS[key] = HousePriceModel.load(model_dir)
        _STATS["model_loads"] += 1
    return _MODELS[key]


def tile_recipe(tiles: Any) -> Any:
    """A picklable description of a tile source that a worker can open itself."""
    from houseprice.data.houses.imagery import OrthophotoTiles
    from houseprice.data.houses.source import FolderTiles

    if isinstance(tiles, OrthophotoTiles):
        paths = [str(r.path.resolve()) for r in tiles.rasters]
        return ("orthophoto", tuple(paths), tiles.tile_meters, tiles.max_nodata)
    if isinstance(tiles, FolderTiles):
        return FolderTiles(tiles.root.resolve())
    return tiles  # any other TileSource must be picklable itself


def cached_tiles(recipe: Any) -> Any:
    """The tile source of a recipe, opened once per process (rasters stay open)."""
    if not (isinstance(recipe, tuple) and recipe and recipe[0] == "orthophoto"):
        return recipe
    key = f"{threading.get_ident()} {recipe!r}"  # GDAL handles are per thread
    if key not in _TILES:
        from houseprice.data.houses.imagery import OrthophotoTiles

        _, paths, meters, nodata = recipe
        _TILES[key] = OrthophotoTiles(list(paths), tile_meters=meters, max_nodata=nodata)
    return _TILES[key]


def _finish(result: PartResult) -> PartResult:
    result.model_loads = _STATS["model_loads"]
    result.max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# ------------------------------------------------------------------------------ local engine
def run_local(
    job: ScoringJob,
    todo: list[Partition],
    records: pd.DataFrame,
    *,
    model: Any,
    tiles: Any,
    progress: bool = False,
    on_chunk: ChunkHook | None = None,
) -> list[PartResult]:
    """Score ``todo`` one after the other in this process."""
    from tqdm.auto import tqdm

    out = []
    with tqdm(
        total=sum(p.rows for p in todo), desc="houses", unit="house", disable=not progress
    ) as bar:
        for p in todo:
            rows = records.iloc[p.start : p.stop]
            out.append(
                _finish(score_partition(job, p, rows, model=model, tiles=tiles, on_chunk=on_chunk))
            )
            bar.update(p.rows)
    return out


# ------------------------------------------------------------------------------- Dask engine
def write_records(records: pd.DataFrame, path: Path, *, row_group_size: int) -> Path:
    """The validated records (no geometry) as Parquet for workers to read by row range."""
    frame = pd.DataFrame(records.drop(columns="geometry", errors="ignore"))
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), tmp, row_group_size=row_group_size
    )
    os.replace(tmp, path)
    return path


def read_rows(path: str | Path, start: int, stop: int) -> pd.DataFrame:
    """Rows ``start:stop`` of a Parquet file, reading only the row groups that hold them."""
    pf = pq.ParquetFile(path)
    groups, first, pos = [], None, 0
    for g in range(pf.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if pos < stop and pos + n > start:
            groups.append(g)
            first = pos if first is None else first
        pos += n
    table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
    lo = start - (first or 0)
    return table.slice(lo, stop - start).to_pandas().set_axis(range(start, stop), axis=0)


def dask_partition(
    job: ScoringJob, part: Partition, records_path: str, on_chunk: ChunkHook | None = None
) -> PartResult:
    """The task run on a worker: its rows, its tiles, the cached model, one partition file."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    model = cached_model(job.model_dir, job.model_digest)
    tiles = cached_tiles(job.tiles)
    rows = read_rows(records_path, part.start, part.stop)
    return _finish(score_partition(job, part, rows, model=model, tiles=tiles, on_chunk=on_chunk))


#: Dask config for the LocalCluster:
#: - the workers start with houseprice's allocator settings (:data:`houseprice.runtime.
#:   ALLOCATOR_ENV`), set before the process starts as glibc reads them only then. Dask's own
#:   default (``MALLOC_TRIM_THRESHOLD_=65536``) returns freed memory to the OS at once and every
#:   chunk's activations are page-faulted in again; a task thread's own arena maps big blocks
#:   afresh whatever the thresholds (benchmarks/results/allocator.md, docs/scaling.md);
#: - no statistical profiler in the workers (it samples the task thread's stack every 10 ms,
#:   for a dashboard this cluster does not have): measured 2-8% of a partition's time, paired
#:   runs on two workers at once (docs/scaling.md).
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    **{f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in ALLOCATOR_ENV.items()},
    "distributed.worker.profile.enabled": False,
}

#: How long to try to reach an existing scheduler (``--scheduler``) before giving up.
SCHEDULER_TIMEOUT = "10s"


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A client of the cluster at ``scheduler``, or of a new LocalCluster (one worker per core).

    The LocalCluster's workers are processes with one thread each, and their OpenMP/torch
    threads are capped to one so that ``workers`` workers use ``workers`` cores.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise UserInputError(
            "--engine dask needs dask.distributed: pip install 'dask[distributed]'"
        ) from err
    if scheduler is not None:
        check_scheduler(scheduler)  # connection and handshake, within SCHEDULER_SECONDS
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError, ValueError, TypeError) as err:
            raise UserInputError(
                f"--scheduler {scheduler!r}: cannot connect to a Dask scheduler there within "
                f"{SCHEDULER_TIMEOUT} ({err}); give its address as tcp://host:8786, or leave "
                "--scheduler out to start a LocalCluster"
            ) from err
        with client:
            yield client
        return
    import dask

    n = workers or os.cpu_count() or 1
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.update(cpu_isa_env())  # the kernels this process was pinned to (runtime.pin_cpu_isa)
    with (
        dask.config.set(LOCAL_CLUSTER_CONFIG),
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env=env,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_partitions(
    task: Callable[..., Any],
    job: Any,
    parts: list[Partition],
    *extra: Any,
    kind: str,
    scheduler: str | None,
    workers: int | None,
    retries: int,
    progress: bool | None,
) -> list[Any]:
    """``task(job, part, *extra)`` as one Dask task per partition; wait for all, in order.

    Keys are ``houseprice-<kind>-<run>-<index>``; a task that raises is retried ``retries``
    times (a dead worker's task is rescheduled by the scheduler). Dask's text progress bar is
    shown in a terminal (a dashboard: connect with --scheduler).
    """
    from distributed import progress as show_progress

    with dask_client(scheduler, workers) as client:
        run = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                task,
                job,
                p,
                *extra,
                key=f"houseprice-{kind}-{run}-{p.index:05d}",
                retries=retries,
                pure=False,
            )
            for p in parts
        ]
        if progress and futures and sys.stdout.isatty():
            show_progress(futures)
        return list(client.gather(futures))


def run_dask(
    job: ScoringJob,
    todo: list[Partition],
    records_path: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = False,
    retries: int = 2,
    task: Callable[..., PartResult] = dask_partition,
) -> list[PartResult]:
    """Score the partitions ``todo`` on the cluster (:func:`run_partitions`)."""
    return run_partitions(
        task,
        job,
        todo,
        str(records_path),
        kind="predict",
        scheduler=scheduler,
        workers=workers,
        retries=retries,
        progress=progress,
    )


# ------------------------------------------------------------------------------ the driver
@dataclass
class ScoreSummary:
    """What a scoring run did: rows, fallbacks, partitions (scored now / kept from before)."""

    path: Path
    rows: int
    n_fallback: int
    partitions: int
    reused: int
    engine: str
    results: list[PartResult] = field(default_factory=list)
    frame: pd.DataFrame | None = None


def check_target(out: Path, table: str | Path, *, overwrite: bool, resume: bool) -> str:
    """The output format (``csv`` / ``parquet`` / ``gis``); refuse a target this run may not
    write."""
    from houseprice.jobs.gis_out import check_gis_target, is_gis

    if out.exists() and out.resolve() == Path(table).resolve():
        raise OutputExistsError(f"{out} is the input table; choose another --out")
    if is_gis(out):
        check_gis_target(out, overwrite=overwrite, inputs=(table,))
        check_work(work_folder(out), overwrite=overwrite, resume=resume)
        return "gis"
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq") or (suffix == ".csv" and out.is_dir()):
        if out.is_dir():
            raise OutputExistsError(f"{out} is a folder; --out must name a .csv or .parquet file")
        raise UserInputError(f"{out}: output must end in .csv, .parquet, .gpkg or .geoparquet")
    if suffix == ".csv":
        if out.exists() and not overwrite:
            raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
        check_work(work_folder(out), overwrite=overwrite, resume=resume)
        return "csv"
    check_work(out, overwrite=overwrite, resume=resume)
    return "parquet"


def build_job(
    model: Any, model_dir: Path, ds: Any, out: Path, fmt: str, *, options: dict[str, Any]
) -> tuple[ScoringJob, list[Partition], dict[str, Any], str]:
    """The job spec (schema/anchor from a one-row probe), its plan, _job.json and CSV header."""
    rec = ds.records
    probe = model.predict_frame(
        rec.iloc[:1],
        ds.tiles,
        device=options["device"],
        contributions=options["contributions"],
        interval=options["interval"],
    )
    parts = plan(len(rec), chunk_size=options["chunk_size"], partitions=options["partitions"])
    recipe = tile_recipe(ds.tiles)
    info = job_info(
        model=str(model_dir.resolve()),
        model_digest=model_digest(model_dir),
        records=records_digest(rec),
        rows=len(rec),
        tiles=_describe_tiles(recipe),
        contributions=options["contributions"],
        interval=options["interval"],
        output=fmt,
        chunk_size=options["chunk_size"],
        partitions=[[p.start, p.stop] for p in parts],
        columns=[str(c) for c in probe.columns],
    )
    job = ScoringJob(
        model_dir=info["model"],
        model_digest=info["model_digest"],
        work=str(work_folder(out).resolve()),
        fmt="csv" if fmt == "csv" else "parquet",  # a GIS output is made from Parquet parts
        chunk_size=options["chunk_size"],
        key=info["key"],
        contributions=options["contributions"],
        device=options["device"],
        interval=options["interval"],
        schema=output_schema(probe, rec) if fmt != "csv" else None,
        anchor=date_anchor(rec) if fmt == "csv" else None,
        tiles=recipe,
    )
    return job, parts, info, csv_header(probe)


def _describe_tiles(recipe: Any) -> Any:
    """What the job key records of the tiles: folder root, or rasters with size and mtime."""
    if isinstance(recipe, tuple):
        return [[p, Path(p).stat().st_size, Path(p).stat().st_mtime_ns] for p in recipe[1]]
    return repr(recipe)


@locks_output("out")  # one run at a time per output (houseprice.jobs.guards)
def score_table(
    model_dir: str | Path,
    table: str | Path,
    out: str | Path,
    *,
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = False,
    imagery: list[Path] | None = None,
    contributions: bool = False,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    partitions: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    resume: bool = False,
    interval: float | None = None,
    retries: int = 2,
    collect: bool = False,
    task: Callable[..., PartResult] | None = None,
    crs: str | None = None,
) -> ScoreSummary:
    """Price every row of ``table`` into ``out`` partition by partition (see :mod:`.stream`).

    ``collect`` also returns the whole frame (memory then grows with the table). ``crs``: the
    CRS of a ``.gpkg`` / ``.geoparquet`` output's layers (default EPSG:4326). ``interval`` is
    the level of the price ranges of a calibrated model (None: 0.8).
    """
    from houseprice.jobs.houses import interval_level, open_houses
    from houseprice.valuation.model import HousePriceModel

    if engine not in ENGINES:
        raise UserInputError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    check_dask_options(engine, scheduler=scheduler, workers=workers)
    out = Path(out)
    interval = interval_level(interval)
    fmt = check_target(out, table, overwrite=overwrite, resume=resume)
    gis_crs = _gis_crs(fmt, crs, table)
    if imagery:  # refused rows go to a side file: never over a user's own
        check_side_file(rejected_path(out), REJECTED_COLUMNS, overwrite=overwrite, resume=resume)
    if engine == "dask":
        check_scheduler(scheduler)  # before the work folder exists
    model = HousePriceModel.load(model_dir)
    ds, source = open_houses(table, imagery=imagery, tile_meters=model.tile_meters)
    opts = {
        "device": device,
        "contributions": contributions,
        "chunk_size": chunk_size,
        "interval": interval,
    }
    try:
        model.check_columns(ds.records)
        job, parts, info, header = build_job(
            model, Path(model_dir), ds, out, fmt, options={**opts, "partitions": partitions}
        )
        work = prepare_work(Path(job.work), info, overwrite=overwrite, resume=resume)
        todo = [p for p in parts if not (resume and part_is_done(job, p))]
        frames: list[pd.DataFrame] = []
        keep = frames.append if collect and engine == "local" and len(todo) == len(parts) else None
        if engine == "local":
            results = run_local(
                job, todo, ds.records, model=model, tiles=ds.tiles, progress=progress, on_chunk=keep
            )
        else:
            job.threads = 1
            records_path = write_records(ds.records, work / RECORDS_FILE, row_group_size=chunk_size)
            results = run_dask(
                job,
                todo,
                records_path,
                scheduler=scheduler,
                workers=workers,
                progress=progress,
                retries=retries,
                **({"task": task} if task is not None else {}),
            )
    finally:
        if source is not None:
            source.close()
    done = {r.index for r in results}
    n_fallback = sum(r.n_fallback for r in results)
    n_fallback += sum(_fallbacks(job, p, header) for p in parts if p.index not in done)
    _warn(model, ds.records, source, table, out, n_fallback)
    if fmt == "csv":
        finish_csv(work, out, header, parts)
    elif fmt == "gis":
        from houseprice.jobs.gis_out import finish_gis

        finish_gis(work, out, [work / p.name("parquet") for p in parts], gis_crs)
    else:
        finish_parquet(work)
    frame = None
    if collect:
        frame = pd.concat(frames) if keep is not None else read_predictions(out)
    return ScoreSummary(
        path=out,
        rows=len(ds.records),
        n_fallback=n_fallback,
        partitions=len(parts),
        reused=len(parts) - len(todo),
        engine=engine,
        results=results,
        frame=frame,
    )


def _gis_crs(fmt: str, crs: str | None, table: str | Path) -> Any:
    """The layer CRS of a GIS output (``"input"``: the input table's); ``crs`` given for
    another output is refused."""
    if fmt != "gis":
        if crs is not None:
            raise UserInputError("--crs applies only to a .gpkg or .geoparquet --out")
        return None
    from houseprice.jobs.gis_out import layer_crs

    return layer_crs(crs, table)


def rejected_path(out: Path) -> Path:
    """Where a run with ``--imagery`` lists the rows it refused (next to ``out``)."""
    return out.with_suffix(".rejected.csv")


def _fallbacks(job: ScoringJob, part: Partition, header: str) -> int:
    """#fallback rows of a partition kept from an earlier run."""
    n = fallback_count(job, part)
    if n >= 0:
        return n
    names = pd.read_csv(io.StringIO(header)).columns
    piece = pd.read_csv(
        Path(job.work) / part.name("csv"), header=None, names=names, usecols=["used_visual"]
    )
    return int((~piece["used_visual"].astype(bool)).sum())


def _warn(
    model: Any, records: pd.DataFrame, source: Any, table: Any, out: Path, n_fallback: int
) -> None:
    """The warnings ``predict`` has always given: refused rows, fallbacks, extrapolation."""
    from houseprice.jobs.houses import warn_extrapolation, warn_uncalibrated
    from houseprice.jobs.outputs import write_csv

    if source is not None and source.refusals:
        rejected = rejected_path(out)
        write_csv(source.rejected(), rejected)
        warnings.warn(
            f"{len(source.refusals)} problem(s) in {table}: those rows could not be priced; "
            f"see {rejected}",
            stacklevel=3,
        )
    if model.featurizer is not None and n_fallback:
        warnings.warn(
            f"{n_fallback} of {len(records)} rows had no usable tile and were priced by "
            "the no-visual fallback model (see columns used_visual, tile_problem)",
            stacklevel=3,
        )
    warn_extrapolation(model, records)
    warn_uncalibrated(model)


__all__ = [
    "ENGINES",
    "ScoreSummary",
    "cached_model",
    "cached_tiles",
    "dask_client",
    "dask_partition",
    "read_rows",
    "run_dask",
    "run_local",
    "score_table",
    "tile_recipe",
    "write_records",
]
