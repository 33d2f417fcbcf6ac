"""The explain job's work folder: what makes an interrupted ``houseprice explain`` resumable.

This module owns the hidden sibling ``.<out name>.explain-work/`` of ``--out`` (e.g.
``.expl.explain-work/`` for ``--out expl``): its name, its ``_job.json``, its partition frame
files, clearing an earlier run out of it, and turning it into ``--out`` at the end.

While a run is under way the folder holds:

- ``_job.json`` (written first): format ``houseprice-explanations-job``, the job key and what
  went into it: the model (path and manifest digest), the input table's path, the validated
  records (digest, row count), the tiles, the options that change the output (``test_only``,
  ``max_evidence``, ``label_masks``, the map target) and the partition row ranges. The ranges
  are fixed by :data:`~houseprice.jobs.explain_dask.CHUNK` (or by ``--partitions``), so the
  engine, the number of workers and the device are not part of the key: a run interrupted on
  one engine can be resumed on the other when both use the default layout.
- ``overlays/<id>.png`` and ``heatmaps/<id>.png``, written by the partitions (atomically,
  under the house's id, so a redone partition replaces only its own houses' files).
- ``part-NNNNN.parquet``: one partition's frame (one row per house: prices, contributions,
  PNG paths, neighbours), written after its PNGs via a temp file + rename, its footer naming
  the partition's range and the job key (:func:`houseprice.jobs.stream.part_footer`). Only a
  file whose footer names *this* job and range, with the range's row count, counts as done.
- ``_records.parquet`` while Dask workers read their rows (engine ``dask``).

At the end the caller reads the partition frames back in row order (:func:`read_parts`) and
writes the table, the report and the map into the folder; then :func:`finish` removes the
partition files, the records copy and ``_job.json`` (they are run state, not output: the
finished folder holds exactly what one uninterrupted run writes), writes ``manifest.json``
last and renames the folder onto ``--out`` (an existing ``--out`` is replaced only with
``overwrite`` and only if houseprice wrote it, as :func:`houseprice.artifacts.atomic_directory`
does). A process killed between the manifest and the rename leaves a folder
:func:`unmoved_output` recognises: it is run again (not moved: it names no job). The checks
(foreign folder, unfinished run, other job) are
:func:`houseprice.jobs.stream.check_work` / :func:`~houseprice.jobs.stream.prepare_work`,
shared with ``houseprice predict``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from houseprice.artifacts import (
    MANIFEST_NAME,
    atomic_write_bytes,
    check_output_folder,
    check_replaceable,
    read_json_object,
    swap_in_folder,
    tree_files,
    write_manifest,
)
from houseprice.errors import FormatError, OutputExistsError
from houseprice.jobs.stream import (
    JOB_FILE,
    RECORDS_FILE,
    Partition,
    WorkKind,
    check_work,
    job_info,
    parquet_part_done,
    part_footer,
    prepare_work,
    read_job,
)

EXPLANATIONS_KIND = "houseprice-explanations"
WORK_SUFFIX = ".explain-work"
#: Folders of the PNGs that partitions write.
PNG_FOLDERS = ("overlays", "heatmaps")
#: Files of a run in the work folder (besides the PNG folders, partitions and the map).
RUN_FILES = (JOB_FILE, RECORDS_FILE, "explanations.csv", "report.json", "report.md", MANIFEST_NAME)
_FRAME_KEY = b"houseprice-explain"  # footer entry: signed maps?, the frame's dtypes


def work_folder(out: Path) -> Path:
    """The work folder of ``--out``: ``.<out name>.explain-work`` next to it."""
    return out.with_name(f".{out.name}{WORK_SUFFIX}")


# ------------------------------------------------------------------- starting and clearing
def _clear(work: Path) -> None:
    """Delete an earlier run (the manifest first); refuse if anything else is there."""
    old = read_job(work, EXPLAIN_WORK)
    names = set(RUN_FILES)
    if old.get("map_inside"):
        rel = Path(str(old["map"]))
        names |= {rel.parts[0], rel.with_suffix("").parts[0]}  # the page, or a folder map
    foreign = [p.name for p in work.iterdir() if not _ours(p, names)]
    if foreign:
        raise OutputExistsError(f"{work} holds files houseprice did not write ({foreign[0]})")
    (work / MANIFEST_NAME).unlink(missing_ok=True)
    for p in sorted(work.iterdir()):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _ours(path: Path, names: set[str]) -> bool:
    """A work-folder entry that a run of explain writes (hidden: an atomic write's temp file)."""
    if path.name in PNG_FOLDERS:
        return path.is_dir() and all(
            p.is_file() and (p.suffix == ".png" or p.name.startswith(".")) for p in path.iterdir()
        )
    if path.name.startswith("."):
        rest = path.name[1:]
        return rest.startswith("part-") or any(rest.startswith(f"{n}.") for n in names)
    return path.name in names or re.fullmatch(r"part-\d{5,}\.parquet", path.name) is not None


EXPLAIN_WORK = WorkKind(EXPLANATIONS_KIND + "-job", "explain", "--partitions", _clear)


def check_targets(
    out: Path, *, overwrite: bool, resume: bool, inputs: tuple[str | Path, ...]
) -> None:
    """Refuse early (before loading anything) an ``--out`` or a work folder this run may not
    touch: a folder houseprice did not write (whatever the flags), an unfinished run without
    ``resume``/``overwrite``, an existing ``--out`` without ``overwrite``."""
    check_output_folder(out, overwrite=overwrite, inputs=inputs)
    work = work_folder(out)
    if unmoved_output(work):
        if not (overwrite or resume):
            raise OutputExistsError(
                f"{work} holds a finished run that was interrupted before it was moved onto "
                f"{out}; pass --resume or --overwrite to run again (the folder is replaced)"
            )
        return
    check_work(work, overwrite=overwrite, resume=resume, kind=EXPLAIN_WORK)


def unmoved_output(work: Path) -> bool:
    """A work folder caught between :func:`finish`'s last two steps: its run state is gone
    and its ``manifest.json`` (explanations) lists every file in it, unchanged. It is
    houseprice's output, but nothing says of which job, so it is run again, not moved."""
    if work.is_symlink() or (work / JOB_FILE).exists() or not (work / MANIFEST_NAME).is_file():
        return False
    try:
        check_replaceable(work)
        return read_json_object(work / MANIFEST_NAME, "manifest").get("format") == EXPLANATIONS_KIND
    except (OutputExistsError, FormatError):
        return False


def explain_job_info(**fields: Any) -> dict[str, Any]:
    """The ``_job.json`` content of an explain run (format tag, key, what went into it)."""
    return job_info(kind=EXPLAIN_WORK, **fields)


def prepare(out: Path, info: dict[str, Any], *, overwrite: bool, resume: bool) -> Path:
    """The work folder, ready for this job; with ``resume`` an earlier run of the same job is
    kept, a run of another job is refused (``overwrite`` starts over). A finished run that was
    not moved onto ``out`` (:func:`unmoved_output`) is deleted first, with a warning."""
    work = work_folder(out)
    if (overwrite or resume) and unmoved_output(work):
        warnings.warn(
            f"{work}: an earlier run had finished but was interrupted before it was moved onto "
            f"{out}; it is replaced by this run (all partitions are explained again)",
            stacklevel=2,
        )
        shutil.rmtree(work)
    return prepare_work(work, info, overwrite=overwrite, resume=resume, kind=EXPLAIN_WORK)


# ---------------------------------------------------------------------- partition frames
def write_part(work: Path, part: Partition, frame: pd.DataFrame, *, key: str, signed: bool) -> Path:
    """A partition's frame as ``part-NNNNN.parquet`` (temp file + rename), its footer naming
    the range and the job key (and whether the partition's maps are signed)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {}), **part_footer(part, key)}
    dtypes = {str(c): str(t) for c, t in frame.dtypes.items()}
    meta[_FRAME_KEY] = json.dumps({"signed": bool(signed), "dtypes": dtypes}).encode()
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buffer)
    return atomic_write_bytes(work / part.name("parquet"), buffer.getvalue())


def part_done(work: Path, part: Partition, key: str) -> bool:
    """The partition's frame file is there, whole, and of this job."""
    return parquet_part_done(work / part.name("parquet"), part, key)


def read_parts(
    work: Path, parts: list[Partition], records: pd.DataFrame
) -> tuple[pd.DataFrame, bool]:
    """Every partition's frame in row order (index of ``records``, the records' own columns
    in their dtypes) and whether the maps are signed."""
    frames, signed = [], False
    for p in parts:
        table = pq.read_table(work / p.name("parquet"))
        info = json.loads(table.schema.metadata[_FRAME_KEY])
        signed = signed or bool(info["signed"])
        frames.append(_as_written(table.to_pandas(), info["dtypes"]))
    frame = pd.concat(_alike(frames), ignore_index=True) if len(frames) > 1 else frames[0]
    if len(frame) != len(records):  # a bug, not a user error: never write a partial table
        raise RuntimeError(f"explain partitions hold {len(frame)} rows for {len(records)}")
    frame.index = records.index
    frame = restore_dtypes(frame, dict(records.dtypes))
    for col in records.columns:  # the records' own missing values (NaN or None) where both miss
        if col in frame.columns and frame[col].dtype == object == records[col].dtype:
            values = frame[col].to_numpy(dtype=object, copy=True)
            own = records[col].to_numpy(dtype=object)
            both = pd.isna(values) & pd.isna(own)
            values[both] = own[both]
            frame[col] = pd.Series(values, index=frame.index, dtype=object)
    return frame, signed


def _alike(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """A column that holds only missing values in a partition has pandas' fallback dtype
    (``object``) there: give it the dtype the column has where it holds values, as one pass
    over the whole table would have inferred (e.g. ``str`` for ``tile_problem``)."""
    for col in frames[0].columns:
        held = {str(f[col].dtype) for f in frames if f[col].notna().any()}
        if len(held) != 1 or held == {"category"}:
            continue
        dtype = held.pop()
        for f in frames:
            if str(f[col].dtype) != dtype and f[col].dtype == object and f[col].isna().all():
                f[col] = f[col].astype(dtype)
    return frames


def _as_written(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """A partition's frame in the dtypes it was written with: Arrow reads text columns back
    as ``str`` where pandas had ``object``, and their missing cells as NaN where explain wrote
    None (categories come back from the records)."""
    for col, dtype in dtypes.items():
        if str(frame[col].dtype) != dtype and dtype != "category":
            frame[col] = frame[col].astype(dtype)
        if dtype == "object":
            values = frame[col].to_numpy(dtype=object, copy=True)
            values[pd.isna(values)] = None
            frame[col] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def restore_dtypes(rows: pd.DataFrame, dtypes: dict[str, Any]) -> pd.DataFrame:
    """``rows`` with the records' dtypes (a Parquet round trip may read a column back in
    another one)."""
    for col, dtype in dtypes.items():
        if col in rows.columns and rows[col].dtype != dtype:
            rows[col] = rows[col].astype(dtype)
    return rows


# ------------------------------------------------------------------------------ the end
def clear_temp_files(work: Path) -> None:
    """Remove temp files that attempts killed mid-write left (``.<name>.*.tmp``)."""
    for folder in (work, *(work / sub for sub in PNG_FOLDERS)):
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def finish(work: Path, out: Path, *, overwrite: bool, inputs: tuple[str | Path, ...]) -> Path:
    """Drop the run state, write ``manifest.json`` last and rename the folder onto ``out``.

    ``out`` is checked again first (it may have appeared during the run): an existing one is
    replaced only with ``overwrite`` and only if houseprice wrote it; it is moved aside and
    deleted only once the new folder is in place.
    """
    check_output_folder(out, overwrite=overwrite, inputs=inputs)
    clear_temp_files(work)
    for p in work.glob("part-*.parquet"):
        p.unlink()
    (work / RECORDS_FILE).unlink(missing_ok=True)
    (work / JOB_FILE).unlink()
    write_manifest(work, kind=EXPLANATIONS_KIND, version=1, files=tree_files(work))
    return swap_in_folder(work, out)


__all__ = [
    "EXPLAIN_WORK",
    "PNG_FOLDERS",
    "check_targets",
    "clear_temp_files",
    "explain_job_info",
    "finish",
    "part_done",
    "prepare",
    "read_parts",
    "restore_dtypes",
    "unmoved_output",
    "work_folder",
    "write_part",
]
