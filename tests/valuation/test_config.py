"""Siamese configs: architecture vs training split, dict round trips, the profiles' overrides.

The built profile configs are checked field for field against literal values of the
pre-split code (one ``SiameseConfig`` holding architecture and training together).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from houseprice.profiles import PROFILES, Profile
from houseprice.valuation.config import AUX_PRICE_WEIGHT, TrainConfig, profile_config
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.siamese import SiameseConfig, SiameseTrainConfig, check_configs

# The pre-split SiameseConfig of the standard profile, every field (architecture + training).
STANDARD_SIAMESE: dict[str, Any] = {
    "backbone": {"name": "compact", "widths": [32, 64, 128], "blocks": [1, 1, 1]},
    "feature_dim": 4,
    "image_size": 64,
    "epochs": 24,
    "batch_size": 32,
    "lr": 1e-2,
    "weight_decay": 1e-4,
    "tie_margin": 0.08,
    "local_fraction": 0.0,
    "local_k": 8,
    "patience": 10,
    "val_fraction": 0.15,
    "freeze_backbone": False,
    "augment": True,
    "max_val_pairs": 20000,
    "pooling": "radial",
    "radial_knots": 5,
    "radial_prior_sigma": 0.5,
    "aux_weight": 2.0,
}
EXPECTED: dict[str, dict[str, Any]] = {
    "quick": {
        "siamese": {**STANDARD_SIAMESE, "epochs": 4, "patience": 4},
        "n_estimators": 300,
        "n_folds": 2,
        "pair_target": "residual",
    },
    "standard": {
        "siamese": STANDARD_SIAMESE,
        "n_estimators": 800,
        "n_folds": 3,
        "pair_target": "residual",
    },
    "paper": {
        "siamese": {
            **STANDARD_SIAMESE,
            "backbone": {"name": "resnet50", "widths": [32, 64, 128], "blocks": [1, 1, 1]},
            "image_size": 224,
            "freeze_backbone": True,
            "epochs": 30,
            "batch_size": 32,
            "lr": 1e-3,
            "pooling": "gap",
            "aux_weight": 0.0,
        },
        "n_estimators": 800,
        "n_folds": 3,
        "pair_target": "price",
    },
}


def test_defaults_are_the_documented_ones() -> None:
    assert SiameseConfig().to_dict() == {
        "backbone": BackboneConfig().to_dict(),
        "feature_dim": 4,
        "image_size": 64,
        "pooling": "radial",
        "radial_knots": 5,
        "radial_prior_sigma": 0.5,
        "aux_head": False,
    }
    assert SiameseTrainConfig().to_dict() == {
        "epochs": 24,
        "batch_size": 32,
        "lr": 1e-2,
        "weight_decay": 1e-4,
        "tie_margin": 0.08,
        "local_fraction": 0.0,
        "local_k": 8,
        "patience": 10,
        "val_fraction": 0.15,
        "freeze_backbone": False,
        "augment": True,
        "max_val_pairs": 20000,
        "aux_weight": 0.0,
    }


def test_dict_round_trip_and_unknown_keys() -> None:
    arch = SiameseConfig(backbone=BackboneConfig(widths=(8, 8, 8)), pooling="gap", aux_head=True)
    training = SiameseTrainConfig(epochs=3, aux_weight=0.5, freeze_backbone=True)
    assert SiameseConfig.from_dict(arch.to_dict()) == arch
    assert SiameseTrainConfig.from_dict(training.to_dict()) == training
    with pytest.raises(ValueError, match=r"unknown siamese architecture keys \['epochs'\]"):
        SiameseConfig.from_dict({**arch.to_dict(), "epochs": 3})
    with pytest.raises(ValueError, match=r"unknown siamese training keys \['pooling'\]"):
        SiameseTrainConfig.from_dict({**training.to_dict(), "pooling": "gap"})


def test_aux_head_iff_aux_weight() -> None:
    check_configs(SiameseConfig(aux_head=True), SiameseTrainConfig(aux_weight=2.0))
    check_configs(SiameseConfig(), SiameseTrainConfig())
    with pytest.raises(ValueError, match="aux_head=True does not match"):
        check_configs(SiameseConfig(aux_head=True), SiameseTrainConfig())
    with pytest.raises(ValueError, match="aux_head=False does not match"):
        TrainConfig(siamese=SiameseConfig())  # default training has the auxiliary loss
    with pytest.raises(ValueError, match="unknown pooling"):
        SiameseConfig(pooling="max")


@pytest.mark.parametrize("profile", ["quick", "standard", "paper"])
def test_profile_configs_match_the_pre_split_values(profile: str) -> None:
    cfg = profile_config(profile, seed=7)
    want = EXPECTED[profile]
    arch, training = cfg.siamese.to_dict(), cfg.siamese_training.to_dict()
    assert not set(arch) & set(training)
    assert arch.pop("aux_head") is (want["siamese"]["aux_weight"] > 0)
    assert {**arch, **training} == want["siamese"]
    assert cfg.regressor["n_estimators"] == want["n_estimators"]
    assert cfg.n_folds == want["n_folds"] and cfg.pair_target == want["pair_target"]
    assert cfg.seed == 7 and cfg.weights is None and not cfg.use_all_rows
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_standard_profile_is_the_default_config_and_backbone_override() -> None:
    assert profile_config("standard") == TrainConfig()
    assert TrainConfig().siamese_training.aux_weight == AUX_PRICE_WEIGHT
    cfg = profile_config("paper", backbone="resnet18")
    assert cfg.siamese.backbone == BackboneConfig(name="resnet18")
    with pytest.raises(ValueError, match="--profile must be one of"):
        profile_config("huge")


@pytest.mark.parametrize("profile", list(Profile))
def test_profile_override_keys_name_real_fields(profile: Profile) -> None:
    train = PROFILES[profile].train
    arch_fields = {f.name for f in dataclasses.fields(SiameseConfig)}
    training_fields = {f.name for f in dataclasses.fields(SiameseTrainConfig)}
    assert set(train.siamese) <= arch_fields, set(train.siamese) - arch_fields
    assert set(train.siamese_training) <= training_fields, (
        set(train.siamese_training) - training_fields
    )
    check_configs(SiameseConfig(**train.siamese), SiameseTrainConfig(**train.siamese_training))
