"""Importing a user's house table into the contract ("bring your own houses", data_specs/import.md).

This module owns :class:`ImportSource` (a :class:`~houseprice.data.houses.source.HouseSource`
over a CSV / Parquet / GeoParquet / GeoPackage file with the user's column names and CRS, usable
without writing anything) and :func:`import_records`, which writes it as a dataset folder
(``dataset.json`` + ``houses.csv`` + ``rejected.csv`` [+ ``tiles/``]) for
``houseprice data import``, and :func:`tile_dataset` for ``houseprice data tiles``.

Coordinates come from the geometry column (points; polygons and lines reduced with
``representative_point()``) or from latitude/longitude (or y/x) columns, in the file's CRS or the
``crs`` given, and are reprojected to EPSG:4326. A row that breaks a rule is *refused*, never
dropped silently: every refusal is a line of ``rejected.csv`` (source row, column, value, reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from houseprice.artifacts import (
    atomic_directory,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    check_not_input,
)
from houseprice.data.houses.folder import read_dataset_meta
from houseprice.data.houses.imagery import OrthophotoTiles
from houseprice.data.houses.records import DatasetError, check_width, read_table, records_frame
from houseprice.data.houses.rows import (
    Refusal,
    nothing_kept,
    prepare_records,
    rejected_frame,
)
from houseprice.data.houses.schema import DATASET_FORMAT, DATASET_FORMAT_VERSION
from houseprice.data.houses.source import FolderTiles, HouseSource, TileSource
from houseprice.data.houses.tilefiles import TileFiles, cut_tiles, link_tile_folder
from houseprice.errors import OutputExistsError, UserInputError

GENERATOR_NAME = "houseprice.data.houses.importer"
GENERATOR_VERSION = "1"
GEO_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")
TABLE_SUFFIXES = (".csv", ".parquet", ".geoparquet", ".pq")


def read_source(
    path: str | Path, layer: str | None = None
) -> tuple[pd.DataFrame, gpd.GeoSeries | None]:
    """The file's attribute table (values as stored; CSV as text) and its geometry, if any."""
    import pyogrio

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_table(path), None  # every cell as text; encoding, width checked
    if suffix in (".parquet", ".geoparquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
            check_width(path, len(schema.names))
            if b"geo" not in (schema.metadata or {}):
                return pd.read_parquet(path), None
            gdf = gpd.read_parquet(path)
        except (OSError, ValueError) as e:
            raise UserInputError(f"{path}: not a readable Parquet file ({e})") from e
    elif suffix in GEO_SUFFIXES:
        try:
            layers = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
            if layer is None and len(layers) > 1:
                raise UserInputError(
                    f"{path}: has {len(layers)} layers ({', '.join(layers)}); name one (layer=)"
                )
            if layer is not None and layer not in layers:
                raise UserInputError(f"{path}: no layer {layer!r} (layers: {', '.join(layers)})")
            info = pyogrio.read_info(path, layer=layer)
            check_width(path, len(info["fields"]))
            gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
        except pyogrio.errors.DataSourceError as e:
            raise UserInputError(f"{path}: not a readable {suffix[1:]} file ({e})") from e
    else:
        known = ", ".join(TABLE_SUFFIXES + GEO_SUFFIXES)
        raise UserInputError(f"{path}: unsupported format {suffix!r}; expected one of {known}")
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.isna().all():
        return pd.DataFrame(gdf.drop(columns=[gdf.geometry.name], errors="ignore")), None
    return pd.DataFrame(gdf.drop(columns=gdf.geometry.name)), gdf.geometry


class ImportSource(HouseSource):
    """A user's house file as a house-data source (nothing is written; see the module doc).

    ``imagery`` (GeoTIFF/COG paths) gives :class:`OrthophotoTiles` cut on the fly;
    ``tiles_dir`` (images named by house_id) gives :class:`FolderTiles` over that folder.
    Refused rows are in :attr:`refusals` (:meth:`rejected` as a table); :meth:`mapping_lines`
    is the column mapping to show the user.
    """

    kind = "import"

    def __init__(
        self,
        path: str | Path,
        *,
        columns: Mapping[str, str] | None = None,
        crs: str | None = None,
        layer: str | None = None,
        imagery: Sequence[str | Path] | None = None,
        tiles_dir: str | Path | None = None,
        tile_meters: float = 70.0,
        tile_px: int = 64,
        name: str | None = None,
    ) -> None:
        if imagery and tiles_dir is not None:
            raise UserInputError("give either imagery (--imagery) or a tiles folder (--tiles)")
        self.path = Path(path)
        self.crs, self.tile_meters, self.tile_px = crs, float(tile_meters), int(tile_px)
        self.name = name or self.path.stem
        frame, geometry = read_source(self.path, layer)
        self.n_source_rows = len(frame)
        self.records, self.source_rows, self.refusals, self.mapping = prepare_records(
            frame, geometry, columns=columns, crs=crs, origin=str(self.path)
        )
        if len(self.records) == 0:
            raise nothing_kept(str(self.path), len(frame), self.refusals)
        self.imagery = [Path(p) for p in imagery or []]
        self.tiles_dir = Path(tiles_dir) if tiles_dir is not None else None
        self._ortho: OrthophotoTiles | None = None
        self.tile_files: TileFiles | None = None
        if self.imagery:
            self._ortho = OrthophotoTiles(self.imagery, tile_meters=self.tile_meters)
            try:
                self._ortho.check_coverage(self.records, origin=f"the houses of {self.path}")
            except UserInputError:
                self._ortho.close()
                raise
        elif self.tiles_dir is not None:
            self.tile_files = link_tile_folder(self.records["house_id"].tolist(), self.tiles_dir)

    def raw_records(self) -> pd.DataFrame:
        out = self.records.copy()
        if self.tile_files is not None:
            out["image"] = pd.Series(self.tile_files.images, dtype=object)
        return out

    def tiles(self) -> TileSource | None:
        if self._ortho is not None:
            return self._ortho
        return FolderTiles(self.tiles_dir) if self.tiles_dir is not None else None

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "crs": "EPSG:4326", "source": self.describe()}
        sizes = self.tile_files.sizes if self.tile_files is not None else set()
        if self.imagery or sizes:
            meta["tile_meters"] = self.tile_meters
        if self.imagery or len(sizes) == 1:
            meta["tile_px"] = self.tile_px if self.imagery else next(iter(sizes))
        return meta

    def root(self) -> Path:
        return self.tiles_dir if self.tiles_dir is not None else self.path.parent

    def origin(self) -> str:
        return str(self.path)

    def describe(self) -> str:
        return f"imported from {self.path.name} ({self.mapping.notes['coordinates']})"

    def rejected(self) -> pd.DataFrame:
        return rejected_frame(self.refusals)

    def mapping_lines(self) -> list[str]:
        coords = f"  coordinates: {self.mapping.notes['coordinates']}"
        return [f"column mapping for {self.path}:", *self.mapping.lines(), coords]

    def close(self) -> None:
        if self._ortho is not None:
            self._ortho.close()


