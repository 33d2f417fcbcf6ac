"""Writing GIS outputs: a GeoPackage or GeoParquet of house points plus the map's area cells.

``predict --out X.gpkg`` / ``X.geoparquet`` and ``explain --gpkg X.gpkg`` write:

- ``X.gpkg``: a GeoPackage with the point layer ``houses`` (every output column) and the
  polygon layer ``areas`` (:func:`houseprice.maps.gis.area_cells`), both in the layer CRS;
- ``X.geoparquet``: a GeoParquet 1.0 file of the house points (WKB geometry, the CRS as
  PROJJSON in the ``geo`` metadata), and ``X.areas.geoparquet`` with the area cells.

Points are appended part by part (:class:`GisWriter`, memory flat in the number of houses: one
partition at a time) to hidden temp files next to the target, renamed into place only when
complete (the area file first, the points file last). Every file carries houseprice's mark (a
GeoPackage metadata item / a Parquet key-value ``houseprice``): ``--overwrite`` replaces only
files with that mark (:func:`check_gis_target`), never a file houseprice did not write.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS

from houseprice.errors import OutputExistsError, UserInputError
from houseprice.maps.gis import area_cells, house_points, parse_crs
from houseprice.pricing.ratio_study import cod

__all__ = [
    "GIS_SUFFIXES",
    "GisWriter",
    "check_gis_target",
    "gis_files",
    "is_gis",
    "write_gis",
]

GIS_SUFFIXES = (".gpkg", ".geoparquet")
MARK_KEY = "houseprice"
MARK_VALUE = "houseprice-gis v1"
POINTS_LAYER = "houses"
AREAS_LAYER = "areas"
#: Area statistics need these columns; everything else of a part is not read for them.
AREA_INPUTS = ("latitude", "longitude", "predicted_price", "price")


def is_gis(path: str | Path) -> bool:
    return Path(path).suffix.lower() in GIS_SUFFIXES


def gis_files(out: Path) -> list[Path]:
    """The files one GIS output consists of (the points file last)."""
    if out.suffix.lower() == ".geoparquet":
        return [out.with_name(out.name[: -len(".geoparquet")] + ".areas.geoparquet"), out]
    return [out]


def _is_ours(path: Path) -> bool:
    """``path`` carries houseprice's mark (written by :class:`GisWriter`)."""
    try:
        if path.suffix.lower() == ".gpkg":
            import pyogrio

            meta = pyogrio.read_info(path, layer=POINTS_LAYER).get("dataset_metadata") or {}
            return meta.get(MARK_KEY) == MARK_VALUE
        schema = pq.read_schema(path)
        return (schema.metadata or {}).get(MARK_KEY.encode()) == MARK_VALUE.encode()
    except Exception:  # any unreadable file is not ours
        return False


def check_gis_target(out: Path, *, overwrite: bool, inputs: tuple[str | Path, ...] = ()) -> None:
    """Refuse a GIS target this run may not write (before any long work).

    An existing file is replaced only with ``overwrite`` and only if houseprice wrote it.
    """
    if not is_gis(out):
        raise UserInputError(f"{out}: a GIS output must end in .gpkg or .geoparquet")
    for path in gis_files(out):
        if any(Path(i).resolve() == path.resolve() for i in inputs if Path(i).exists()):
            raise OutputExistsError(f"{path} is an input of this job; choose another output")
        if path.is_dir():
            raise OutputExistsError(f"{path} is a folder; name a .gpkg or .geoparquet file")
        if not (path.exists() or path.is_symlink()):
            continue
        if not overwrite:
            raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
        if path.is_symlink() or not _is_ours(path):
            raise OutputExistsError(
                f"{path} exists and was not written by houseprice; houseprice replaces only "
                "its own files: choose another output or move it away"
            )


def _geo_metadata(crs: CRS, geometry_type: str) -> bytes:
    """GeoParquet 1.0 ``geo`` metadata of one WKB geometry column named ``geometry``."""
    column = {"encoding": "WKB", "geometry_types": [geometry_type], "crs": crs.to_json_dict()}
    meta = {"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": column}}
    return json.dumps(meta).encode()


