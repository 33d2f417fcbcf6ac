"""The house-price model: visual featurizer + LightGBM regressors, trained, saved and loaded.

``HousePriceModel.fit`` trains on a dataset's training rows: cross-fitted rank-siamese nets
give visual features (out-of-fold for the training rows, see ``houseprice.vision.features``),
a ``PriceRegressor`` is fitted on attributes + visual features, and a second one on the
attributes alone is the fallback for houses without a usable tile. The model folder
(DESIGN §4) is written atomically with checksums and loaded with version/checksum checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from houseprice import __version__
from houseprice.artifacts import atomic_directory, atomic_write_json, sha256_file
from houseprice.data.houses import Dataset
from houseprice.data.houses.tiles import TileBatch, load_tiles
from houseprice.pricing.attributes import (
    FULL_SET,
    attribute_frame,
    feature_columns,
    time_split,
)
from houseprice.pricing.regressor import PriceRegressor
from houseprice.profiles import get_profile
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.features import VisualFeaturizer
from houseprice.vision.siamese import SiameseConfig, SiameseTrainConfig, check_configs

MODEL_FORMAT = "houseprice-model"
MODEL_FORMAT_VERSION = 2  # 2: config.siamese (architecture) + config.siamese_training
PairTarget = Literal["price", "residual"]


class ModelFormatError(ValueError):
    """A model folder is missing files, has a wrong version or a checksum mismatch."""


@dataclass
class RegressorConfig:
    n_estimators: int = 800
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_child_samples: int = 10

    def build(self, seed: int) -> PriceRegressor:
        return PriceRegressor(**asdict(self), random_state=seed)


# The product's siamese ranks the attributes-only residual with its main head and log price
# with an auxiliary head at this weight (docs/pricing.md: measured 0 / 0.5 / 1 / 2 / 4).
AUX_PRICE_WEIGHT = 2.0


def _product_siamese() -> SiameseConfig:
    return SiameseConfig(aux_head=True)


def _product_siamese_training() -> SiameseTrainConfig:
    return SiameseTrainConfig(aux_weight=AUX_PRICE_WEIGHT)


@dataclass
class TrainConfig:
    """Everything that defines a trained model (saved in model.json)."""

    attributes: tuple[str, ...] = FULL_SET
    siamese: SiameseConfig = field(default_factory=_product_siamese)  # architecture
    siamese_training: SiameseTrainConfig = field(default_factory=_product_siamese_training)
    regressor: RegressorConfig = field(default_factory=RegressorConfig)
    n_folds: int = 3  # cross-fitting folds for training-row features (0 = naive)
    pair_target: PairTarget = "residual"
    match_attributes: tuple[str, ...] = ("G", "A")  # matched-partner space for pairs
    train_fraction: float = 0.6
    use_all_rows: bool = False  # True: train on every row (production), no held-out split
    weights: str | None = None  # local backbone weights file
    seed: int = 0

    def __post_init__(self) -> None:
        check_configs(self.siamese, self.siamese_training)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["siamese"] = self.siamese.to_dict()
        d["siamese_training"] = self.siamese_training.to_dict()
        d["attributes"] = list(self.attributes)
        d["match_attributes"] = list(self.match_attributes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["siamese"] = SiameseConfig.from_dict(d["siamese"])
        d["siamese_training"] = SiameseTrainConfig.from_dict(d["siamese_training"])
        d["regressor"] = RegressorConfig(**d["regressor"])
        d["attributes"] = tuple(d["attributes"])
        d["match_attributes"] = tuple(d["match_attributes"])
        return cls(**d)


def profile_config(
    profile: str,
    *,
    attributes: tuple[str, ...] = FULL_SET,
    backbone: str | None = None,
    seed: int = 0,
) -> TrainConfig:
    """The quick / standard / paper training config, built from ``houseprice.profiles``.

    ``backbone`` replaces the profile's backbone; an unknown profile is a ``UserInputError``.
    """
    spec = get_profile(profile).train
    arch: dict[str, Any] = dict(spec.siamese)
    name = backbone if backbone is not None else spec.backbone
    if name is not None:
        arch["backbone"] = BackboneConfig(name=name)
    return TrainConfig(
        attributes=attributes,
        siamese=SiameseConfig(**arch),
        siamese_training=SiameseTrainConfig(**spec.siamese_training),
        regressor=RegressorConfig(n_estimators=spec.n_estimators),
        n_folds=spec.n_folds,
        pair_target=spec.pair_target,  # type: ignore[arg-type]
        seed=seed,
    )


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; an unavailable CUDA request is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA device is available")
    return dev


def tile_paths(ds_root: Path, records: pd.DataFrame) -> list[Path | None]:
    from houseprice.data.houses.records import resolve_asset

    if "image" not in records.columns:
        return [None] * len(records)
    return [resolve_asset(ds_root, v) if isinstance(v, str) else None for v in records["image"]]


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
        reg = cfg.regressor.build(cfg.seed).fit(x.iloc[tr], np.exp(log_price[tr]))
        res[te] = log_price[te] - np.log(reg.predict(x.iloc[te]))
    return res


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

    @property
    def attribute_columns(self) -> list[str]:
        return feature_columns(self.config.attributes)

    @property
    def visual_columns(self) -> list[str]:
        d = self.config.siamese.feature_dim
        return [f"vf{i}" for i in range(d)] if self.featurizer is not None else []

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls, dataset: Dataset, config: TrainConfig, *, device: str = "cpu", progress: bool = True
    ) -> HousePriceModel:
        """Train on the dataset's training rows (time split) or every row (use_all_rows)."""
        dev = resolve_device(device)
        rec = dataset.records
        if config.use_all_rows:
            train_idx = np.arange(len(rec))
        else:
            train_idx, _ = time_split(rec, config.train_fraction)
        train = rec.iloc[train_idx]
        x_attr = attribute_frame(train, config.attributes)
        y = train["price"].to_numpy(dtype=np.float64)
        no_visual = config.regressor.build(config.seed).fit(x_attr, y)
        info: dict[str, Any] = {
            "n_train": len(train),
            "train_date_range": [
                str(train["sold_date"].min().date()),
                str(train["sold_date"].max().date()),
            ],
        }
        featurizer, regressor, feats_full = None, None, None
        if dataset.has_tiles:
            size = config.siamese.image_size
            tiles = load_tiles(tile_paths(dataset.root, train), size, progress=progress)
            ok = tiles.ok
            if ok.sum() < 8:
                raise ValueError(
                    f"only {int(ok.sum())} training rows have a usable tile; "
                    "need at least 8 to train visual features"
                )
            log_y = np.log(y)
            targets = log_y
            if config.pair_target == "residual":
                targets = _residual_targets(x_attr, log_y, config)
            if config.siamese_training.aux_weight > 0:  # auxiliary head ranks by log price
                targets = np.column_stack([targets, log_y])
            match = (
                _match_matrix(train, config.match_attributes) if config.match_attributes else None
            )
            featurizer = VisualFeaturizer(
                config=config.siamese,
                training=config.siamese_training,
                n_folds=config.n_folds,
                seed=config.seed,
                device=str(dev),
                progress=progress,
            )
            feats = featurizer.fit_transform(
                tiles.pixels[ok], targets[ok], match=None if match is None else match[ok]
            )
            feats_full = np.full((len(train), config.siamese.feature_dim), np.nan, np.float32)
            feats_full[ok] = feats
            x_vis = _with_visual(x_attr, feats_full)
            regressor = config.regressor.build(config.seed).fit(x_vis, y)
            info["n_train_with_tile"] = int(ok.sum())
            info["siamese_val_pair_accuracy"] = [f.val_pair_accuracy for f in featurizer.fits_]
            info["siamese_best_epoch"] = [f.best_epoch for f in featurizer.fits_]
            featurizer.to("cpu")
        meta = dataset.meta
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
        )

    # ---------------------------------------------------------------- prediction
    def visual_features(
        self, root: Path, records: pd.DataFrame, *, device: str = "cpu", progress: bool = False
    ) -> tuple[np.ndarray, TileBatch | None]:
        """``(N, d)`` visual features (NaN where no usable tile) and the tiles read."""
        d = self.config.siamese.feature_dim
        out = np.full((len(records), d), np.nan, dtype=np.float32)
        if self.featurizer is None:
            return out, None
        tiles = load_tiles(
            tile_paths(root, records), self.config.siamese.image_size, progress=progress, warn=False
        )
        if tiles.ok.any():
            dev = resolve_device(device)
            self.featurizer.to(dev)
            out[tiles.ok] = self.featurizer.transform(tiles.pixels[tiles.ok], device=dev)
            self.featurizer.to("cpu")
        return out, tiles

    def check_columns(self, records: pd.DataFrame) -> None:
        need = {"t_months": "sold_date"}
        missing = sorted({need.get(c, c) for c in self.attribute_columns} - set(records.columns))
        if missing:
            raise ValueError(
                f"input table lacks column(s) {', '.join(missing)} required by "
                f"this model's attribute set {','.join(self.config.attributes)}"
            )

    def predict_frame(
        self, root: Path, records: pd.DataFrame, *, device: str = "cpu", progress: bool = False
    ) -> pd.DataFrame:
        """Price every row; adds ``predicted_price``, ``used_visual`` and ``vf*`` columns."""
        self.check_columns(records)
        x_attr = attribute_frame(records, self.config.attributes)
        feats, tiles = self.visual_features(root, records, device=device, progress=progress)
        use = (
            ~np.isnan(feats).any(axis=1)
            if self.regressor is not None
            else np.zeros(len(records), bool)
        )
        pred = np.empty(len(records), dtype=np.float64)
        if (~use).any():
            pred[~use] = self.regressor_no_visual.predict(x_attr[~use])
        if use.any() and self.regressor is not None:
            pred[use] = self.regressor.predict(_with_visual(x_attr, feats)[use])
        out = pd.DataFrame(records.drop(columns="geometry", errors="ignore")).copy()
        out["predicted_price"] = pred
        out["used_visual"] = use
        for i, c in enumerate(self.visual_columns):
            out[c] = feats[:, i]
        if tiles is not None:
            out["tile_problem"] = [tiles.reasons.get(i) for i in range(len(records))]
        return out

    # --------------------------------------------------------------- persistence
    def save(
        self,
        folder: str | Path,
        *,
        overwrite: bool = False,
        extra_writer: Callable[[Path], list[str]] | None = None,
    ) -> Path:
        """Write the model folder atomically (DESIGN §4)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        with atomic_directory(folder, overwrite=overwrite) as tmp:
            self.regressor_no_visual.save_model(tmp / "regressor_no_visual.txt")
            files = ["regressor_no_visual.txt"]
            if self.featurizer is not None and self.regressor is not None:
                tensors = self.featurizer.state_tensors()
                assert self.train_features is not None
                tensors["train_features"] = torch.from_numpy(self.train_features)
                save_file(tensors, str(tmp / "siamese.safetensors"))
                self.regressor.save_model(tmp / "regressor.txt")
                files += ["siamese.safetensors", "regressor.txt"]
            if extra_writer is not None:  # e.g. the grad-weight database
                files += extra_writer(tmp)
            meta = {
                "format": MODEL_FORMAT,
                "format_version": MODEL_FORMAT_VERSION,
                "versions": _versions(),
                "config": self.config.to_dict(),
                "attributes": list(self.config.attributes),
                "feature_names": {
                    "no_visual": self.attribute_columns,
                    "visual": self.attribute_columns + self.visual_columns,
                },
                "tile_px": self.tile_px,
                "tile_meters": self.tile_meters,
                "n_visual_models": len(self.featurizer.models_) if self.featurizer else 0,
                "train_ids": self.train_ids,
                "info": self.info,
                "checksums": {f: sha256_file(tmp / f) for f in files},
            }
            atomic_write_json(tmp / "model.json", meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> HousePriceModel:
        """Load a model folder; wrong versions, missing files or bad checksums are errors."""
        from safetensors.torch import load_file

        folder = Path(folder)
        meta_path = folder / "model.json"
        if not meta_path.exists():
            raise ModelFormatError(
                f"{folder}: not a houseprice model folder (no model.json); "
                "create one with `houseprice train`"
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != MODEL_FORMAT:
            raise ModelFormatError(
                f"{meta_path}: format is {meta.get('format')!r}, expected {MODEL_FORMAT!r}"
            )
        if meta.get("format_version") != MODEL_FORMAT_VERSION:
            raise ModelFormatError(
                f"{meta_path}: format_version {meta.get('format_version')} is "
                f"not supported (this houseprice reads "
                f"{MODEL_FORMAT_VERSION}); retrain the model"
            )
        for name, digest in meta["checksums"].items():
            p = folder / name
            if not p.exists():
                raise ModelFormatError(f"{p}: listed in model.json but missing")
            if sha256_file(p) != digest:
                raise ModelFormatError(f"{p}: checksum mismatch (file changed or corrupted)")
        config = TrainConfig.from_dict(meta["config"])
        names = meta["feature_names"]
        no_visual = PriceRegressor.load_model(
            folder / "regressor_no_visual.txt", names["no_visual"]
        )
        featurizer = regressor = train_features = None
        if meta["n_visual_models"]:
            tensors = load_file(str(folder / "siamese.safetensors"))
            train_features = tensors.pop("train_features").numpy()
            featurizer = VisualFeaturizer.from_state_tensors(
                tensors,
                config=config.siamese,
                training=config.siamese_training,
                n_models=meta["n_visual_models"],
                n_folds=config.n_folds,
            )
            regressor = PriceRegressor.load_model(folder / "regressor.txt", names["visual"])
        model = cls(
            config=config,
            featurizer=featurizer,
            regressor=regressor,
            regressor_no_visual=no_visual,
            tile_px=meta["tile_px"],
            tile_meters=meta["tile_meters"],
            train_ids=list(meta["train_ids"]),
            train_features=train_features,
            info=meta.get("info", {}),
        )
        model.info["folder"] = str(folder)
        return model


def _with_visual(x_attr: pd.DataFrame, feats: np.ndarray) -> pd.DataFrame:
    x = x_attr.copy()
    for i in range(feats.shape[1]):
        x[f"vf{i}"] = feats[:, i]
    return x


def _versions() -> dict[str, str]:
    import lightgbm
    import sklearn

    return {
        "houseprice": __version__,
        "torch": torch.__version__,
        "lightgbm": lightgbm.__version__,
        "scikit-learn": sklearn.__version__,
    }
