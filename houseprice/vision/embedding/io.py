"""Saving and loading an embedding net: ``embedding.safetensors`` + ``embedding.json`` + manifest.

A saved net is a folder with

* ``embedding.safetensors`` - the :class:`~houseprice.vision.embedding.model.EmbeddingNet`
  state dict;
* ``embedding.json`` - the training config (enough to rebuild the net), metrics and history;
* ``manifest.json`` - format, version and the SHA-256 of both files, written last by
  :func:`houseprice.artifacts.write_manifest` and checked by
  :func:`houseprice.artifacts.read_manifest` (the one format check of every saved folder).

Folders written before format 2 (no manifest) are refused with a
:class:`~houseprice.errors.FormatError` asking to retrain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from houseprice.artifacts import (
    MANIFEST_NAME,
    atomic_write_bytes,
    atomic_write_json,
    read_json_object,
    read_manifest,
    write_manifest,
)
from houseprice.errors import FormatError
from houseprice.vision.backbones import build_backbone
from houseprice.vision.embedding.model import EmbeddingNet
from houseprice.vision.embedding.train import EmbeddingTrainConfig

FORMAT = "houseprice.vision.embedding"
FORMAT_VERSION = 2  # 2: manifest.json holds format, version and checksums (1: embedding.json)
WEIGHTS_FILE = "embedding.safetensors"
CONFIG_FILE = "embedding.json"
_RETRAIN = "retrain it (delete the folder; `houseprice bench explainers` trains a new net there)"


def save_embedding_net(
    model: EmbeddingNet,
    directory: str | Path,
    config: EmbeddingTrainConfig,
    *,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, float]] | None = None,
) -> Path:
    """Write the weights, ``embedding.json`` and then the manifest; returns the JSON's path.

    Each file is written atomically and the manifest last (any old one is removed first), so
    a folder with a manifest always has matching files.
    """
    if (model.dim, model.pooling, model.backbone.config) != (
        config.dim,
        config.pooling,
        config.backbone,
    ):
        raise ValueError("config does not describe this model (dim, pooling or backbone differ)")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS_FILE, save_safetensors(state))
    meta = {"config": config.to_dict(), "metrics": metrics or {}, "history": history or []}
    json_path = atomic_write_json(folder / CONFIG_FILE, meta)
    write_manifest(folder, kind=FORMAT, version=FORMAT_VERSION, files=[CONFIG_FILE, WEIGHTS_FILE])
    return json_path


def _refuse_old_format(folder: Path) -> None:
    """A format-1 folder (``embedding.json`` with its own version, no manifest) -> retrain."""
    json_path = folder / CONFIG_FILE
    if (folder / MANIFEST_NAME).exists() or not json_path.is_file():
        return
    meta = read_json_object(json_path, "embedding metadata")
    raise FormatError(
        f"{json_path}: embedding format version {meta.get('version')!r} is not supported "
        f"(this houseprice reads {FORMAT_VERSION}); {_RETRAIN}"
    )


def load_embedding_net(
    directory: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[EmbeddingNet, dict[str, Any]]:
    """Read a net written by :func:`save_embedding_net`; returns ``(model in eval mode, meta)``.

    The manifest is checked (format, version, checksums), then that the weights fit the
    configured net; any failure is a :class:`~houseprice.errors.FormatError`. ``meta`` is
    ``embedding.json``: ``EmbeddingTrainConfig.from_dict(meta["config"])`` rebuilds the
    training config.
    """
    folder = Path(directory)
    _refuse_old_format(folder)
    read_manifest(
        folder,
        kind=FORMAT,
        version=FORMAT_VERSION,
        required=(CONFIG_FILE, WEIGHTS_FILE),
        hint=_RETRAIN,
    )
    json_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    meta = read_json_object(json_path, "embedding metadata")
    try:
        config = EmbeddingTrainConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise FormatError(f"{json_path}: not a valid embedding config ({err})") from err
    model = EmbeddingNet(
        build_backbone(config.backbone, pretrained=False), config.dim, config.pooling
    )
    try:
        model.load_state_dict(load_safetensors(weights_path.read_bytes()), strict=True)
    except (RuntimeError, SafetensorError) as err:
        raise FormatError(f"{weights_path}: weights do not fit the configured net ({err})") from err
    model.to(device).eval()
    return model, meta