class GisWriter:
    """Append point chunks, then the area cells, to temp files; :meth:`commit` renames them.

    Use as a context manager: leaving it without :meth:`commit` (an error) removes the temp
    files and leaves any existing output untouched.
    """

    def __init__(self, out: Path, crs: CRS) -> None:
        self.out = Path(os.path.abspath(out))
        self.crs = crs
        self.parquet = self.out.suffix.lower() == ".geoparquet"
        tag = uuid.uuid4().hex[:12]
        # the temp name keeps the suffix: GDAL keeps a GeoPackage's metadata inside it only then
        self.tmp = {p: p.with_name(f".{p.stem}.{tag}.tmp{p.suffix}") for p in gis_files(self.out)}
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    def __enter__(self) -> GisWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for tmp in self.tmp.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _parquet_table(self, layer: gpd.GeoDataFrame, kind: str) -> pa.Table:
        frame = pd.DataFrame(layer.drop(columns="geometry"))
        frame["geometry"] = shapely.to_wkb(layer.geometry.to_numpy())
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = {b"geo": _geo_metadata(self.crs, kind), MARK_KEY.encode(): MARK_VALUE.encode()}
        return table.replace_schema_metadata(meta)

    def append(self, frame: pd.DataFrame) -> None:
        """Append houses (a prediction / explanation chunk) to the points layer."""
        points = house_points(frame, self.crs)
        target = self.tmp[self.out]
        if self.parquet:
            table = self._parquet_table(points, "Point")
            if self._writer is None:
                self._schema = table.schema
                self._writer = pq.ParquetWriter(target, self._schema)
            self._writer.write_table(table.cast(self._schema))
        else:
            import pyogrio

            pyogrio.write_dataframe(
                points,
                target,
                layer=POINTS_LAYER,
                driver="GPKG",
                append=self.rows > 0,
                geometry_type="Point",
                dataset_metadata={MARK_KEY: MARK_VALUE} if self.rows == 0 else None,
            )
        self.rows += len(points)

    def areas(self, frame: pd.DataFrame) -> gpd.GeoDataFrame:
        """Write the area cells of the houses of ``frame`` (:data:`AREA_INPUTS` suffice)."""
        cells = area_cells(frame, crs=self.crs, cod=cod)
        if self.parquet:
            path = gis_files(self.out)[0]
            pq.write_table(self._parquet_table(cells, "Polygon"), self.tmp[path])
        else:
            import pyogrio

            pyogrio.write_dataframe(
                cells, self.tmp[self.out], layer=AREAS_LAYER, driver="GPKG", append=True
            )
        return cells

    def commit(self) -> Path:
        """Rename the finished files into place (the points file last); returns ``out``."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        mask = os.umask(0)
        os.umask(mask)
        for final, tmp in self.tmp.items():
            os.chmod(tmp, 0o666 & ~mask)
            os.replace(tmp, final)
        return self.out


def write_gis(out: Path, chunks: Iterable[pd.DataFrame], areas: pd.DataFrame, crs: CRS) -> Path:
    """Points of every chunk (in order), then the area cells of ``areas``' houses."""
    with GisWriter(out, crs) as writer:
        for frame in chunks:
            if len(frame):
                writer.append(frame)
        if writer.rows == 0:
            raise UserInputError(f"{out}: no houses to write")
        writer.areas(areas)
        return writer.commit()


def area_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``frame`` the area cells need."""
    return pd.DataFrame(frame[[c for c in AREA_INPUTS if c in frame.columns]])


def describe_crs(crs: CRS) -> str:
    """``EPSG:xxxx`` where the CRS has a code, else its name."""
    code = crs.to_epsg()
    return f"EPSG:{code}" if code is not None else crs.name


def finish_gis(work: Path, out: Path, part_files: list[Path], crs: CRS) -> Path:
    """The finished Parquet partitions of a predict run as a GIS output, one part at a time;
    the work folder is removed once the output is in place."""
    import shutil

    def chunks() -> Iterable[pd.DataFrame]:
        for path in part_files:
            yield pq.read_table(path).to_pandas()

    names = pq.read_schema(part_files[0]).names
    columns = [c for c in AREA_INPUTS if c in names]
    houses = pa.concat_tables([pq.read_table(p, columns=columns) for p in part_files])
    write_gis(out, chunks(), houses.to_pandas(), crs)
    shutil.rmtree(work, ignore_errors=True)
    return out


def input_crs(table: str | Path) -> CRS:
    """The CRS a GIS table (GeoPackage, GeoParquet, Shapefile, GeoJSON...) declares.

    Raises:
        UserInputError: the table declares none (a CSV, a plain Parquet file, a folder).
    """
    path = Path(table)
    found = None
    if path.is_file() and path.suffix.lower() in (".parquet", ".geoparquet", ".pq"):
        geo = (pq.read_schema(path).metadata or {}).get(b"geo")
        if geo is not None:
            meta = json.loads(geo)
            column = meta.get("columns", {}).get(meta.get("primary_column"), {})
            found = column.get("crs", "OGC:CRS84")
    elif path.is_file() and path.suffix.lower() not in (".csv", ".txt"):
        import pyogrio

        with contextlib.suppress(Exception):
            found = pyogrio.read_info(path).get("crs")
    if not found:
        raise UserInputError(
            f"--crs input: {table} declares no CRS (only a GeoPackage, GeoParquet or other "
            "GIS file does); name one instead, e.g. --crs EPSG:26915"
        )
    return CRS.from_user_input(found)


def layer_crs(crs: str | None, table: str | Path) -> CRS:
    """The CRS of the GIS layers: ``crs`` (None: EPSG:4326; ``"input"``: the table's)."""
    return input_crs(table) if crs == "input" else parse_crs(crs)
