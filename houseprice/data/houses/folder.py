"""Dataset folders: ``dataset.json`` + a record table + per-house image files (or a bare table).

:class:`FolderSource` is the house-data source for everything on disk in the contract's layout
(data_specs/dataset.md): what ``houseprice data synth-city`` and ``data ames`` write and what a
user hand-builds. :func:`load_any` is what the jobs call with a ``--data``/``--input`` path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from houseprice.data.houses.records import (
    DatasetError,
    Purpose,
    check_relative_path,
    read_table,
)
from houseprice.data.houses.schema import DATASET_FORMAT, HOUSE_COLUMNS, dataset_json_schema
from houseprice.data.houses.source import Dataset, FolderTiles, HouseSource, TileSource


class FolderSource(HouseSource):
    """A dataset folder (``dataset.json`` + table + image files) or a bare table."""

    kind = "folder"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self._meta = read_dataset_meta(self.path)
            if check_relative_path(self.path, self._meta["table"]):
                raise DatasetError(
                    f"{self.path / 'dataset.json'}: 'table' must stay inside the folder"
                )
            self._table = self.path / self._meta["table"]
            self._root = self.path
        else:
            self._table, self._root = self.path, self.path.parent
            self._meta = {"name": self.path.stem, "table": self.path.name}
            if (self.path.parent / "dataset.json").exists():
                self._meta = read_dataset_meta(self.path.parent)

    def raw_records(self) -> pd.DataFrame:
        return read_table(self._table)

    def tiles(self) -> TileSource | None:
        return FolderTiles(self._root)

    def meta(self) -> dict[str, Any]:
        return self._meta

    def root(self) -> Path:
        return self._root

    def origin(self) -> str:
        return str(self._table)


def read_dataset_meta(folder: str | Path) -> dict[str, Any]:
    """Read and schema-check ``dataset.json`` in a dataset folder."""
    import jsonschema

    folder = Path(folder)
    meta_path = folder / "dataset.json"
    if not meta_path.exists():
        raise DatasetError(
            f"{folder}: not a dataset folder (no dataset.json). Create one with "
            "`houseprice data synth-city --out DIR` or `houseprice data ames`."
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{meta_path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    validator = jsonschema.Draft202012Validator(dataset_json_schema())
    errors = sorted(validator.iter_errors(meta), key=lambda e: list(e.path))
    if errors:
        msgs = "\n".join(
            f"  - {'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors
        )
        raise DatasetError(
            f"{meta_path}: does not match data_specs/dataset.schema.json "
            f"(format {DATASET_FORMAT!r}):\n{msgs}"
        )
    return meta


def load_dataset(folder: str | Path, *, purpose: Purpose = "any") -> Dataset:
    """Load a dataset folder (``dataset.json`` + table) with full validation."""
    folder = Path(folder)
    if not folder.is_dir():
        read_dataset_meta(folder)  # the "not a dataset folder" message
    return FolderSource(folder).load(purpose=purpose)


def load_any(path: str | Path, *, purpose: Purpose = "any") -> Dataset:
    """Load either a dataset folder or a bare table (its folder is then the root)."""
    return FolderSource(path).load(purpose=purpose)


def check_tiles(ds: Dataset, size: int | None = None, *, progress: bool = False) -> None:
    """Read every listed tile; raise one :class:`RecordsValidationError` naming each bad one."""
    from houseprice.data.houses.records import Problem, RecordsValidationError

    if ds.tiles is None:
        return
    listed = ds.tiles.available(ds.records).to_numpy(dtype=bool)
    if not listed.any():
        return
    px = int(size or ds.meta.get("tile_px") or 64)
    batch = ds.tiles.read(ds.records, px, progress=progress, warn=False)
    problems = [
        Problem(i + 1, "image", ds.records["image"].iloc[i], batch.reasons[i])
        for i in np.flatnonzero(listed & ~batch.ok)
    ]
    if problems:
        raise RecordsValidationError(ds.records.attrs.get("source", ds.root), problems)


def summarize(ds: Dataset) -> dict[str, Any]:
    """Counts a person wants to see after validation (rows, missing values, tiles on disk)."""
    r = ds.records
    out: dict[str, Any] = {"rows": len(r), "columns": list(map(str, r.columns.drop("geometry")))}
    out["missing"] = {
        c.name: int(r[c.name].isna().sum()) for c in HOUSE_COLUMNS if c.name in r.columns
    }
    if "sold_date" in r.columns and r["sold_date"].notna().any():
        out["sold_date_range"] = [
            str(r["sold_date"].min().date()),
            str(r["sold_date"].max().date()),
        ]
    if "price" in r.columns and r["price"].notna().any():
        out["price_median"] = float(r["price"].median())
    if "image" in r.columns:
        present = [p for p in r["image"].dropna()]
        out["tiles_listed"] = len(present)
        out["tiles_missing_on_disk"] = sum(1 for p in present if not (ds.root / p).exists())
    return out
