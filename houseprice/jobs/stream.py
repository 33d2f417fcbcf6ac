"""Streaming scoring jobs: fixed row-range partitions, atomic partition files, resume.

A scoring job over ``N`` records is cut into partitions of fixed row ranges (:func:`plan`).
Each partition is scored in chunks of ``chunk_size`` rows (tiles read per chunk, so memory is
flat in ``N``) and written to its own file in the *work folder*, first to a unique hidden temp
file and then renamed into place, so a partition file either covers its whole range or does not
exist. A file's name is its partition index (``part-00003.parquet``) and, for Parquet, its
footer records the range, the row count and the job key: ``--resume`` keeps every valid file
and scores only the missing ones, and a retried partition (a worker died) only ever replaces
its own file: no duplicates, no losses.

Output layouts (``--out``):

- ``X.parquet``: the work folder *is* the output: ``_job.json`` (written first: what the job is,
  so a resume can check it is the same job), ``part-NNNNN.parquet`` and ``manifest.json``
  (``houseprice-predictions``), written LAST: a folder without it is an unfinished run.
  Read it with :func:`read_predictions` (``pd.read_parquet`` trips over ``manifest.json``).
- ``X.csv``: partitions are CSV text pieces in a hidden sibling ``.X.csv.parts/``; at the end
  they are concatenated under one header into a temp file renamed to ``X.csv`` (byte-identical
  to the one-shot ``write_table`` output: cells neutralised by ``csv_safe`` per chunk, dates
  formatted as for the whole table, see :func:`date_anchor`), and the parts folder is removed.
- ``X.gpkg`` / ``X.geoparquet``: Parquet partitions in a hidden sibling ``.X.gpkg.parts/``,
  turned into GIS layers one partition at a time at the end (:mod:`.gis_out`).

The engines that run partitions (this process, or Dask workers) are :mod:`.engines`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from houseprice.artifacts import (
    MANIFEST_NAME,
    atomic_write_json,
    check_replaceable,
    sha256_file,
    tree_files,
    write_manifest,
)
from houseprice.errors import OutputExistsError, UserInputError
from houseprice.jobs.outputs import csv_safe

PREDICTIONS_KIND = "houseprice-predictions"
JOB_FILE = "_job.json"  # leading "_": Parquet readers skip it
RECORDS_FILE = "_records.parquet"  # the validated records, for workers (removed at the end)
DEFAULT_CHUNK = 2048
_META_KEY = b"houseprice"


# ------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Partition:
    """Rows ``start:stop`` of the records (positions, not labels), written as one file."""

    index: int
    start: int
    stop: int

    def name(self, fmt: str) -> str:
        return f"part-{self.index:05d}.{fmt}"

    @property
    def rows(self) -> int:
        return self.stop - self.start


def plan(n_rows: int, *, chunk_size: int, partitions: int | None = None) -> list[Partition]:
    """Fixed row ranges: ``partitions`` equal parts, or one per ``chunk_size`` rows."""
    if chunk_size < 1:
        raise UserInputError(f"--chunk-size must be at least 1, got {chunk_size}")
    if partitions is not None and partitions < 1:
        raise UserInputError(f"--partitions must be at least 1, got {partitions}")
    k = partitions if partitions is not None else -(-n_rows // chunk_size)
    k = max(1, min(k, n_rows))
    size = -(-n_rows // k)
    starts = range(0, max(n_rows, 1), max(size, 1))
    return [Partition(i, s, min(s + size, n_rows)) for i, s in enumerate(starts)]


@dataclass
class ScoringJob:
    """Everything a partition needs to be scored anywhere (picklable; paths are absolute)."""

    model_dir: str
    model_digest: str  # SHA-256 of the model's manifest.json (the per-worker cache key)
    work: str  # the folder partition files go to
    fmt: str  # "parquet" | "csv"
    chunk_size: int
    key: str  # digest of model + records + options + plan: what --resume compares
    contributions: bool = False
    device: str = "cpu"
    interval: float | None = None  # price-range level (None: the calibration's default)
    threads: int | None = None  # torch threads in a worker (None: leave as is)
    schema: pa.Schema | None = None  # Parquet: the one schema of every partition
    anchor: pd.DataFrame | None = field(default=None, repr=False)  # CSV: see date_anchor
    tiles: Any = None  # a TileSource, or a picklable recipe (engines.tile_recipe)


@dataclass
class PartResult:
    """What scoring one partition did (returned by workers; small)."""

    index: int
    rows: int
    n_fallback: int
    pid: int = 0
    model_loads: int = 0
    max_rss_mb: float = 0.0


def model_digest(model_dir: str | Path) -> str:
    return sha256_file(Path(model_dir) / MANIFEST_NAME)


def job_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def records_digest(records: pd.DataFrame) -> str:
    """SHA-256 of the validated records' values (what is scored; not the file's bytes)."""
    frame = pd.DataFrame(records.drop(columns="geometry", errors="ignore"))
    h = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------ formats of a part
def output_schema(probe: pd.DataFrame, records: pd.DataFrame) -> pa.Schema:
    """The Arrow schema of every partition, from a one-row probe of the output.

    Text columns that are empty in the probe (Arrow "null") take the type of the records'
    values, else string, so every partition has the same schema whatever its rows hold.
    """
    schema = pa.Schema.from_pandas(probe, preserve_index=False)
    for i, f in enumerate(schema):
        if pa.types.is_null(f.type):
            typ = pa.string()
            vals = records[f.name].dropna() if f.name in records.columns else ()
            if len(vals):
                typ = pa.array(vals.iloc[:1000].tolist()).type
            schema = schema.set(i, pa.field(f.name, typ))
    return schema


def date_anchor(records: pd.DataFrame) -> pd.DataFrame | None:
    """One row holding, per datetime column, the value with the finest time of day.

    pandas writes a datetime column as dates only, or with seconds / ms / us / ns, by the
    finest value in the *whole* column. Each CSV chunk is formatted with this row put first
    (then dropped), so every chunk gets the same format as the one-shot table would.
    """
    cols = [c for c in records.columns if pd.api.types.is_datetime64_any_dtype(records[c])]
    if not cols:
        return None
    rows = {}
    for c in cols:
        col = records[c]
        if getattr(col.dt, "tz", None) is not None:
            col = col.dt.tz_localize(None)
        # ticks of the column's own unit (a date in year 1 does not fit in nanoseconds)
        values = col.to_numpy()
        per_s = 10 ** {"s": 0, "ms": 3, "us": 6, "ns": 9}[np.datetime_data(values.dtype)[0]]
        ticks = values.view("i8")
        ok = ~np.isnat(values)
        steps = [m for m in (86_400 * per_s, per_s, per_s // 10**3, per_s // 10**6) if m > 1]
        rank = sum(((ticks % m) != 0).astype(int) for m in steps)
        rows[c] = records[c].iloc[int(np.argmax(np.where(ok, rank, -1)))] if ok.any() else pd.NaT
    return pd.DataFrame({c: [v] for c, v in rows.items()})


def csv_header(frame: pd.DataFrame) -> str:
    """The header line ``write_table`` would write for a table with ``frame``'s columns."""
    return csv_safe(frame.iloc[:0]).to_csv(index=False)


