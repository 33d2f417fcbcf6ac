"""Retrieval metrics: Recall@K and k-means NMI on known configurations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from houseprice.vision.embedding import nmi_kmeans, recall_at_k


def _unit(deg: list[float]) -> torch.Tensor:
    rad = torch.tensor(deg) * math.pi / 180
    return torch.stack([rad.cos(), rad.sin()], dim=1)


def test_recall_at_1_perfect_clusters_and_known_value() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.eye(4) * 10
    labels = torch.arange(4).repeat_interleave(5)
    emb = centres[labels] + 0.01 * torch.randn(20, 4, generator=gen)
    assert recall_at_k(emb, labels, 1) == 1.0
    # angles 0, 10, 15, 60 deg: NN(0)=1 hit, NN(1)=2 miss, NN(2)=1 miss, NN(3)=2 hit
    assert recall_at_k(_unit([0, 10, 15, 60]), torch.tensor([0, 0, 1, 1]), 1) == 0.5
    # K=2: point 2 (15 deg) has neighbours 1 and 0, both of the other class
    assert recall_at_k(_unit([0, 10, 15, 60]), torch.tensor([0, 0, 1, 1]), 2) == 0.75


def test_nmi_known_clustering() -> None:
    gen = torch.Generator().manual_seed(1)
    emb = torch.cat(
        [torch.tensor([[1.0, 0.0]]).repeat(4, 1), torch.tensor([[0.0, 1.0]]).repeat(4, 1)]
    )
    emb = emb + 0.01 * torch.randn(8, 2, generator=gen)
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    # k-means with 2 clusters recovers the two blobs; joint distribution:
    # p(w0,c1)=1/4, p(w1,c1)=1/4, p(w1,c2)=1/2; p(w0)=1/4, p(w1)=3/4; p(c)=1/2 each
    mi = 0.25 * math.log(2) + 0.25 * math.log(2 / 3) + 0.5 * math.log(4 / 3)
    h_w = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    h_c = math.log(2)
    assert nmi_kmeans(emb, labels) == pytest.approx(mi / math.sqrt(h_w * h_c), abs=1e-9)
    assert nmi_kmeans(emb, np.array([0, 0, 0, 0, 1, 1, 1, 1])) == pytest.approx(1.0)