@dataclass
class ImportResult:
    """What :func:`import_records` did (the CLI prints :meth:`lines`)."""

    out: Path
    n_source_rows: int
    kept: int
    refused_rows: int
    refusals: int
    mapping: list[str]
    dataset_json: Path
    houses_csv: Path
    rejected_csv: Path
    tiles: int | None = None  # houses with a tile (None: no imagery/tiles given)
    tile_problems_csv: Path | None = None

    def lines(self) -> list[str]:
        out = [*self.mapping, f"kept {self.kept} of {self.n_source_rows} rows -> {self.out}"]
        if self.refused_rows:
            out.append(
                f"refused {self.refused_rows} row(s) ({self.refusals} problem(s)): "
                f"see {self.rejected_csv}"
            )
        if self.tiles is not None:
            extra = f"; without: see {self.tile_problems_csv}" if self.tile_problems_csv else ""
            out.append(f"tiles: {self.tiles} of {self.kept} houses{extra}")
        return out


def _guard_output(out: Path, inputs: Sequence[Path], overwrite: bool) -> None:
    """Refuse to replace a folder houseprice did not write, or one holding the inputs."""
    check_not_input(out, tuple(inputs))
    if overwrite and out.is_dir() and any(out.iterdir()):
        try:
            gen = read_dataset_meta(out).get("generator", {}).get("name")
        except DatasetError:
            gen = None
        if gen != GENERATOR_NAME:
            raise OutputExistsError(
                f"{out} exists and was not written by `houseprice data import`; refusing to "
                "replace it (choose another --out)"
            )


