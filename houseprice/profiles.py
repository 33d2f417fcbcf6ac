"""THE profile table: quick | standard | paper, for the city, the birds, training and benchmarks.

Every command that takes ``--profile`` reads :data:`PROFILES` (through :func:`get_profile`);
nothing else defines a profile. This module is a leaf: it holds plain values and *overrides of
the defaults* of the configs that live in higher layers (``SiameseConfig``,
``SiameseTrainConfig``, ``EmbeddingTrainConfig``, ...), keyed by field name. Each layer's
builder applies them (``houseprice.valuation.config.profile_config``, the bench's profile
builder); a test checks that every key names a real field, and the docs' profile table is
generated from the built configs (``houseprice.jobs.profile_table``).

- ``quick``: CI and tests, seconds to a few minutes.
- ``standard``: the default; the 2-core machine in ≤ 5 min for the demo, ≤ 30 min for a
  benchmark.
- ``paper``: the papers' settings (ResNet-50, 224 px, ImageNet weights from a local file);
  meant for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from houseprice.errors import UserInputError


class Profile(str, Enum):
    """The profile names (a typer choice)."""

    quick = "quick"
    standard = "standard"
    paper = "paper"


def _frozen(**kw: Any) -> MappingProxyType[str, Any]:
    return MappingProxyType(dict(kw))


@dataclass(frozen=True)
class CitySpec:
    """The synthetic city the demo (and ``bench pricing``) generates."""

    houses: int
    tile_px: int = 64


@dataclass(frozen=True)
class BirdsSpec:
    """Synthetic birds (``data synth-birds`` and ``bench explainers --data`` of a new folder)."""

    classes: int
    per_class: int
    image_px: int


@dataclass(frozen=True)
class TrainSpec:
    """The house-price model: siamese architecture/training overrides, regressor, cross-fitting."""

    siamese: MappingProxyType[str, Any]  # SiameseConfig (architecture) overrides
    siamese_training: MappingProxyType[str, Any]  # SiameseTrainConfig overrides
    backbone: str | None = None  # None: BackboneConfig's default (the compact net)
    n_estimators: int = 800  # LightGBM trees of both price regressors
    n_folds: int = 3  # cross-fitting folds for the training rows' visual features
    pair_target: str = "residual"  # what the main pair head ranks: "residual" or "price"
    needs_weights: bool = False  # training needs --weights (a local backbone file)
    with_regressors: bool = True  # the demo's evaluation also fits the comparison regressors


@dataclass(frozen=True)
class BenchSpec:
    """The explainer localisation benchmark (Chen Table 1 layout)."""

    embedding: MappingProxyType[str, Any]  # EmbeddingTrainConfig overrides
    backbone: str | None = None
    aug_scale: tuple[float, float] | None = (0.5, 1.0)  # None: CUBAugConfig's default
    n_samples: int = 50  # N_s, triplets per anchor (Chen §4.1)
    top_m: int = 50  # M, capped by the layer's channel count
    kmeans_k: int = 50  # database compressed to K centres (Chen §4.1 storage analysis)
    n_candidates: int = 1000  # candidate triplets drawn per anchor to find N_s valid ones
    eval_images: int | None = None  # test images explained (class-stratified); None = all
    db_images: int | None = None  # training images in the grad-weight database; None = all
    batch_size: int = 32
    l2caf: MappingProxyType[str, Any] = field(default_factory=_frozen)  # L2CAFConfig overrides
    n_runs: int = 3  # sampler seeds for the run-to-run spread of sampled vs proxy methods
    n_qualitative: int = 4
    needs_weights: bool = False


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    summary: str
    city: CitySpec
    birds: BirdsSpec
    train: TrainSpec
    bench: BenchSpec


PROFILES: dict[Profile, ProfileSpec] = {
    Profile.quick: ProfileSpec(
        name="quick",
        summary="CI and tests: seconds to a few minutes; its numbers are noise",
        city=CitySpec(houses=400),
        birds=BirdsSpec(classes=20, per_class=6, image_px=64),
        train=TrainSpec(
            siamese=_frozen(aux_head=True),
            siamese_training=_frozen(epochs=4, patience=4, aux_weight=2.0),
            n_estimators=300,
            n_folds=2,
            with_regressors=False,
        ),
        bench=BenchSpec(
            embedding=_frozen(
                image_size=64,
                epochs=2,
                classes_per_batch=5,
                images_per_class=3,
                batches_per_epoch=3,
                lr=1e-3,
            ),
            n_samples=10,
            n_candidates=200,
            eval_images=12,
            batch_size=12,
            l2caf=_frozen(max_iter=60, patience=10),
            n_runs=2,
            n_qualitative=2,
        ),
    ),
    Profile.standard: ProfileSpec(
        name="standard",
        summary="the default: the 2-core machine in ≤ 5 min (demo) / ≤ 30 min (benchmarks)",
        city=CitySpec(houses=2000),
        birds=BirdsSpec(classes=200, per_class=30, image_px=64),
        train=TrainSpec(
            # The product's siamese ranks the attributes-only residual with its main head and
            # log price with an auxiliary head at weight 2 (docs/pricing.md).
            siamese=_frozen(aux_head=True),
            siamese_training=_frozen(aux_weight=2.0),
        ),
        bench=BenchSpec(
            # chosen on held-out training classes 81-100 (houseprice/bench/tuning.py,
            # docs/results/bench_explainers_standard/tuning.json), never on the test classes
            embedding=_frozen(
                image_size=64,
                epochs=15,
                classes_per_batch=16,
                images_per_class=4,
                loss="normsoftmax",
                temperature=0.1,
                lr=2e-3,
                warmup_epochs=1.0,
            ),
            eval_images=500,
            db_images=1500,
            batch_size=50,
            l2caf=_frozen(max_iter=300, patience=25),
        ),
    ),
    Profile.paper: ProfileSpec(
        name="paper",
        summary="the papers' settings: ResNet-50 at 224 px from local ImageNet weights; a GPU",
        city=CitySpec(houses=2000),
        birds=BirdsSpec(classes=200, per_class=60, image_px=256),
        train=TrainSpec(
            # The paper: GAP, one pair head ranking by price, only the FC layers are trained.
            siamese=_frozen(image_size=224, pooling="gap", aux_head=False),
            siamese_training=_frozen(
                freeze_backbone=True, epochs=30, batch_size=32, lr=1e-3, aux_weight=0.0
            ),
            backbone="resnet50",
            pair_target="price",
            needs_weights=True,
        ),
        bench=BenchSpec(
            embedding=_frozen(
                image_size=224,
                epochs=40,
                classes_per_batch=32,
                images_per_class=4,
                lr=1e-4,
                eval_batch_size=64,
            ),
            backbone="resnet50",
            aug_scale=None,  # random resized crop, area 16-100 %, and flips at 224 px
            batch_size=32,
            needs_weights=True,
        ),
    ),
}


def get_profile(name: str | Profile) -> ProfileSpec:
    """The profile called ``name``; an unknown name is a :class:`UserInputError`."""
    try:
        return PROFILES[Profile(name)]
    except ValueError:
        choices = ", ".join(p.value for p in Profile)
        raise UserInputError(f"--profile must be one of {choices}, got {name!r}") from None


__all__ = [
    "PROFILES",
    "BenchSpec",
    "BirdsSpec",
    "CitySpec",
    "Profile",
    "ProfileSpec",
    "TrainSpec",
    "get_profile",
]
