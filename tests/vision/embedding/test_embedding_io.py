"""Saving / loading an embedding net: round trip, manifest checks, format-1 folders refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from embedding_data import TINY

from houseprice.errors import FormatError
from houseprice.vision.backbones import build_backbone
from houseprice.vision.embedding import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    EmbeddingNet,
    EmbeddingTrainConfig,
    load_embedding_net,
    save_embedding_net,
)


def _saved(folder: Path) -> tuple[EmbeddingNet, EmbeddingTrainConfig]:
    cfg = EmbeddingTrainConfig(backbone=TINY, dim=4, image_size=16)
    torch.manual_seed(0)
    net = EmbeddingNet(build_backbone(TINY), dim=4)
    save_embedding_net(net, folder, cfg, metrics={"recall_at_1": 0.5}, history=[{"loss": 1.0}])
    return net, cfg


def test_round_trip_writes_manifest_over_both_files(tmp_path: Path) -> None:
    net, cfg = _saved(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        CONFIG_FILE,
        WEIGHTS_FILE,
        "manifest.json",
    ]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == FORMAT and manifest["format_version"] == FORMAT_VERSION == 2
    assert sorted(manifest["files"]) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded, meta = load_embedding_net(tmp_path)
    assert EmbeddingTrainConfig.from_dict(meta["config"]) == cfg
    assert meta["metrics"] == {"recall_at_1": 0.5} and meta["history"] == [{"loss": 1.0}]
    assert not loaded.training
    for (k, v), w in zip(net.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_load_rejects_tampered_weights(tmp_path: Path) -> None:
    _saved(tmp_path)
    (tmp_path / "embedding.safetensors").write_bytes(b"garbage")
    with pytest.raises(FormatError, match="checksum"):
        load_embedding_net(tmp_path)
    _saved(tmp_path)
    meta = json.loads((tmp_path / CONFIG_FILE).read_text())
    meta["config"]["dim"] = 5
    (tmp_path / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="checksum"):
        load_embedding_net(tmp_path)
    _saved(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["format"] = "other"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match="format is 'other'"):
        load_embedding_net(tmp_path)
    with pytest.raises(FormatError, match="not a folder"):
        load_embedding_net(tmp_path / "missing")
    with pytest.raises(ValueError):  # FormatError is a ValueError (callers that catch it)
        load_embedding_net(tmp_path / "missing")


def test_format_1_folder_asks_to_retrain(tmp_path: Path) -> None:
    _, cfg = _saved(tmp_path)
    (tmp_path / "manifest.json").unlink()
    # what format 1 wrote: embedding.json with its own format/version/sha256, no manifest
    meta = {"format": FORMAT, "version": 1, "weights": WEIGHTS_FILE, "config": cfg.to_dict()}
    (tmp_path / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(FormatError, match=r"version 1 is not supported.*retrain"):
        load_embedding_net(tmp_path)


def test_save_refuses_a_config_of_another_net(tmp_path: Path) -> None:
    net = EmbeddingNet(build_backbone(TINY), dim=4)
    with pytest.raises(ValueError, match="does not describe this model"):
        save_embedding_net(net, tmp_path, EmbeddingTrainConfig(backbone=TINY, dim=8))
