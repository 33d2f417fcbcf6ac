"""Embedding training: learns flat colours, deterministic given the seed; config checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from embedding_data import TINY, ColourDataset

from houseprice.vision.embedding import (
    EmbeddingTrainConfig,
    load_embedding_net,
    lr_factor,
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


@pytest.mark.parametrize(
    "options",
    [
        {"loss": "normsoftmax", "temperature": 0.1},
        {"mining": "hard"},
        {"warmup_epochs": 1.0},
    ],
)
def test_training_options_learn(options: dict) -> None:
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
        **options,
    )
    model, history = train_embedding(train, cfg, seed=3, progress=False, eval_dataset=held_out)
    assert history[-1]["recall_at_1"] >= 0.9, history
    assert EmbeddingTrainConfig.from_dict(cfg.to_dict()) == cfg
    assert not any(n.startswith("proxies") for n in model.state_dict())  # proxies not saved


def test_lr_schedule_warmup_then_cosine() -> None:
    plain = lr_factor(10)
    assert [plain(t) for t in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])
    warm = lr_factor(12, 2)
    assert [warm(t) for t in (0, 1, 2, 7, 12)] == pytest.approx([1 / 3, 2 / 3, 1.0, 0.5, 0.0])


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="loss"):
        EmbeddingTrainConfig(loss="contrastive")
    with pytest.raises(ValueError, match="P"):
        EmbeddingTrainConfig(images_per_class=1)
    with pytest.raises(ValueError, match="mining"):
        EmbeddingTrainConfig(mining="easy")
    with pytest.raises(ValueError, match="warmup"):
        EmbeddingTrainConfig(epochs=2, warmup_epochs=3.0)
