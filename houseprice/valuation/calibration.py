"""A model's price-range calibration: computed from its training rows, stored as JSON.

This module owns ``calibration.json`` in a model folder: one conformal table
(:class:`houseprice.pricing.conformal.ConformalTable`) per saved regressor (``visual``: the
attributes + visual features; ``no_visual``: the attributes-only fallback), fitted on the
forward-chained predictions of the training rows (each later fifth of the training period
priced by a regressor fitted on the earlier ones; the training rows' visual features are
their stored out-of-fold features, so no net is retrained). :meth:`PriceCalibration.ranges`
turns valuations into the ``price_low``, ``price_high``, ``interval_level``, ``fsd`` and
``confidence`` columns. :func:`add_calibration` adds the file to a model folder saved before
houseprice calibrated ranges (``houseprice calibrate``).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from houseprice.errors import FormatError
from houseprice.pricing.attributes import attribute_frame, with_visual
from houseprice.pricing.conformal import (
    CONFIDENCE_BANDS,
    CONFIDENCE_SOURCE,
    FSD_LEVEL,
    ConformalTable,
    check_level,
    confidence,
    forward_predictions,
)

if TYPE_CHECKING:
    from houseprice.valuation.config import TrainConfig

CALIBRATION_FILE = "calibration.json"
CALIBRATION_FORMAT = "houseprice-calibration"
CALIBRATION_VERSION = 1
DEFAULT_LEVEL = 0.8
FORWARD_BLOCKS = 5
RANGE_COLUMNS = ("price_low", "price_high", "interval_level", "fsd", "confidence")
METHOD = (
    "split-conformal on forward-chained predictions of the training rows (each later fifth "
    "of the training period priced by a regressor fitted on the earlier ones), signed log "
    "residuals, per band of predicted price"
)


def uncalibrated_hint(folder: Any) -> str:
    """What to tell the user of a model folder without ``calibration.json``."""
    where = folder or "MODEL"
    return (
        f"model {where} has no price-range calibration (saved before houseprice calibrated "
        "ranges), so price_low, price_high, fsd and confidence are left out; add it in one "
        f"step, without retraining the nets: houseprice calibrate --model {where} --data DATA "
        "(DATA: the dataset it was trained on)"
    )


@dataclass
class PriceCalibration:
    """Conformal tables of a model's regressors (``visual`` / ``no_visual``) and their story."""

    tables: dict[str, ConformalTable]
    info: dict[str, Any] = field(default_factory=dict)

    def ranges(
        self, predicted: np.ndarray, used_visual: np.ndarray, level: float | None = None
    ) -> pd.DataFrame:
        """The range columns (:data:`RANGE_COLUMNS`) of each valuation at ``level``."""
        lvl = DEFAULT_LEVEL if level is None else check_level(level)
        p = np.asarray(predicted, dtype=np.float64)
        vis = np.asarray(used_visual, dtype=bool)
        low, high, fsd = np.empty_like(p), np.empty_like(p), np.empty_like(p)
        for key, rows in (("visual", vis), ("no_visual", ~vis)):
            if rows.any():
                table = self.tables.get(key) or self.tables["no_visual"]
                low[rows], high[rows] = table.bounds(p[rows], lvl)
                fsd[rows] = table.fsd(p[rows])
        return pd.DataFrame(
            {
                "price_low": low,
                "price_high": high,
                "interval_level": lvl,
                "fsd": fsd,
                "confidence": confidence(fsd),
            }
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "format_version": CALIBRATION_VERSION,
            "method": METHOD,
            "default_level": DEFAULT_LEVEL,
            "fsd_level": FSD_LEVEL,
            "confidence_bands": {name: limit for name, limit in CONFIDENCE_BANDS},
            "confidence_source": CONFIDENCE_SOURCE,
            "info": self.info,
            "tables": {k: t.to_json() for k, t in self.tables.items()},
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], path: Path) -> PriceCalibration:
        """Parse ``calibration.json``; anything wrong is a :class:`FormatError` naming it."""
        if obj.get("format") != CALIBRATION_FORMAT or obj.get("format_version") != (
            CALIBRATION_VERSION
        ):
            raise FormatError(
                f"{path}: not a {CALIBRATION_FORMAT} version {CALIBRATION_VERSION} file"
            )
        tables = obj.get("tables")
        if not isinstance(tables, dict) or "no_visual" not in tables:
            raise FormatError(f"{path}: 'tables' must hold at least the no_visual table")
        try:
            parsed = {str(k): ConformalTable.from_json(v) for k, v in tables.items()}
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"{path}: {e}") from e
        return cls(parsed, dict(obj.get("info") or {}))


def calibrate_rows(
    config: TrainConfig,
    train: pd.DataFrame,
    features: np.ndarray | None,
) -> PriceCalibration:
    """Calibrate on the training rows ``train`` (with their out-of-fold visual ``features``)."""
    x = attribute_frame(train, config.attributes)
    y = train["price"].to_numpy(dtype=np.float64)
    dates = pd.to_datetime(train["sold_date"]).to_numpy()
    xs = {"no_visual": x}
    if features is not None:
        xs["visual"] = with_visual(x, features)
    tables, info = {}, {"blocks": FORWARD_BLOCKS}
    for key, xk in xs.items():
        rows, pred = forward_predictions(
            config.build_regressor, xk, y, dates, blocks=FORWARD_BLOCKS
        )
        tables[key] = ConformalTable.fit(pred, y[rows])
        info[f"n_{key}"] = len(rows)
    return PriceCalibration(tables, info)


def add_calibration(folder: str | Path, calibration: PriceCalibration) -> Path:
    """Add (or replace) ``calibration.json`` in a model folder houseprice wrote, atomically.

    The folder is copied beside itself, the file and a new manifest are written into the copy
    and the copy replaces the folder in one rename; the caller has checked the folder (its
    manifest lists every file unchanged, :func:`houseprice.artifacts.check_replaceable`).
    """
    from houseprice.artifacts import (
        MANIFEST_NAME,
        atomic_write_json,
        read_json_object,
        swap_in_folder,
        write_manifest,
    )

    folder = Path(folder).resolve()
    manifest = read_json_object(folder / MANIFEST_NAME, "manifest")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        atomic_write_json(tmp / CALIBRATION_FILE, calibration.to_json())
        files = sorted({*manifest["files"], CALIBRATION_FILE})
        write_manifest(
            tmp, kind=manifest["format"], version=manifest["format_version"], files=files
        )
        tmp.chmod(folder.stat().st_mode & 0o777)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return swap_in_folder(tmp, folder)
