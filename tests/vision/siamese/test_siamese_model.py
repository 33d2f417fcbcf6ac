"""The rank-siamese architecture: radial gate, pooling choice, explained layer, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from houseprice.vision.backbones import Backbone, BackboneConfig
from houseprice.vision.siamese import RadialGate, RankSiamese, SiameseConfig

TINY = BackboneConfig(widths=(8, 8, 8))


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
        RankSiamese(SiameseConfig(backbone=TINY, pooling="max"))


def test_radial_siamese_explained_layer_is_the_gate() -> None:
    net = RankSiamese(SiameseConfig(backbone=TINY, pooling="radial", radial_prior_sigma=0.5))
    assert net.target_layer is net.gate
    x = torch.randn(2, 3, 32, 32)
    fmap = net.forward_features(x)  # (B, C, h, w), gated
    torch.testing.assert_close(net.branch(x), net.embed(fmap.mean(dim=(2, 3))))


def test_net_is_built_from_its_config_alone() -> None:
    # one source of defaults: RankSiamese() is the SiameseConfig() net (radial gate, σ 0.5)
    net = RankSiamese()
    assert net.config == SiameseConfig() and net.gate is not None and net.fc_aux is None
    torch.testing.assert_close(net.gate.prior, RadialGate(1, 5, 0.5).prior)
    gap = RankSiamese.from_config(SiameseConfig(backbone=TINY, pooling="gap", aux_head=True))
    assert gap.gate is None and gap.target_layer is gap.backbone.target_layer
    assert gap.fc_aux is not None and gap.embed.out_features == 4
    assert gap.pair_logits(torch.zeros(3, 4), torch.ones(3, 4)).shape == (3, 2)
    trunk = Backbone(TINY)
    assert RankSiamese(SiameseConfig(backbone=TINY), backbone=trunk).backbone is trunk
    with pytest.raises(ValueError, match="does not match"):
        RankSiamese(SiameseConfig(), backbone=trunk)


def test_same_seed_same_initial_weights() -> None:
    cfg = SiameseConfig(backbone=TINY, aux_head=True)
    torch.manual_seed(3)
    a = RankSiamese(cfg)
    torch.manual_seed(3)
    b = RankSiamese(cfg)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def _small(**kw: object) -> RankSiamese:
    torch.manual_seed(0)
    cfg = SiameseConfig(backbone=BackboneConfig(widths=(8, 8, 16)), image_size=32, **kw)
    return RankSiamese(cfg).eval()


def test_separate_aux_projection_trains_only_its_own_columns() -> None:
    """aux_dim > 0: the main head's loss reaches only the exported d columns of ``embed``,
    the auxiliary head's only its own aux_dim columns."""
    net = _small(aux_head=True, aux_dim=3)
    x = torch.randn(6, 3, 32, 32)
    f = net.branch(x)
    assert f.shape == (6, 4 + 3)
    for head, own in ((net.fc, slice(0, 4)), (net.fc_aux, slice(4, 7))):
        net.zero_grad()
        net.pair_logits(f[:3], f[3:], head).sum().backward(retain_graph=True)
        g = net.embed.weight.grad.abs().sum(dim=1)  # (d + aux_dim,)
        other = torch.ones(7, dtype=torch.bool)
        other[own] = False
        assert g[own].gt(0).all() and g[other].eq(0).all()


def test_separate_aux_projection_is_not_exported() -> None:
    from houseprice.vision.features import _exported

    net = _small(aux_head=True, aux_dim=2)
    tiles = torch.randint(0, 255, (5, 32, 32, 3), dtype=torch.uint8)
    assert _exported(net, tiles, "cpu").shape == (5, 4)


def test_aux_dim_needs_the_aux_head() -> None:
    with pytest.raises(ValueError, match="aux_dim"):
        SiameseConfig(aux_dim=2)


def test_test_time_dihedral_features_are_invariant_to_the_group() -> None:
    """The mean over the 8 dihedral transforms is the same for every transform of the tile
    (and without it, the compact branch is not invariant)."""
    from houseprice.vision.siamese.train import extract_features

    tiles = torch.randint(0, 255, (4, 32, 32, 3), dtype=torch.uint8)
    moved = torch.rot90(tiles, 1, dims=(1, 2)).flip(2).contiguous()  # (N, H, W, 3)
    tta = _small(test_time_dihedral=True)
    a, b = extract_features(tta, tiles), extract_features(tta, moved)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    plain = _small()
    assert not np.allclose(
        extract_features(plain, tiles), extract_features(plain, moved), atol=1e-4
    )
