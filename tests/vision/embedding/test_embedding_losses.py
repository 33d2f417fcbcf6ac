"""Metric-learning losses: semi-hard and batch-hard triplets, N-pair, normalised softmax."""

from __future__ import annotations

import math

import pytest
import torch

from houseprice.vision.embedding import (
    normsoftmax_loss,
    npair_batch_loss,
    npair_loss,
    semihard_triplets,
    triplet_batch_hard_loss,
    triplet_semihard_loss,
)


def test_semihard_picks_closest_farther_negative_else_farthest() -> None:
    # 1-d points, squared distances computed exactly in float64
    x = torch.tensor([0.0, 1.0, 1.5, 3.0, 0.6], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1])
    dist = (x[:, None] - x[None, :]).pow(2)
    a, p, n = semihard_triplets(dist, labels)
    got = {(int(i), int(j)): int(k) for i, j, k in zip(a, p, n, strict=True)}
    expected = {
        (0, 1): 2,  # d_ap 1: negatives at 2.25, 9, 0.36 -> closest farther one (2.25)
        (1, 0): 3,  # d_ap 1: 0.25, 4, 0.16 -> only 4 is farther
        (2, 3): 0,  # d_ap 2.25: 2.25 (not strictly farther), 0.25 -> fallback farthest
        (2, 4): 0,  # d_ap 0.81: 2.25 is farther, 0.25 is not
        (3, 2): 1,  # d_ap 2.25: both 9 and 4 are farther -> the closer, 4
        (3, 4): 0,  # d_ap 5.76: 9 is farther, 4 is not
        (4, 2): 0,  # d_ap 0.81: 0.36, 0.16 both closer -> farthest (0.36)
        (4, 3): 0,  # d_ap 5.76: same fallback
    }
    assert got == expected


def test_triplet_loss_value_on_two_clusters() -> None:
    emb = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 0.5]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    # normalised: same-class distance 0, cross-class 2 -> each of 4 pairs: [0 - 2 + m]_+
    assert float(triplet_semihard_loss(emb, labels, margin=0.2).detach()) == pytest.approx(0.0)
    loss = triplet_semihard_loss(emb, labels, margin=3.0)
    assert float(loss.detach()) == pytest.approx(1.0, abs=1e-6)
    loss.backward()  # differentiable
    assert emb.grad is not None


def test_triplet_loss_without_positive_pairs_is_zero_and_differentiable() -> None:
    emb = torch.randn(3, 4, requires_grad=True)
    loss = triplet_semihard_loss(emb, torch.tensor([0, 1, 2]))
    assert float(loss.detach()) == 0.0
    loss.backward()


def test_npair_loss_value() -> None:
    a = torch.eye(2)
    expected = math.log(1.0 + math.exp(-1.0))  # -log(e / (e + 1))
    assert float(npair_loss(a, a.clone())) == pytest.approx(expected, abs=1e-6)
    # regulariser: 0.5 * reg * mean(|a|^2 + |p|^2) = 0.5 * 0.1 * 2
    assert float(npair_loss(a, a.clone(), reg=0.1)) == pytest.approx(expected + 0.1, abs=1e-6)
    # batch form: consecutive same-class rows are (anchor, positive)
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    batch = npair_batch_loss(emb, torch.tensor([0, 0, 1, 1]))
    assert float(batch) == pytest.approx(expected, abs=1e-6)


def test_npair_loss_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        npair_loss(torch.zeros(2, 3), torch.zeros(3, 3))


def test_batch_hard_uses_farthest_positive_and_closest_negative() -> None:
    # unit vectors at angles: squared chord distances 2 - 2 cos
    angles = torch.tensor([0.0, 0.3, 1.0, 0.5, 2.0], dtype=torch.float64)
    emb = torch.stack([angles.cos(), angles.sin()], dim=1).requires_grad_(True)
    labels = torch.tensor([0, 0, 0, 1, 1])
    d = 2 - 2 * torch.cos(angles[:, None] - angles[None, :])
    same = labels[:, None] == labels[None, :]
    expected = []
    for a in range(5):
        pos = [float(d[a, p]) for p in range(5) if same[a, p] and p != a]
        neg = [float(d[a, n]) for n in range(5) if not same[a, n]]
        expected.append(max(0.0, max(pos) - min(neg) + 0.2))
    loss = triplet_batch_hard_loss(emb, labels, margin=0.2)
    assert float(loss.detach()) == pytest.approx(sum(expected) / 5, abs=1e-9)
    loss.backward()
    assert emb.grad is not None
    alone = triplet_batch_hard_loss(emb, torch.tensor([0, 1, 2, 3, 4]))
    assert float(alone.detach()) == 0.0


def test_normsoftmax_is_cross_entropy_of_cosines() -> None:
    emb = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    proxies = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([0, 1])
    # cosines: matched 1, other 0 -> each -log(e^{1/T} / (e^{1/T} + 1))
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 1.0))
    got = float(normsoftmax_loss(emb, targets, proxies, temperature=t))
    assert got == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        normsoftmax_loss(emb, targets, proxies, temperature=0.0)
    with pytest.raises(ValueError, match="proxies"):
        normsoftmax_loss(emb, targets, torch.zeros(2, 3))
