"""Embedding training: learns flat colours, deterministic given the seed; config checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from embedding_data import TINY, ColourDataset

from houseprice.vision.embedding import (
    EmbeddingTrainConfig,
    load_embedding_net,
    save_embedding_net,
    train_embedding,
)


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


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="loss"):
        EmbeddingTrainConfig(loss="contrastive")
    with pytest.raises(ValueError, match="P"):
        EmbeddingTrainConfig(images_per_class=1)
