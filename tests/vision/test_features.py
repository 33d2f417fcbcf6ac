"""VisualFeaturizer: a scikit-learn-style transformer of cross-fitted, aligned siamese nets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.base import clone

from houseprice.vision.features import VisualFeaturizer, _affine_fit
from houseprice.vision.siamese import SiameseConfig, SiameseTrainConfig

Planted = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def test_affine_alignment_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 4))
    a_true, b_true = rng.normal(size=(4, 4)), rng.normal(size=4)
    a, b = _affine_fit(src, src @ a_true + b_true)
    np.testing.assert_allclose(a, a_true, atol=1e-4)
    np.testing.assert_allclose(b, b_true, atol=1e-4)


def test_parameters_are_keyword_only_and_cloneable(
    small_arch: SiameseConfig, small_training: SiameseTrainConfig
) -> None:
    feat = VisualFeaturizer(config=small_arch, training=small_training, n_folds=2, seed=4)
    assert feat.get_params() == {
        "config": small_arch,
        "training": small_training,
        "n_folds": 2,
        "seed": 4,
        "device": "cpu",
        "progress": False,
        "weights": None,
    }
    again = clone(feat.set_params(device="auto"))
    assert again.get_params()["device"] == "auto" and again.training == small_training
    with pytest.raises(TypeError):
        VisualFeaturizer(small_arch, small_training)  # type: ignore[misc]
    with pytest.raises(RuntimeError, match="not fitted"):
        feat.transform(np.zeros((1, 32, 32, 3), np.uint8))


def test_fit_cross_fits_and_transform_averages(
    planted_tiles: Planted, small_arch: SiameseConfig, small_training: SiameseTrainConfig
) -> None:
    tiles, log_price, _, _ = planted_tiles
    training = dataclasses.replace(small_training, epochs=1)
    feat = VisualFeaturizer(config=small_arch, training=training, n_folds=2, seed=1)
    assert feat.fit(tiles[:40], log_price[:40]) is feat
    assert len(feat.models_) == len(feat.fits_) == len(feat.align_) == 2
    assert feat.oof_features_.shape == (40, 4) and feat.oof_features_.dtype == np.float32
    # net 0 is the reference space: its map is the identity
    np.testing.assert_allclose(feat.align_[0][0], np.eye(4), atol=1e-4)
    np.testing.assert_allclose(feat.align_[0][1], np.zeros(4), atol=1e-4)
    # fit_transform = fit + the out-of-fold features, the same for the same seed
    oof = clone(feat).fit_transform(tiles[:40], log_price[:40])
    np.testing.assert_array_equal(oof, feat.oof_features_)
    new = feat.transform(tiles[40:44])
    assert new.shape == (4, 4)
    again = VisualFeaturizer.from_state_tensors(
        feat.state_tensors(), config=small_arch, training=training, n_models=2, n_folds=2
    )
    np.testing.assert_array_equal(again.transform(tiles[40:44]), new)


def test_naive_mode_gives_in_sample_features(
    planted_tiles: Planted, small_arch: SiameseConfig, small_training: SiameseTrainConfig
) -> None:
    tiles, log_price, _, _ = planted_tiles
    training = dataclasses.replace(small_training, epochs=1)
    feat = VisualFeaturizer(config=small_arch, training=training, n_folds=0).fit(
        tiles[:30], log_price[:30]
    )
    assert len(feat.models_) == 1
    np.testing.assert_array_equal(feat.oof_features_, feat.transform(tiles[:30]))
    x = feat.models_[0].preprocess(torch.from_numpy(tiles[:3]))
    torch.testing.assert_close(
        torch.from_numpy(feat.transform(tiles[:3])), feat.models_[0].branch(x).detach()
    )


def test_fit_rejects_bad_settings(
    planted_tiles: Planted, small_arch: SiameseConfig, small_training: SiameseTrainConfig
) -> None:
    tiles, log_price, _, _ = planted_tiles
    with pytest.raises(ValueError, match="n_folds must be 0"):
        VisualFeaturizer(config=small_arch, training=small_training, n_folds=1).fit(
            tiles, log_price
        )
    aux = dataclasses.replace(small_training, aux_weight=1.0)
    with pytest.raises(ValueError, match="aux_head=False does not match"):
        VisualFeaturizer(config=small_arch, training=aux).fit(tiles, log_price)
    with pytest.raises(ValueError, match="is not a device"):
        VisualFeaturizer(config=small_arch, training=small_training, device="tpu").fit(
            tiles, log_price
        )
