"""The houses a scoring job reads, and the warnings about them.

:func:`open_houses` opens a dataset folder / table, or a user file with orthophotos (tiles cut
on the fly); :func:`warn_extrapolation` warns when houses lie far outside the model's training
area or period, :func:`warn_uncalibrated` when the model has no price-range calibration.
Shared by the local and the Dask scoring paths.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from houseprice.data.houses import Dataset, load_any
from houseprice.data.houses.importer import ImportSource
from houseprice.errors import UserInputError
from houseprice.valuation.model import HousePriceModel


def open_houses(
    table: str | Path,
    *,
    imagery: list[Path] | None = None,
    tile_meters: float | None = None,
    purpose: str = "predict",
) -> tuple[Dataset, ImportSource | None]:
    """The houses of ``table``: a dataset folder/table, or a user file with orthophotos."""
    if not imagery:
        return load_any(table, purpose=purpose), None  # type: ignore[arg-type]
    source = ImportSource(table, imagery=imagery, tile_meters=float(tile_meters or 70.0))
    try:
        return source.load(purpose=purpose), source  # type: ignore[arg-type]
    except BaseException:
        source.close()
        raise


def warn_extrapolation(model: HousePriceModel, records: pd.DataFrame) -> None:
    """Warn when houses lie far outside the training area or period (prices extrapolate)."""
    far = model.outside_training(records)
    if far["place"]:
        box = ", ".join(f"{v:.4f}" for v in model.info["train_bbox"])
        warnings.warn(
            f"{far['place']} of {len(records)} houses lie far outside the training area "
            f"(lon/lat box {box}); their prices are extrapolations",
            stacklevel=2,
        )
    if far["time"]:
        lo, hi = model.info["train_date_range"]
        warnings.warn(
            f"{far['time']} of {len(records)} houses were sold more than a year outside the "
            f"training period {lo} .. {hi}; their prices are extrapolations",
            stacklevel=2,
        )


def warn_uncalibrated(model: HousePriceModel) -> None:
    """Say once how to add price ranges to a model folder saved without a calibration."""
    from houseprice.valuation.calibration import uncalibrated_hint

    if model.calibration is None:
        warnings.warn(uncalibrated_hint(model.info.get("folder")), stacklevel=2)


def interval_level(value: float | None) -> float | None:
    """``--interval`` checked: None (the calibration's default, 0.8) or a level in (0, 1)."""
    from houseprice.pricing.conformal import check_level

    if value is None:
        return None
    try:
        return check_level(value)
    except ValueError as e:
        raise UserInputError(f"--interval: {e}") from None
