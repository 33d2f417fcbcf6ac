"""Training options for a pretrained backbone: pooling, learning-rate groups, decoded-image
batches with batched augmentation, and the frozen backbone's cached-feature head training."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from embedding_data import TINY, ColourDataset

from houseprice.data.cub import CUBAugConfig, DecodedImages
from houseprice.vision.embedding import EmbeddingTrainConfig, build_embedding_net, train_embedding
from houseprice.vision.embedding.model import pool_features
from houseprice.vision.embedding.train import param_groups


def _decoded(n_classes: int, per_class: int, seed: int) -> DecodedImages:
    """Flat-colour classes as uint8 images (the ColourDataset's, de-normalised)."""
    ds = ColourDataset(n_classes, per_class, seed)
    pixels = ((ds.images + 2) / 4 * 255).round().clamp(0, 255).to(torch.uint8)
    return DecodedImages.from_tensors(pixels, ds.labels)


def _config(**options: object) -> EmbeddingTrainConfig:
    base: dict[str, object] = {
        "backbone": TINY,
        "dim": 8,
        "image_size": 16,
        "epochs": 4,
        "classes_per_batch": 4,
        "images_per_class": 3,
        "batches_per_epoch": 4,
        "lr": 1e-2,
    }
    return EmbeddingTrainConfig(**{**base, **options})  # type: ignore[arg-type]


def test_poolings() -> None:
    fmap = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]])  # (1, 1, 2, 2)
    assert pool_features(fmap, "gap").item() == pytest.approx(1.0)
    assert pool_features(fmap, "gap+gmp").item() == pytest.approx(4.0)
    assert pool_features(fmap, "gem").item() == pytest.approx((28 / 4) ** (1 / 3), rel=1e-4)
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_features(fmap, "max")
    with pytest.raises(ValueError, match="pooling must be one of"):
        _config(pooling="max")


def test_param_groups_scale_backbone_and_proxies() -> None:
    from houseprice.vision.embedding import ClassProxies

    cfg = _config(loss="normsoftmax", backbone_lr_mult=0.1, proxy_lr_mult=10.0)
    net = build_embedding_net(cfg)
    proxies = ClassProxies(np.arange(4), cfg.dim)
    groups = param_groups(net, proxies, cfg)
    assert [g["lr"] for g in groups] == pytest.approx([1e-2, 1e-3, 1e-1])
    n_backbone = sum(1 for _ in net.backbone.parameters())
    assert len(groups[1]["params"]) == n_backbone
    frozen = replace(cfg, backbone=replace(TINY, freeze=-1))
    assert len(param_groups(build_embedding_net(frozen), proxies, frozen)) == 2


@pytest.mark.parametrize("pooling", ["gap", "gap+gmp", "gem"])
def test_decoded_batches_train_and_are_deterministic(pooling: str) -> None:
    train, held_out = _decoded(6, 6, seed=0), _decoded(6, 4, seed=1)
    aug = CUBAugConfig(scale=(0.6, 1.0), rotation_deg=30.0)
    cfg = _config(pooling=pooling, loss="normsoftmax", temperature=0.1)
    model, history = train_embedding(
        train, cfg, seed=3, progress=False, eval_dataset=held_out, aug=aug
    )
    assert history[-1]["recall_at_1"] >= 0.9, history
    again, _ = train_embedding(train, cfg, seed=3, progress=False, aug=aug)
    assert torch.equal(model.fc.weight, again.fc.weight)
    other, _ = train_embedding(train, cfg, seed=3, progress=False, aug=replace(aug, hflip_p=0.0))
    assert not torch.equal(model.fc.weight, other.fc.weight)  # the augmentation is applied


def test_frozen_backbone_trains_the_head_on_cached_views() -> None:
    train, held_out = _decoded(6, 6, seed=0), _decoded(6, 4, seed=1)
    cfg = _config(backbone=replace(TINY, freeze=-1), feature_views=3, loss="normsoftmax")
    torch.manual_seed(3)  # as train_embedding does before building its net
    net0 = build_embedding_net(cfg)
    model, history = train_embedding(
        train, cfg, seed=3, progress=False, eval_dataset=held_out, aug=CUBAugConfig()
    )
    for (k, v), w in zip(
        net0.backbone.state_dict().items(), model.backbone.state_dict().values(), strict=True
    ):
        assert torch.equal(v, w), k  # the backbone (BatchNorm statistics too) never changed
    assert not torch.equal(net0.fc.weight, model.fc.weight)
    assert history[-1]["loss"] < history[0]["loss"]
    with pytest.raises(ValueError, match="fully frozen backbone"):
        _config(feature_views=3)
    with pytest.raises(TypeError, match="DecodedImages"):
        train_embedding(ColourDataset(6, 6, 0), cfg, seed=3, progress=False)
