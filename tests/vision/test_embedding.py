"""Embedding networks: semi-hard mining, N-pair loss, retrieval metrics, sampler, training, I/O."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from houseprice.vision.backbones import BackboneConfig, build_backbone
from houseprice.vision.embedding.model import (
    EmbeddingNet,
    EmbeddingTrainConfig,
    PKBatchSampler,
    load_embedding_net,
    nmi_kmeans,
    npair_batch_loss,
    npair_loss,
    recall_at_k,
    save_embedding_net,
    semihard_triplets,
    train_embedding,
    triplet_semihard_loss,
)

TINY = BackboneConfig(name="compact", widths=(8, 8, 8), blocks=(1, 1, 1))


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------ losses


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


# ------------------------------------------------------------------------------ metrics


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


# ------------------------------------------------------------------------------ sampler


def test_pk_sampler_batches_are_class_balanced_and_deterministic() -> None:
    labels = np.repeat(np.arange(6), [5, 5, 5, 2, 1, 5])  # class 4 has a single image
    sampler = PKBatchSampler(labels, 3, 4, n_batches=5, seed=7)
    batches = list(sampler)
    assert len(batches) == 5
    for batch in batches:
        assert len(batch) == 12
        classes = labels[batch].reshape(3, 4)
        assert (classes == classes[:, :1]).all()  # K of one class, consecutive
        assert len(set(classes[:, 0].tolist())) == 3  # P distinct classes
        assert 4 not in classes  # never a class without a positive
    assert batches == list(PKBatchSampler(labels, 3, 4, n_batches=5, seed=7))
    sampler.set_epoch(1)
    assert list(sampler) != batches


# ------------------------------------------------------------------------------ model + training


class ColourDataset(Dataset[dict[str, Any]]):
    """Class ``c`` = a flat colour (distinct per class) plus noise, 16 x 16."""

    def __init__(self, n_classes: int, per_class: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        palette = torch.rand(n_classes, 3, 1, 1, generator=torch.Generator().manual_seed(99))
        self.labels = np.repeat(np.arange(n_classes), per_class)
        base = palette[torch.as_tensor(self.labels)] * 4 - 2
        self.images = base + 0.3 * torch.randn(len(self.labels), 3, 16, 16, generator=gen)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "label": int(self.labels[i])}


def test_embedding_net_outputs() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(build_backbone(TINY), dim=5).eval()
    x = torch.randn(3, 3, 16, 16)
    out = net(x)
    raw = net.forward_raw(x)
    assert out.shape == (3, 5)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)
    assert torch.allclose(out, F.normalize(raw, dim=1), atol=1e-6)
    assert torch.allclose(net.raw()(x), raw)
    assert net.forward_features(x).shape == (3, 8, 2, 2)  # compact: stride 8
    assert any(m is net.target_layer for m in net.raw().modules())


def test_train_embedding_learns_and_is_deterministic(tmp_path: Path) -> None:
    train = ColourDataset(n_classes=6, per_class=6, seed=0)
    held_out = ColourDataset(n_classes=6, per_class=4, seed=1)
    cfg = EmbeddingTrainConfig(
        backbone=TINY,
        dim=8,
        image_size=16,
        epochs=4,
        classes_per_batch=4,
        images_per_class=3,
        batches_per_epoch=4,
        lr=1e-2,
    )
    model, history = train_embedding(train, cfg, seed=3, progress=False, eval_dataset=held_out)
    assert [h["epoch"] for h in history] == [1.0, 2.0, 3.0, 4.0]
    assert history[-1]["recall_at_1"] >= 0.9  # flat colours are easy to tell apart
    assert history[-1]["loss"] < history[0]["loss"]
    again, _ = train_embedding(train, cfg, seed=3, progress=False)
    for (k, v), w in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(v, w), k

    save_embedding_net(model, tmp_path / "m", cfg, history=history)
    loaded, meta = load_embedding_net(tmp_path / "m")
    assert EmbeddingTrainConfig.from_dict(meta["config"]) == cfg
    x = held_out.images[:4]
    assert torch.equal(loaded(x), model(x))

    npair, _ = train_embedding(train, cfg, loss="npair", seed=3, progress=False)
    assert not torch.equal(npair.fc.weight, model.fc.weight)


def test_load_rejects_tampered_weights(tmp_path: Path) -> None:
    cfg = EmbeddingTrainConfig(backbone=TINY, dim=4, image_size=16)
    torch.manual_seed(0)
    net = EmbeddingNet(build_backbone(TINY), dim=4)
    save_embedding_net(net, tmp_path, cfg)
    (tmp_path / "embedding.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="checksum"):
        load_embedding_net(tmp_path)
    meta = json.loads((tmp_path / "embedding.json").read_text())
    meta["format"] = "other"
    (tmp_path / "embedding.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not an embedding model"):
        load_embedding_net(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_embedding_net(tmp_path / "missing")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="loss"):
        EmbeddingTrainConfig(loss="contrastive")
    with pytest.raises(ValueError, match="P"):
        EmbeddingTrainConfig(images_per_class=1)
