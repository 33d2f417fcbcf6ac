"""Rank-siamese training: learns a planted visual signal; pieces behave as specified."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from houseprice.vision.features import VisualFeaturizer
from houseprice.vision.siamese import (
    SiameseConfig,
    SiameseTrainConfig,
    batch_pairs,
    dihedral_augment,
    fit_siamese,
    held_out_pairs,
)

Planted = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def test_siamese_learns_planted_signal(
    planted_tiles: Planted, small_arch: SiameseConfig, small_training: SiameseTrainConfig
) -> None:
    tiles, log_price, pool, area = planted_tiles
    # rank by the visual driver only (price / area); area is invisible in the tile
    target = log_price - np.log(area)
    fit = fit_siamese(tiles, target, config=small_arch, training=small_training, seed=0)
    assert fit.val_pair_accuracy > 0.8, fit.history
    feats = VisualFeaturizer(config=small_arch, training=small_training, n_folds=0)
    feats.models_, feats.align_ = (
        [fit.model],
        [(np.eye(4, dtype=np.float32), np.zeros(4, np.float32))],
    )
    f = feats.transform(tiles)
    score = fit.model.fc.weight[1] - fit.model.fc.weight[0]  # logit direction "pricier"
    s = f @ score.detach().numpy()
    assert s[pool].mean() > s[~pool].mean()


def test_training_is_deterministic_given_seed(
    planted_tiles: Planted, small_arch: SiameseConfig, small_training: SiameseTrainConfig
) -> None:
    tiles, log_price, _, _ = planted_tiles
    training = dataclasses.replace(small_training, epochs=2)
    a = fit_siamese(tiles[:40], log_price[:40], config=small_arch, training=training, seed=5)
    b = fit_siamese(tiles[:40], log_price[:40], config=small_arch, training=training, seed=5)
    for (ka, va), (_, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert torch.equal(va, vb), ka


def test_batch_pairs_skip_near_ties_and_label_order() -> None:
    t = torch.tensor([0.0, 0.01, 0.5, -0.3])
    i, j, y = batch_pairs(t, tie_margin=0.05)
    pairs = {(int(a), int(b)): int(c) for a, b, c in zip(i, j, y, strict=True)}
    assert (0, 1) not in pairs  # near-tie dropped
    assert pairs[(0, 2)] == 0 and pairs[(2, 3)] == 1 and pairs[(0, 3)] == 1


def test_dihedral_augment_is_a_rotation_or_flip() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = dihedral_augment(x, torch.Generator().manual_seed(1))
    for b in range(2):
        group = [torch.rot90(x[b], k, (1, 2)) for k in range(4)]
        group += [g.flip(2) for g in group]
        assert any(torch.equal(out[b], g) for g in group)


def test_auxiliary_head_shapes_the_features(
    planted_tiles: Planted, small_arch: SiameseConfig, small_training: SiameseTrainConfig
) -> None:
    tiles, log_price, _, area = planted_tiles
    # main target: area, invisible in the tile; auxiliary: the visual driver (the pool)
    targets = np.column_stack([np.log(area), log_price - np.log(area)])
    arch = dataclasses.replace(small_arch, aux_head=True)
    training = dataclasses.replace(small_training, aux_weight=1.0)
    fit = fit_siamese(tiles, targets, config=arch, training=training, seed=0)
    assert fit.model.fc_aux is not None
    feats = fit.model.branch(fit.model.preprocess(torch.from_numpy(tiles))).detach().numpy()
    pairs = held_out_pairs(targets[:, 1], 0.08, 5000, 0)
    fi, fj = torch.from_numpy(feats[pairs[:, 0]]), torch.from_numpy(feats[pairs[:, 1]])
    y = targets[pairs[:, 0], 1] > targets[pairs[:, 1], 1]
    pred = fit.model.fc_aux(fi - fj).argmax(1).numpy() == 1
    assert (pred == y).mean() > 0.75  # the auxiliary head orders pairs by the pool
    with pytest.raises(ValueError, match=r"needs targets of shape \(N, 2\)"):
        fit_siamese(tiles, log_price, config=arch, training=training, seed=0)


def test_aux_head_must_match_aux_weight(
    planted_tiles: Planted, small_arch: SiameseConfig, small_training: SiameseTrainConfig
) -> None:
    tiles, log_price, _, _ = planted_tiles
    two = np.column_stack([log_price, log_price])
    no_head = dataclasses.replace(small_training, aux_weight=1.0)
    with pytest.raises(ValueError, match=r"aux_head=False does not match .*aux_weight=1\.0"):
        fit_siamese(tiles, two, config=small_arch, training=no_head, seed=0)
    unused_head = dataclasses.replace(small_arch, aux_head=True)
    with pytest.raises(ValueError, match=r"aux_head=True does not match .*aux_weight=0\.0"):
        fit_siamese(tiles, log_price, config=unused_head, training=small_training, seed=0)