def _write_table(path: Path, records: pd.DataFrame, root: Path, origin: str) -> int:
    """Check the records against the contract and write them as ``houses.csv``."""
    typed = records_frame(records, root=root, purpose="any", source=origin)
    table = pd.DataFrame(typed.drop(columns=typed.geometry.name))
    if "sold_date" in table.columns:
        table["sold_date"] = table["sold_date"].dt.strftime("%Y-%m-%d")
    atomic_write_text(path, table.to_csv(index=False))
    return len(table)


def _tile_problems(
    records: pd.DataFrame, rows: np.ndarray, files: TileFiles, path: Path
) -> Path | None:
    if not files.reasons:
        return None
    ids = records["house_id"].tolist()
    table = pd.DataFrame(
        [
            {"source_row": int(rows[i]), "house_id": ids[i], "reason": why}
            for i, why in sorted(files.reasons.items())
        ]
    )
    return atomic_write_csv(path, table)


def import_records(
    path: str | Path,
    *,
    out: str | Path,
    columns: Mapping[str, str] | None = None,
    crs: str | None = None,
    imagery: Sequence[str | Path] | None = None,
    tiles_dir: str | Path | None = None,
    tile_meters: float = 70.0,
    tile_px: int = 64,
    overwrite: bool = False,
    progress: bool = True,
    layer: str | None = None,
    name: str | None = None,
) -> ImportResult:
    """Import a user's house file as a dataset folder at ``out`` (see the module docstring).

    ``columns`` maps contract names to the file's (``{"price": "SalePrice"}``); ``crs`` is the
    CRS of the coordinates when the file carries none. With ``imagery`` every house's tile is
    cut into ``out/tiles/``; with ``tiles_dir`` existing per-house images are checked and
    copied there. The folder is written atomically; an existing one is replaced only with
    ``overwrite`` and only if ``houseprice data import`` wrote it.
    """
    out = Path(out)
    inputs = [Path(path), *(Path(p) for p in imagery or [])]
    inputs += [Path(tiles_dir)] if tiles_dir is not None else []
    _guard_output(out, inputs, overwrite)
    if tile_px < 8 or not tile_meters > 0:
        raise UserInputError(f"need tile_px >= 8 and tile_meters > 0, got {tile_px}, {tile_meters}")
    src = ImportSource(
        path, columns=columns, crs=crs, layer=layer, imagery=imagery, tile_meters=tile_meters,
        tile_px=tile_px, name=name,
    )  # fmt: skip
    try:
        records = src.raw_records()
        meta = {
            "format": DATASET_FORMAT,
            "format_version": DATASET_FORMAT_VERSION,
            "name": src.name,
            "generator": {
                "name": GENERATOR_NAME,
                "version": GENERATOR_VERSION,
                "config": {"file": Path(path).name, "columns": dict(columns or {}), "crs": crs},
            },
            "table": "houses.csv",
            "n_houses": len(records),
            "crs": "EPSG:4326",
            "source": src.describe(),
        }
        with atomic_directory(out, overwrite=overwrite) as tmp:
            files = None
            if imagery:
                files = cut_tiles(
                    records, src.tiles(), tmp / "tiles", tile_meters=tile_meters,
                    tile_px=tile_px, progress=progress,
                )  # fmt: skip
            elif tiles_dir is not None:
                files = link_tile_folder(records["house_id"].tolist(), tiles_dir, tmp / "tiles")
            problems = None
            if files is not None:
                records["image"] = pd.Series(files.images, dtype=object)
                problems = _tile_problems(
                    records, src.source_rows, files, tmp / "tile_problems.csv"
                )
                meta["tile_meters"] = float(tile_meters)
                if len(files.sizes) == 1:
                    meta["tile_px"] = next(iter(files.sizes))
            _write_table(tmp / "houses.csv", records, tmp, str(path))
            atomic_write_csv(tmp / "rejected.csv", src.rejected())
            atomic_write_json(tmp / "dataset.json", meta)
            read_dataset_meta(tmp)  # the dataset.json schema check
    finally:
        src.close()
    return ImportResult(
        out=out,
        n_source_rows=src.n_source_rows,
        kept=len(records),
        refused_rows=src.n_source_rows - len(records),
        refusals=len(src.refusals),
        mapping=src.mapping_lines(),
        dataset_json=out / "dataset.json",
        houses_csv=out / "houses.csv",
        rejected_csv=out / "rejected.csv",
        tiles=None if files is None else sum(v is not None for v in files.images),
        tile_problems_csv=None if problems is None else out / "tile_problems.csv",
    )


