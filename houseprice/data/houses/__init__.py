"""House records and tiles: the contract (schema), validation, data sources, tiles, Ames.

- :mod:`~houseprice.data.houses.schema`: the columns and ``dataset.json`` schema;
- :mod:`~houseprice.data.houses.records`: reading and validating record tables;
- :mod:`~houseprice.data.houses.source`: the house-data source interface (``HouseSource``,
  ``TileSource``) and the validated ``Dataset``;
- :mod:`~houseprice.data.houses.folder`: dataset folders and bare tables (``FolderSource``);
- :mod:`~houseprice.data.houses.tiles`: reading tiles and masks into arrays;
- :mod:`~houseprice.data.houses.ames`: the Ames sales (``AmesSource``).
"""

from houseprice.data.houses.folder import (
    FolderSource,
    check_tiles,
    load_any,
    load_dataset,
    read_dataset_meta,
    summarize,
)
from houseprice.data.houses.records import (
    DatasetError,
    Problem,
    Purpose,
    RecordsValidationError,
    load_records,
    read_table,
    records_frame,
    resolve_asset,
    validate_frame,
)
from houseprice.data.houses.source import Dataset, FolderTiles, HouseSource, TileSource
from houseprice.data.houses.tiles import TileBatch, load_tiles, read_mask, read_tile

__all__ = [
    "Dataset",
    "DatasetError",
    "FolderSource",
    "FolderTiles",
    "HouseSource",
    "Problem",
    "Purpose",
    "RecordsValidationError",
    "TileBatch",
    "TileSource",
    "check_tiles",
    "load_any",
    "load_dataset",
    "load_records",
    "load_tiles",
    "read_dataset_meta",
    "read_mask",
    "read_table",
    "read_tile",
    "records_frame",
    "resolve_asset",
    "summarize",
    "validate_frame",
]
