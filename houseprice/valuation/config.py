"""What defines a trained house-price model: ``TrainConfig``, and the profiles' configs.

``TrainConfig`` is saved in ``model.json``. Its parts keep one source of truth each: the
siamese architecture (``SiameseConfig``) and training (``SiameseTrainConfig``) live in
:mod:`houseprice.vision.siamese`; the regressor's parameters are ``PriceRegressor``'s own
(``regressor`` holds overrides of its defaults). :func:`profile_config` builds the quick /
standard / paper configs from :mod:`houseprice.profiles`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from houseprice.errors import FormatError
from houseprice.pricing.attributes import FULL_SET
from houseprice.pricing.regressor import PriceRegressor
from houseprice.profiles import get_profile
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.siamese import SiameseConfig, SiameseTrainConfig, check_configs

PairTarget = Literal["price", "residual"]

# The product's siamese ranks the attributes-only residual with its main head and log price
# with an auxiliary head at this weight (docs/pricing.md: measured 0 / 0.5 / 1 / 2 / 4).
AUX_PRICE_WEIGHT = 2.0


def _product_siamese() -> SiameseConfig:
    return SiameseConfig(aux_head=True)


def _product_siamese_training() -> SiameseTrainConfig:
    return SiameseTrainConfig(aux_weight=AUX_PRICE_WEIGHT)


def regressor_params(overrides: dict[str, Any]) -> dict[str, Any]:
    """``PriceRegressor``'s parameters with ``overrides`` (``random_state`` comes from the seed)."""
    if "random_state" in overrides:
        raise ValueError("regressor overrides may not set random_state (TrainConfig.seed does)")
    params = PriceRegressor(**overrides).get_params()  # unknown names raise TypeError here
    params.pop("random_state")
    return params


@dataclass
class TrainConfig:
    """Everything that defines a trained model (saved in model.json)."""

    attributes: tuple[str, ...] = FULL_SET
    siamese: SiameseConfig = field(default_factory=_product_siamese)  # architecture
    siamese_training: SiameseTrainConfig = field(default_factory=_product_siamese_training)
    # PriceRegressor parameters (given: overrides of its defaults; stored: all of them)
    regressor: dict[str, Any] = field(default_factory=dict)
    n_folds: int = 3  # cross-fitting folds for training-row features (0 = naive)
    pair_target: PairTarget = "residual"
    match_attributes: tuple[str, ...] = ("G", "A")  # matched-partner space for pairs
    train_fraction: float = 0.6
    use_all_rows: bool = False  # True: train on every row (production), no held-out split
    weights: str | None = None  # local backbone weights file (its sha256 is in model.json)
    seed: int = 0

    def __post_init__(self) -> None:
        check_configs(self.siamese, self.siamese_training)
        self.regressor = regressor_params(self.regressor)  # every parameter, explicitly

    def build_regressor(self) -> PriceRegressor:
        """A new, unfitted price regressor of this config."""
        return PriceRegressor(**regressor_params(self.regressor), random_state=self.seed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["siamese"] = self.siamese.to_dict()
        d["siamese_training"] = self.siamese_training.to_dict()
        d["attributes"] = list(self.attributes)
        d["match_attributes"] = list(self.match_attributes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild a saved config; anything malformed is a :class:`FormatError`."""
        try:
            d = dict(d)
            unknown = sorted(set(d) - set(cls.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown keys {unknown}")
            d["siamese"] = SiameseConfig.from_dict(d["siamese"])
            d["siamese_training"] = SiameseTrainConfig.from_dict(d["siamese_training"])
            d["regressor"] = dict(d["regressor"])
            d["attributes"] = tuple(d["attributes"])
            d["match_attributes"] = tuple(d["match_attributes"])
            return cls(**d)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise FormatError(f"model.json: 'config' is not a valid training config ({e})") from e


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
        regressor={"n_estimators": spec.n_estimators},
        n_folds=spec.n_folds,
        pair_target=spec.pair_target,  # type: ignore[arg-type]
        seed=seed,
    )