def tile_dataset(
    data: str | Path,
    imagery: Sequence[str | Path],
    *,
    tile_meters: float | None = None,
    tile_px: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ImportResult:
    """Cut tiles for a dataset folder written by ``houseprice data import`` (in place).

    Writes ``tiles/``, ``tile_problems.csv``, and rewrites ``houses.csv``'s ``image`` column and
    ``dataset.json``'s tile fields; every other value and file is left as it was. Folders
    written by anything else are never modified: import their table again with ``--imagery``.
    """
    folder = Path(data)
    meta = read_dataset_meta(folder)
    if meta.get("generator", {}).get("name") != GENERATOR_NAME:
        raise UserInputError(
            f"{folder} was not written by `houseprice data import`, so it is not modified; "
            f"import its table with tiles instead: houseprice data import --records "
            f"{folder / meta['table']} --imagery ... --out NEW_DIR"
        )
    tm = float(tile_meters or meta.get("tile_meters") or 70.0)
    px = int(tile_px or meta.get("tile_px") or 64)
    table_path = folder / meta["table"]
    raw = read_table(table_path)
    has_tiles = "image" in raw.columns and raw["image"].notna().any()
    if (has_tiles or (folder / "tiles").exists()) and not overwrite:
        raise OutputExistsError(f"{folder} already has tiles; pass --overwrite to cut them again")
    records = records_frame(raw, root=folder, purpose="any", source=table_path)
    with OrthophotoTiles(imagery, tile_meters=tm) as ortho:
        with atomic_directory(folder / "tiles", overwrite=True) as tmp:
            files = cut_tiles(records, ortho, tmp, tile_meters=tm, tile_px=px, progress=progress)
    raw["image"] = pd.Series(files.images, dtype=object)
    rows = np.arange(1, len(raw) + 1)  # the folder's own rows (the import already renumbered)
    problems = _tile_problems(raw, rows, files, folder / "tile_problems.csv")
    if problems is None and (folder / "tile_problems.csv").exists():
        (folder / "tile_problems.csv").unlink()  # ours, and stale now
    atomic_write_text(table_path, raw.to_csv(index=False))
    atomic_write_json(folder / "dataset.json", {**meta, "tile_meters": tm, "tile_px": px})
    read_dataset_meta(folder)
    return ImportResult(
        out=folder,
        n_source_rows=len(raw),
        kept=len(raw),
        refused_rows=0,
        refusals=0,
        mapping=[],
        dataset_json=folder / "dataset.json",
        houses_csv=table_path,
        rejected_csv=folder / "rejected.csv",
        tiles=sum(v is not None for v in files.images),
        tile_problems_csv=problems,
    )


__all__ = [
    "GENERATOR_NAME",
    "ImportResult",
    "ImportSource",
    "Refusal",
    "import_records",
    "read_source",
    "tile_dataset",
]