def csv_text(frame: pd.DataFrame, anchor: pd.DataFrame | None) -> str:
    """CSV rows of a chunk (no header; cells neutralised), dates formatted as for the table."""
    safe = csv_safe(frame)
    if anchor is None or len(safe) == 0:
        return safe.to_csv(index=False, header=False)
    first = safe.iloc[:1].copy()
    for c in anchor.columns:
        if c in first.columns:
            first[c] = anchor[c].to_numpy()
    head = first.to_csv(index=False, header=False)
    text = pd.concat([first, safe]).to_csv(index=False, header=False)
    assert text.startswith(head)  # the anchor row formats alike alone and first
    return text[len(head) :]


def arrow_chunk(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    return table.replace_schema_metadata(schema.metadata)


# -------------------------------------------------------------------------- one partition
ChunkHook = Callable[[pd.DataFrame], None]


def score_partition(
    job: ScoringJob,
    part: Partition,
    records: pd.DataFrame,
    *,
    model: Any,
    tiles: Any,
    on_chunk: ChunkHook | None = None,
) -> PartResult:
    """Score ``records`` (the partition's rows) chunk by chunk into its atomic file.

    The file is written to a hidden temp name unique to this attempt and renamed onto
    ``part-NNNNN.<fmt>`` only once complete: a retried or duplicated attempt replaces the same
    file with the same content. ``on_chunk`` sees each scored chunk after it was written.
    """
    work = Path(job.work)
    final = work / part.name(job.fmt)
    tmp = work / f".{final.name}.{uuid.uuid4().hex[:12]}.tmp"
    n_fallback = 0
    writer = None
    try:
        with open(tmp, "wb") as fh:
            if job.fmt == "parquet":
                assert job.schema is not None
                schema = job.schema.with_metadata(
                    {**(job.schema.metadata or {}), **part_footer(part, job.key)}
                )
                writer = pq.ParquetWriter(fh, schema)
            for s in range(0, len(records), job.chunk_size):
                frame = model.predict_frame(
                    records.iloc[s : s + job.chunk_size],
                    tiles,
                    device=job.device,
                    contributions=job.contributions,
                    interval=job.interval,
                )
                n_fallback += int((~frame["used_visual"]).sum())
                if writer is not None:
                    writer.write_table(arrow_chunk(frame, writer.schema))
                else:
                    fh.write(csv_text(frame, job.anchor).encode("utf-8"))
                if on_chunk is not None:
                    on_chunk(frame)
            if writer is not None:
                writer.close()
                writer = None
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if writer is not None:
            writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return PartResult(index=part.index, rows=len(records), n_fallback=n_fallback, pid=os.getpid())


def part_footer(part: Partition, key: str) -> dict[bytes, bytes]:
    """The Parquet schema metadata that names a partition file's range and job key."""
    meta = {"index": part.index, "start": part.start, "stop": part.stop, "job": key}
    return {_META_KEY: json.dumps(meta).encode()}


def parquet_part_done(path: Path, part: Partition, key: str) -> bool:
    """``path`` is a Parquet file whose footer (:func:`part_footer`) and row count say it is
    the whole range of ``part`` of the job ``key``."""
    if not path.is_file():
        return False
    try:
        meta = pq.read_metadata(path)
        info = json.loads(meta.schema.to_arrow_schema().metadata[_META_KEY])
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
        return False
    want = json.loads(part_footer(part, key)[_META_KEY])
    return info == want and meta.num_rows == part.rows


def part_is_done(job: ScoringJob, part: Partition) -> bool:
    """A partition file exists and (Parquet) its footer says it is this job's whole range."""
    path = Path(job.work) / part.name(job.fmt)
    if job.fmt != "parquet":
        return path.is_file()  # renamed into place only when complete; _job.json says which job
    return parquet_part_done(path, part, job.key)


def fallback_count(job: ScoringJob, part: Partition) -> int:
    """#rows priced without visual features in a finished partition (for resumed runs)."""
    path = Path(job.work) / part.name(job.fmt)
    if job.fmt == "parquet":
        used = pq.read_table(path, columns=["used_visual"]).column(0).to_numpy()
        return int((~used.astype(bool)).sum())
    return -1  # unknown for CSV pieces: the caller re-reads the finished CSV


# --------------------------------------------------------------------- the work folder
OURS = ("part-", ".part-", JOB_FILE, RECORDS_FILE, MANIFEST_NAME)


def _clear(work: Path) -> None:
    """Delete an earlier run's files (the manifest first); refuse if anything else is there."""
    names = [p.name for p in work.iterdir()]
    foreign = [n for n in names if not n.startswith(OURS)]
    if foreign:
        raise OutputExistsError(f"{work} holds files houseprice did not write ({foreign[0]})")
    for n in sorted(names, key=lambda n: n != MANIFEST_NAME):
        (work / n).unlink()


@dataclass(frozen=True)
class WorkKind:
    """Whose work folder: the ``_job.json`` format tag, the command named in errors, the
    options that change the partition layout, and how an earlier run's files are cleared
    (``clear`` refuses a folder holding anything houseprice did not write)."""

    job_format: str
    command: str
    layout: str
    clear: Callable[[Path], None]


PREDICT_WORK = WorkKind(PREDICTIONS_KIND + "-job", "predict", "--chunk-size/--partitions", _clear)


def work_folder(out: Path) -> Path:
    """Where the partition files go: the output folder (Parquet) or a hidden sibling (CSV,
    and the Parquet partitions of a GeoPackage / GeoParquet output)."""
    hidden = out.suffix.lower() in (".csv", ".gpkg", ".geoparquet")
    return out.with_name(f".{out.name}.parts") if hidden else out


def check_work(work: Path, *, overwrite: bool, resume: bool, kind: WorkKind = PREDICT_WORK) -> None:
    """Refuse early (before loading anything) an output that this run may not touch."""
    if work.is_dir() and any(work.iterdir()):
        finished = (work / MANIFEST_NAME).exists()
        read_job(work, kind)  # a folder houseprice did not write: refused whatever the flags
        if not (overwrite or resume):
            state = "a finished run" if finished else "an unfinished run (pass --resume)"
            raise OutputExistsError(
                f"{work} exists and holds {state}; pass --overwrite to replace it"
            )
    elif work.exists() or work.is_symlink():
        _check_file_at(work, overwrite)


def _check_file_at(work: Path, overwrite: bool) -> None:
    """A file (not a folder) where the work folder goes: ``--overwrite`` replaces it only when
    it is the output the user named; a hidden sibling path is houseprice's own choice, so a
    file there was put by someone else and is never deleted."""
    if work.name.startswith("."):
        raise OutputExistsError(
            f"{work} is a file, where houseprice keeps the run's work folder; move it away"
        )
    if not overwrite:
        raise OutputExistsError(f"{work} exists; pass --overwrite to replace it")


def prepare_work(
    work: Path,
    job_info: dict[str, Any],
    *,
    overwrite: bool,
    resume: bool,
    kind: WorkKind = PREDICT_WORK,
) -> Path:
    """Make ``work`` ready for this job; with ``resume`` keep an earlier run of the same job.

    ``job_info`` (with ``key``) is written to ``_job.json`` first. A folder houseprice did not
    write is never touched; a finished one is replaced only with ``overwrite``.
    """
    if work.is_file() or work.is_symlink():
        _check_file_at(work, overwrite)
        work.unlink()
    if work.is_dir() and any(work.iterdir()):
        old = read_job(work, kind)
        finished = (work / MANIFEST_NAME).exists()
        if resume and old.get("key") == job_info["key"]:
            with contextlib.suppress(FileNotFoundError):  # unfinished again until the end
                (work / MANIFEST_NAME).unlink()
            return work
        if resume and not overwrite:
            raise UserInputError(
                f"{work} holds a run of another job (other model, input, options or "
                f"{kind.layout}); pass --overwrite to start over"
            )
        check_work(work, overwrite=overwrite, resume=False, kind=kind)
        if finished:
            check_replaceable(work)
        kind.clear(work)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(work / JOB_FILE, job_info)
    return work


def read_job(work: Path, kind: WorkKind = PREDICT_WORK) -> dict[str, Any]:
    """The ``_job.json`` of a work folder of ``kind``; anything else was not written by us."""
    try:
        obj = json.loads((work / JOB_FILE).read_text(encoding="utf-8"))
        if not isinstance(obj, dict) or obj.get("format") != kind.job_format:
            raise ValueError
        return obj
    except (OSError, ValueError) as err:
        raise OutputExistsError(
            f"{work} exists and was not written by houseprice {kind.command}; choose another --out"
        ) from err


def finish_parquet(work: Path) -> Path:
    """Drop temp files and the records copy; write ``manifest.json`` last."""
    for p in work.iterdir():
        if p.name.startswith(".part-") or p.name == RECORDS_FILE:
            p.unlink(missing_ok=True)
    write_manifest(work, kind=PREDICTIONS_KIND, version=1, files=tree_files(work))
    return work


def finish_csv(work: Path, out: Path, header: str, parts: list[Partition]) -> Path:
    """Header + every CSV piece in order into a temp file renamed onto ``out``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header.encode("utf-8"))
            for p in parts:
                with open(work / p.name("csv"), "rb") as src:
                    shutil.copyfileobj(src, fh, 1 << 20)
            fh.flush()
            os.fsync(fh.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return out


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A prediction output as one frame: a CSV, a Parquet file or a finished partition folder."""
    from houseprice.artifacts import read_manifest

    path = Path(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    if path.suffix.lower() == ".gpkg":
        import pyogrio

        return pyogrio.read_dataframe(path, layer="houses")
    if not path.is_dir():
        return pd.read_parquet(path)
    read_manifest(path, kind=PREDICTIONS_KIND, version=1, hint="an unfinished run? --resume")
    parts = sorted(p for p in path.glob("part-*.parquet"))
    return pq.read_table(parts).to_pandas() if parts else pd.DataFrame()


def job_info(*, kind: WorkKind = PREDICT_WORK, **fields: Any) -> dict[str, Any]:
    """The ``_job.json`` content: the format tag, the key and what went into it."""
    info = {"format": kind.job_format, "format_version": 1, **fields}
    info["key"] = job_key({k: v for k, v in info.items() if k != "partitions_written"})
    return info


__all__ = [
    "DEFAULT_CHUNK",
    "PREDICTIONS_KIND",
    "PartResult",
    "Partition",
    "ScoringJob",
    "WorkKind",
    "check_work",
    "csv_header",
    "csv_text",
    "date_anchor",
    "finish_csv",
    "finish_parquet",
    "output_schema",
    "parquet_part_done",
    "part_footer",
    "part_is_done",
    "plan",
    "prepare_work",
    "read_job",
    "read_predictions",
    "score_partition",
    "work_folder",
]
