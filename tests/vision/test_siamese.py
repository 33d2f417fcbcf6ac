"""Rank-siamese network: learns a planted visual signal; pieces behave as specified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from houseprice.data.houses import load_dataset
from houseprice.data.houses.tiles import load_tiles
from houseprice.valuation.model import tile_paths
from houseprice.vision.backbones import BackboneConfig, build_backbone
from houseprice.vision.features import VisualFeaturizer, _affine_fit
from houseprice.vision.siamese.model import (
    RadialGate,
    RankSiamese,
    SiameseConfig,
    batch_pairs,
    dihedral_augment,
    fit_siamese,
    held_out_pairs,
)

SMALL = SiameseConfig(
    backbone=BackboneConfig(widths=(16, 32, 48)),
    image_size=32,
    epochs=12,
    batch_size=32,
    lr=5e-3,
    patience=12,
    local_fraction=0.0,
)


def _planted(planted: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ds = load_dataset(planted)
    tiles = load_tiles(tile_paths(ds.root, ds.records), 32)
    assert tiles.ok.all()
    tile_px = tiles.pixels
    pool = (tile_px[..., 2] > 200).any(axis=(1, 2))  # the planted blue square
    return tile_px, np.log(ds.records["price"].to_numpy()), pool


def test_siamese_learns_planted_signal(planted: Path) -> None:
    tiles, log_price, pool = _planted(planted)
    # rank by the visual driver only (price / area); area is invisible in the tile
    area = load_dataset(planted).records["area_sqft"].to_numpy()
    target = log_price - np.log(area)
    fit = fit_siamese(tiles, target, config=SMALL, seed=0)
    assert fit.val_pair_accuracy > 0.8, fit.history
    feats = VisualFeaturizer(SMALL, n_folds=0)
    feats.models_, feats.align_ = (
        [fit.model],
        [(np.eye(4, dtype=np.float32), np.zeros(4, np.float32))],
    )
    f = feats.transform(tiles)
    score = fit.model.fc.weight[1] - fit.model.fc.weight[0]  # logit direction "pricier"
    s = f @ score.detach().numpy()
    assert s[pool].mean() > s[~pool].mean()


def test_training_is_deterministic_given_seed(planted: Path) -> None:
    tiles, log_price, _ = _planted(planted)
    cfg = SiameseConfig(**{**SMALL.__dict__, "epochs": 2})
    a = fit_siamese(tiles[:40], log_price[:40], config=cfg, seed=5)
    b = fit_siamese(tiles[:40], log_price[:40], config=cfg, seed=5)
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


def test_affine_alignment_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 4))
    a_true, b_true = rng.normal(size=(4, 4)), rng.normal(size=4)
    a, b = _affine_fit(src, src @ a_true + b_true)
    np.testing.assert_allclose(a, a_true, atol=1e-4)
    np.testing.assert_allclose(b, b_true, atol=1e-4)


@pytest.mark.parametrize("name", ["compact", "resnet18"])
def test_backbone_features_and_weights_file(tmp_path: Path, name: str) -> None:
    from safetensors.torch import save_file

    net = build_backbone(name)
    fmap = net.forward_features(torch.zeros(2, 3, 64, 64))
    assert fmap.shape[1] == net.out_channels
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors")
    )
    again = build_backbone(name, weights=tmp_path / "w.safetensors")
    for (k, v), (_, w) in zip(net.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        build_backbone(name, weights=tmp_path / "nope.pth")


def test_torchvision_state_dict_maps_onto_backbone(tmp_path: Path) -> None:
    import torchvision

    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "r18.pth")
    net = build_backbone("resnet18", weights=tmp_path / "r18.pth")
    assert torch.equal(net.stem[0].weight, tv.conv1.weight)
    assert torch.equal(net.stages[3][1].conv2.weight, tv.layer4[1].conv2.weight)
    with pytest.raises(ValueError, match="do not fit backbone 'compact'"):
        build_backbone("compact", weights=tmp_path / "r18.pth")


def test_radial_gate_flat_prior_is_identity_at_init() -> None:
    gate = RadialGate(8, knots=5, prior_sigma=None)
    fmap = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(gate(fmap), fmap)


def test_radial_gate_gaussian_prior_weights_centre_over_corners() -> None:
    gate = RadialGate(3, knots=5, prior_sigma=0.5)
    w = gate.weights(8, 8)  # (C, h, w)
    assert w.shape == (3, 8, 8)
    centre, corner = w[:, 3, 3], w[:, 0, 0]
    assert (centre > 0.9).all() and (corner < 0.2).all()
    # exp(-0.5 (1/0.5)^2) at the corner (ρ = 1)
    torch.testing.assert_close(corner, torch.full((3,), float(np.exp(-2.0))))


def test_radial_gate_commutes_with_rotations_and_flips() -> None:
    gate = RadialGate(4, knots=4, prior_sigma=0.5)
    with torch.no_grad():
        gate.delta.normal_()  # any learned state, not just the prior
    fmap = torch.randn(2, 4, 7, 7)
    for k in range(4):
        rot = torch.rot90(fmap, k, dims=(2, 3))
        torch.testing.assert_close(gate(rot), torch.rot90(gate(fmap), k, dims=(2, 3)))
    torch.testing.assert_close(gate(fmap.flip(3)), gate(fmap).flip(3))


def test_radial_gate_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="at least 2 knots"):
        RadialGate(4, knots=1)
    with pytest.raises(ValueError, match="prior_sigma must be positive"):
        RadialGate(4, prior_sigma=0.0)
    with pytest.raises(ValueError, match="unknown pooling"):
        RankSiamese(BackboneConfig(widths=(8, 8, 8)), pooling="max")


def test_radial_siamese_explained_layer_is_the_gate() -> None:
    net = RankSiamese(BackboneConfig(widths=(8, 8, 8)), pooling="radial", radial_prior_sigma=0.5)
    assert net.target_layer is net.gate
    x = torch.randn(2, 3, 32, 32)
    fmap = net.forward_features(x)  # (B, C, h, w), gated
    torch.testing.assert_close(net.branch(x), net.embed(fmap.mean(dim=(2, 3))))


def test_auxiliary_head_shapes_the_features(planted: Path) -> None:
    tiles, log_price, _ = _planted(planted)
    area = load_dataset(planted).records["area_sqft"].to_numpy()
    # main target: area, invisible in the tile; auxiliary: the visual driver (the pool)
    targets = np.column_stack([np.log(area), log_price - np.log(area)])
    cfg = SiameseConfig(**{**SMALL.__dict__, "aux_weight": 1.0})
    fit = fit_siamese(tiles, targets, config=cfg, seed=0)
    assert fit.model.fc_aux is not None
    feats = fit.model.branch(fit.model.preprocess(torch.from_numpy(tiles))).detach().numpy()
    pairs = held_out_pairs(targets[:, 1], 0.08, 5000, 0)
    fi, fj = torch.from_numpy(feats[pairs[:, 0]]), torch.from_numpy(feats[pairs[:, 1]])
    y = targets[pairs[:, 0], 1] > targets[pairs[:, 1], 1]
    pred = fit.model.fc_aux(fi - fj).argmax(1).numpy() == 1
    assert (pred == y).mean() > 0.75  # the auxiliary head orders pairs by the pool
    with pytest.raises(ValueError, match=r"needs targets of shape \(N, 2\)"):
        fit_siamese(tiles, log_price, config=cfg, seed=0)
