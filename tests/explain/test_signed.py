"""Signed explanations: pointing game, signed mass, pair-logit Grad-CAM, signed transfer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from houseprice.explain import (
    GradWeightDatabase,
    RankPairSampler,
    SignedPairGradCAM,
    WeightTransferCAM,
    pointing_game,
    signed_maps,
    signed_mass_in_mask,
)


def test_pointing_game_single_maximum_and_tolerance() -> None:
    maps = np.zeros((1, 10, 10))
    maps[0, 2, 2] = 1.0
    mask = np.zeros((1, 10, 10), bool)
    mask[0, 2, 5] = True  # 3 px to the right of the maximum
    assert pointing_game(maps, mask, 0.0)[0] == 0.0
    assert pointing_game(maps, mask, 2.9)[0] == 0.0
    assert pointing_game(maps, mask, 3.0)[0] == 1.0
    mask[0, 2, 2] = True
    assert pointing_game(maps, mask)[0] == 1.0


def test_pointing_game_ties_score_the_share_of_tied_pixels_that_hit() -> None:
    maps = np.ones((2, 8, 8))
    mask = np.zeros((2, 8, 8), bool)
    mask[0, :2, :] = True  # a quarter of a constant map's (all tied) pixels
    assert pointing_game(maps, mask)[0] == pytest.approx(0.25)
    assert np.isnan(pointing_game(maps, mask)[1])  # empty mask: undefined
    two = np.zeros((1, 8, 8))
    two[0, 0, 0] = two[0, 7, 7] = 1.0
    hit = np.zeros((1, 8, 8), bool)
    hit[0, 0, 0] = True
    assert pointing_game(two, hit)[0] == pytest.approx(0.5)


def test_signed_mass_and_signed_maps_keep_the_sign() -> None:
    m = np.zeros((1, 4, 4))
    m[0, 0, 0], m[0, 0, 1], m[0, 3, 3] = 0.5, -2.0, 1.0
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 0, :2] = True
    pos, neg = signed_mass_in_mask(m, mask)
    assert (pos[0], neg[0]) == (0.5, 2.0)
    low = torch.tensor([[[1.0, -3.0], [0.0, 0.5]]])
    up = signed_maps(low, (4, 4))
    assert float(up.abs().max()) == pytest.approx(1.0)
    assert float(up[0, 0, 3]) < 0 < float(up[0, 0, 0])  # the sign of each quadrant survives
    assert torch.equal(signed_maps(torch.zeros(1, 2, 2), (4, 4)), torch.zeros(1, 4, 4))


class Branch(nn.Module):
    """conv -> ReLU (explained layer) -> GAP -> linear embedding (d = 3)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.embed = nn.Linear(6, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.conv(x).mean(dim=(2, 3)))


def test_signed_weights_are_the_gradient_of_the_mean_pair_margin() -> None:
    """alpha = spatial mean of dT/dA with T = mean_j (logit_1 - logit_0)(f_i - f_j); with a
    linear head that is the gradient of u . f_i, u = head.weight[1] - head.weight[0]."""
    net = Branch().eval()
    ref = torch.randn(7, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats = net(ref)
    sampler = RankPairSampler(net.head, feats, torch.linspace(0, 1, 7), n_samples=7)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    e = SignedPairGradCAM(net, net.conv, sampler).explain(x, torch.tensor([0.33, 0.66]))
    a = net.conv(x).detach().requires_grad_(True)
    u = net.head.weight[1] - net.head.weight[0]
    (g,) = torch.autograd.grad((net.embed(a.mean(dim=(2, 3))) @ u).sum(), a)
    torch.testing.assert_close(e.weights, g.mean(dim=(2, 3)))
    assert e.linear is not None and bool((e.linear < 0).any())  # not rectified
    torch.testing.assert_close(e.linear, torch.einsum("bchw,bc->bhw", a.detach(), e.weights))
    # the margins are head(f_i - f_j)[1] - head(f_i - f_j)[0] over the partners (all 7 here)
    with torch.no_grad():
        f = net(x)
        margins, valid = sampler.bind_margins(torch.tensor([0.33, 0.66]))(f)
        logits = net.head(f[:, None] - feats[None])  # (2, 7, 2)
    assert bool(valid.all())
    want = (logits[..., 1] - logits[..., 0]).sort(dim=1).values
    torch.testing.assert_close(margins.sort(dim=1).values, want)


def test_database_keeps_signed_weights_through_save_query_and_kmeans(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    keys, dense = torch.randn(6, 2, generator=gen), torch.randn(6, 5, generator=gen)
    signed = -dense
    db = GradWeightDatabase.build(keys, dense, top_m=2, signed=signed, normalize=False)
    db.save(tmp_path)
    back = GradWeightDatabase.load(tmp_path)
    assert back.signed is not None
    torch.testing.assert_close(back.signed, signed)
    found = back.query(keys[[4, 1]])
    torch.testing.assert_close(found.signed, signed[[4, 1]])
    small = db.compress_kmeans(1)
    torch.testing.assert_close(small.signed, signed.mean(dim=0, keepdim=True))
    plain = GradWeightDatabase.build(keys, dense, top_m=2)
    plain.save(tmp_path / "old")
    assert GradWeightDatabase.load(tmp_path / "old").signed is None
    with pytest.raises(ValueError, match="signed weights must have shape"):
        GradWeightDatabase.build(keys, dense, signed=signed[:, :3])


def test_signed_transfer_uses_the_neighbours_signed_weights() -> None:
    net = Branch().eval()
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        keys = net(x)
    dense = torch.rand(3, 6)
    signed = torch.randn(3, 6, generator=torch.Generator().manual_seed(4))
    db = GradWeightDatabase.build(keys, dense, top_m=2, signed=signed, normalize=False)
    e = WeightTransferCAM(net, net.conv, db, signed=True).explain(x[[2, 0]])
    torch.testing.assert_close(e.weights, signed[[2, 0]])
    a = net.conv(x[[2, 0]]).detach()
    torch.testing.assert_close(e.linear, torch.einsum("bchw,bc->bhw", a, signed[[2, 0]]))
    with pytest.raises(ValueError, match="signed weights"):
        WeightTransferCAM(net, net.conv, GradWeightDatabase.build(keys, dense), signed=True)
