"""The house-price model: visual featurizer + LightGBM regressors, trained and applied.

``HousePriceModel.fit`` trains on a dataset's training rows: cross-fitted rank-siamese nets
give visual features (out-of-fold for the training rows, see ``houseprice.vision.features``),
a ``PriceRegressor`` is fitted on attributes + visual features, and a second one on the
attributes alone is the fallback for houses without a usable tile. Saving and loading the
model folder is :mod:`houseprice.valuation.folder`'s job (``save`` / ``load`` delegate to it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from houseprice.data.houses import Dataset, TileBatch, TileSource
from houseprice.errors import FormatError, UserInputError
from houseprice.pricing.attributes import (
    attribute_frame,
    feature_columns,
    time_split,
    visual_columns,
    with_visual,
)
from houseprice.pricing.contributions import log_contributions, money_contributions
from houseprice.pricing.regressor import PriceRegressor
from houseprice.runtime import resolve_device
from houseprice.valuation.calibration import PriceCalibration, calibrate_rows
from houseprice.valuation.config import TrainConfig
from houseprice.valuation.folder import ModelParts, load_model, save_model
from houseprice.vision.features import VisualFeaturizer

# How the tabular stage fits a regressor: (unfitted regressor, X, prices) -> fitted regressor.
# The default fits in this process; the train job's ``--engine dask`` passes
# ``houseprice.pricing.dask_fit.fit_on_dask`` bound to a Dask client.
RegressorFit = Callable[[PriceRegressor, pd.DataFrame, np.ndarray], PriceRegressor]


def fit_local(regressor: PriceRegressor, x: pd.DataFrame, y: np.ndarray) -> PriceRegressor:
    """Fit in this process (``PriceRegressor.fit``)."""
    return regressor.fit(x, y)


def check_fit_options(dataset: Dataset, config: TrainConfig) -> None:
    """Refuse settings that cannot work on this dataset, before any training."""
    n = len(dataset.records)
    if config.n_folds == 1 or config.n_folds < 0:
        raise UserInputError(
            f"--folds must be 0 (naive, in-sample) or at least 2, got {config.n_folds}"
        )
    n_train = n if config.use_all_rows else int(np.floor(n * config.train_fraction))
    if config.n_folds > max(2, n_train // 4):
        raise UserInputError(
            f"--folds {config.n_folds} is too many for {n_train} training rows "
            f"(at most {max(2, n_train // 4)}: each fold needs a few houses)"
        )
    if n_train < 4:
        raise UserInputError(f"need at least 4 training rows, the dataset gives {n_train}")


def _match_matrix(records: pd.DataFrame, letters: tuple[str, ...]) -> np.ndarray:
    m = attribute_frame(records, letters).to_numpy(dtype=np.float64)
    med = np.nanmedian(m, axis=0)
    med = np.where(np.isnan(med), 0.0, med)
    return np.where(np.isnan(m), med, m)


def _residual_targets(x: pd.DataFrame, log_price: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """Out-of-fold residual of an attributes-only model (what attributes fail to explain)."""
    from sklearn.model_selection import KFold

    res = np.zeros_like(log_price)
    for tr, te in KFold(5, shuffle=True, random_state=cfg.seed).split(x):
        reg = cfg.build_regressor().fit(x.iloc[tr], np.exp(log_price[tr]))
        res[te] = log_price[te] - np.log(reg.predict(x.iloc[te]))
    return res


def _train_info(train: pd.DataFrame) -> dict[str, Any]:
    """What model.json records about the training rows (and the thread count used)."""
    return {
        "n_train": len(train),
        "torch_threads": torch.get_num_threads(),  # reductions depend on it (runtime.py)
        "train_date_range": [
            str(train["sold_date"].min().date()),
            str(train["sold_date"].max().date()),
        ],
        "train_bbox": [  # lon_min, lat_min, lon_max, lat_max of the training houses
            float(train["longitude"].min()),
            float(train["latitude"].min()),
            float(train["longitude"].max()),
            float(train["latitude"].max()),
        ],
    }


def _fit_visual(
    train: pd.DataFrame,
    x_attr: pd.DataFrame,
    tiles: TileBatch,
    config: TrainConfig,
    device: str,
    progress: bool,
) -> tuple[VisualFeaturizer, np.ndarray]:
    """Cross-fitted siamese nets on the rows with a tile; ``(featurizer, (N, d) OOF feats)``.

    The main pair head ranks ``config.pair_target`` (the attributes-only residual or log
    price); the auxiliary head, when trained, ranks log price (docs/pricing.md).
    """
    ok = tiles.ok
    need = max(8, 2 * config.n_folds)
    if ok.sum() < need:
        raise UserInputError(
            f"only {int(ok.sum())} training rows have a usable tile; need at least {need} to "
            f"train visual features with {config.n_folds} cross-fitting folds"
        )
    log_y = np.log(train["price"].to_numpy(dtype=np.float64))
    targets = (
        _residual_targets(x_attr, log_y, config) if config.pair_target == "residual" else log_y
    )
    if config.siamese_training.aux_weight > 0:  # auxiliary head ranks by log price
        targets = np.column_stack([targets, log_y])
    match = _match_matrix(train, config.match_attributes) if config.match_attributes else None
    featurizer = VisualFeaturizer(
        config=config.siamese,
        training=config.siamese_training,
        n_folds=config.n_folds,
        seed=config.seed,
        device=device,
        progress=progress,
        weights=config.weights,
    )
    feats = featurizer.fit_transform(
        tiles.pixels[ok], targets[ok], match=None if match is None else match[ok]
    )
    full = np.full((len(train), config.siamese.feature_dim), np.nan, np.float32)
    full[ok] = feats
    return featurizer, full


@dataclass
class HousePriceModel:
    """A trained model: featurizer (or None without tiles) and the two regressors."""

    config: TrainConfig
    featurizer: VisualFeaturizer | None
    regressor: PriceRegressor | None  # attributes + visual features
    regressor_no_visual: PriceRegressor  # attributes only (fallback)
    tile_px: int | None
    tile_meters: float | None
    train_ids: list[str]
    train_features: np.ndarray | None  # (N_train, d) OOF features of the training rows
    info: dict[str, Any] = field(default_factory=dict)
    calibration: PriceCalibration | None = None  # price ranges (None: a folder saved before)

    @property
    def attribute_columns(self) -> list[str]:
        return feature_columns(self.config.attributes)

    @property
    def visual_columns(self) -> list[str]:
        d = self.config.siamese.feature_dim
        return visual_columns(d) if self.featurizer is not None else []

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        dataset: Dataset,
        config: TrainConfig,
        *,
        device: str = "cpu",
        progress: bool = True,
        fit_regressor: RegressorFit = fit_local,
    ) -> HousePriceModel:
        """Train on the dataset's training rows (time split) or every row (use_all_rows).

        ``fit_regressor`` fits the two saved price regressors (the tabular stage); the
        siamese stage and its attributes-only residual targets are fitted here regardless.
        """
        dev = resolve_device(device)
        check_fit_options(dataset, config)
        rec = dataset.records
        if config.use_all_rows:
            train_idx = np.arange(len(rec))
        else:
            train_idx, _ = time_split(rec, config.train_fraction)
        train = rec.iloc[train_idx]
        x_attr = attribute_frame(train, config.attributes)
        y = train["price"].to_numpy(dtype=np.float64)
        no_visual = fit_regressor(config.build_regressor(), x_attr, y)
        info = _train_info(train)
        featurizer, regressor, feats_full = None, None, None
        if dataset.has_tiles and dataset.tiles is not None:
            tiles = dataset.tiles.read(train, config.siamese.image_size, progress=progress)
            featurizer, feats_full = _fit_visual(train, x_attr, tiles, config, str(dev), progress)
            regressor = fit_regressor(config.build_regressor(), with_visual(x_attr, feats_full), y)
            info["n_train_with_tile"] = int(tiles.ok.sum())
            info["siamese_val_pair_accuracy"] = [f.val_pair_accuracy for f in featurizer.fits_]
            info["siamese_best_epoch"] = [f.best_epoch for f in featurizer.fits_]
            featurizer.to("cpu")
        meta = dataset.meta
        calibration = calibrate_rows(config, train, feats_full)
        return cls(
            config=config,
            featurizer=featurizer,
            regressor=regressor,
            regressor_no_visual=no_visual,
            tile_px=meta.get("tile_px"),
            tile_meters=meta.get("tile_meters"),
            train_ids=train["house_id"].astype(str).tolist(),
            train_features=feats_full,
            info=info,
            calibration=calibration,
        )

    # ---------------------------------------------------------------- prediction
    def visual_features(
        self,
        records: pd.DataFrame,
        tiles: TileSource | None,
        *,
        device: str = "cpu",
        progress: bool = False,
        chunk_size: int = 2048,
    ) -> tuple[np.ndarray, TileBatch | None]:
        """``(N, d)`` visual features (NaN where no usable tile) and which tiles were usable.

        Tiles are read ``chunk_size`` rows at a time, so memory does not grow with ``N``; the
        returned batch holds ``ok`` and ``reasons`` per row but no pixels.
        """
        from tqdm.auto import tqdm

        d = self.config.siamese.feature_dim
        n = len(records)
        out = np.full((n, d), np.nan, dtype=np.float32)
        if self.featurizer is None or tiles is None:
            return out, None
        size = self.config.siamese.image_size
        ok = np.zeros(n, dtype=bool)
        reasons: dict[int, str] = {}
        for s in tqdm(range(0, n, chunk_size), desc="tiles", disable=not progress, leave=False):
            batch = tiles.read(records.iloc[s : s + chunk_size], size, warn=False)
            out[s : s + chunk_size] = self._features_of(batch, out[s : s + chunk_size], device)
            ok[s : s + chunk_size] = batch.ok
            reasons.update({s + i: r for i, r in batch.reasons.items()})
        empty = np.zeros((0, size, size, 3), dtype=np.uint8)
        return out, TileBatch(pixels=empty, ok=ok, reasons=reasons)

    def _features_of(self, tiles: TileBatch, out: np.ndarray, device: str) -> np.ndarray:
        assert self.featurizer is not None
        if tiles.ok.any():
            dev = resolve_device(device)
            self.featurizer.to(dev)
            out[tiles.ok] = self.featurizer.transform(tiles.pixels[tiles.ok], device=dev)
            self.featurizer.to("cpu")
        return out

    def check_columns(self, records: pd.DataFrame) -> None:
        need = {"t_months": "sold_date"}
        missing = sorted({need.get(c, c) for c in self.attribute_columns} - set(records.columns))
        if missing:
            raise UserInputError(
                f"input table lacks column(s) {', '.join(missing)} required by "
                f"this model's attribute set {','.join(self.config.attributes)}"
            )

    def predict_frame(
        self,
        records: pd.DataFrame,
        tiles: TileSource | None,
        *,
        device: str = "cpu",
        progress: bool = False,
        contributions: bool = False,
        interval: float | None = None,
    ) -> pd.DataFrame:
        """Price every row; adds ``predicted_price``, ``used_visual`` and ``vf*`` columns.

        Rows without a usable tile (``tile_problem`` says why) use the no-visual regressor.
        A calibrated model adds the price range at level ``interval`` (default 0.8):
        ``price_low``, ``price_high``, ``interval_level``, ``fsd``, ``confidence``
        (:mod:`houseprice.valuation.calibration`).
        ``contributions`` adds ``base_price`` and ``contrib_<group>`` in currency
        (:mod:`houseprice.pricing.contributions`; ``contrib_image`` is NaN for fallback rows).
        """
        self.check_columns(records)
        x_attr = attribute_frame(records, self.config.attributes)
        feats, batch = self.visual_features(records, tiles, device=device, progress=progress)
        use = (
            ~np.isnan(feats).any(axis=1)
            if self.regressor is not None
            else np.zeros(len(records), bool)
        )
        pred = np.empty(len(records), dtype=np.float64)
        if (~use).any():
            pred[~use] = self.regressor_no_visual.predict(x_attr[~use])
        if use.any() and self.regressor is not None:
            pred[use] = self.regressor.predict(with_visual(x_attr, feats)[use])
        out = pd.DataFrame(records.drop(columns="geometry", errors="ignore")).copy()
        out["predicted_price"] = pred
        out["used_visual"] = use
        if self.calibration is not None:
            ranges = self.calibration.ranges(pred, use, interval)
            for c in ranges.columns:
                out[c] = ranges[c].to_numpy()
        for i, c in enumerate(self.visual_columns):
            out[c] = feats[:, i]
        if contributions:
            money = self._contributions(x_attr, feats, use)
            for c in money.columns:
                out[c] = money[c].to_numpy()
        if batch is not None:
            out["tile_problem"] = [batch.reasons.get(i) for i in range(len(records))]
        elif self.featurizer is not None:
            out["tile_problem"] = "no imagery for this table"
        return out

    def _contributions(
        self, x_attr: pd.DataFrame, feats: np.ndarray, use: np.ndarray
    ) -> pd.DataFrame:
        """Money contributions of each row's regressor (visual for ``use``, else fallback)."""
        parts = []
        if (~use).any():
            base, groups = log_contributions(self.regressor_no_visual, x_attr[~use])
            parts.append(money_contributions(base, groups))
        if use.any() and self.regressor is not None:
            base, groups = log_contributions(self.regressor, with_visual(x_attr, feats)[use])
            parts.append(money_contributions(base, groups))
        return pd.concat(parts).reindex(x_attr.index)

    def outside_training(self, records: pd.DataFrame) -> dict[str, int]:
        """How many rows lie well outside the training houses' area or sale period."""
        return {k: int(v.sum()) for k, v in self.outside_rows(records).items()}

    def outside_rows(self, records: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per row: well outside the training houses' area (``place``) or period (``time``).

        "Well outside": beyond the training bounding box by more than 10% of its size (or
        0.01°), or sold more than a year before / after the training period. Such prices are
        extrapolations; jobs warn about them.
        """
        n = len(records)
        out = {"place": np.zeros(n, bool), "time": np.zeros(n, bool)}
        box = self.info.get("train_bbox")
        if box and {"latitude", "longitude"} <= set(records.columns):
            x0, y0, x1, y1 = box
            mx, my = max(0.1 * (x1 - x0), 0.01), max(0.1 * (y1 - y0), 0.01)
            lon, lat = records["longitude"], records["latitude"]
            far = (lon < x0 - mx) | (lon > x1 + mx) | (lat < y0 - my) | (lat > y1 + my)
            out["place"] = far.to_numpy(dtype=bool)
        span = self.info.get("train_date_range")
        if span and "sold_date" in records.columns:
            lo = pd.Timestamp(span[0]) - pd.DateOffset(years=1)
            hi = pd.Timestamp(span[1]) + pd.DateOffset(years=1)
            d = pd.to_datetime(records["sold_date"])
            out["time"] = ((d < lo) | (d > hi)).to_numpy(dtype=bool)
        return out

    # --------------------------------------------------------------- persistence
    def save(
        self,
        folder: str | Path,
        *,
        overwrite: bool = False,
        extra_writer: Callable[[Path], list[str]] | None = None,
        inputs: tuple[str | Path, ...] = (),
    ) -> Path:
        """Write the model folder atomically (layout: :mod:`houseprice.valuation.folder`).

        ``inputs`` (e.g. the training data) may not be inside ``folder``; an existing folder
        is replaced only with ``overwrite`` and only if houseprice wrote it.
        """
        parts = ModelParts(
            config=self.config,
            regressor_no_visual=self.regressor_no_visual,
            regressor=self.regressor,
            featurizer=self.featurizer,
            train_features=self.train_features,
            train_ids=self.train_ids,
            tile_px=self.tile_px,
            tile_meters=self.tile_meters,
            feature_names={
                "no_visual": self.attribute_columns,
                "visual": self.attribute_columns + self.visual_columns,
            },
            info=self.info,
            calibration=self.calibration,
        )
        return save_model(
            parts, folder, overwrite=overwrite, extra_writer=extra_writer, inputs=inputs
        )

    @classmethod
    def load(cls, folder: str | Path) -> HousePriceModel:
        """Load a model folder; anything wrong with it is a :class:`FormatError`."""
        p = load_model(folder)
        model = cls(
            config=p.config,
            featurizer=p.featurizer,
            regressor=p.regressor,
            regressor_no_visual=p.regressor_no_visual,
            tile_px=p.tile_px,
            tile_meters=p.tile_meters,
            train_ids=p.train_ids,
            train_features=p.train_features,
            info=p.info,
            calibration=p.calibration,
        )
        names = p.feature_names
        expected = model.attribute_columns
        if names["no_visual"] != expected or names["visual"] != expected + model.visual_columns:
            raise FormatError(f"{folder}/model.json: feature_names do not fit the attribute set")
        return model
