"""The benchmark's data and model: resolve (or generate) the birds, train or load the net, embed.

* :func:`resolve_data` - a CUB-200-2011 root, or a synthetic-birds folder generated with the
  profile's size (``houseprice.synth.birds``) when it does not exist yet;
* :func:`train_or_load` - the embedding net from ``model_dir`` if it holds one, else trained on
  the training classes and saved there;
* :func:`embed_splits` - test and training embeddings and the retrieval metrics (Recall@1, NMI).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import Tensor

from houseprice.bench.profile import BenchProfile
from houseprice.data.cub import CUBDataset
from houseprice.errors import UserInputError
from houseprice.vision.embedding import (
    CONFIG_FILE,
    EmbeddingNet,
    EmbeddingTrainConfig,
    embed_dataset,
    load_embedding_net,
    retrieval_metrics,
    save_embedding_net,
    train_embedding,
)


def _generate_birds(root: Path, prof: BenchProfile, seed: int, progress: bool) -> None:
    from houseprice.synth.birds import generate_birds  # lazy: only for a new --data folder

    generate_birds(
        root,
        n_classes=prof.synth_classes,
        images_per_class=prof.synth_images_per_class,
        image_px=prof.synth_px,
        seed=seed,
        progress=progress,
    )


def _dataset_name(root: Path) -> str:
    """``synthetic-birds`` when ``dataset.json`` names the generator, else ``cub-200-2011``."""
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        return "cub-200-2011"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path}: not valid JSON ({err})") from err
    generator = meta.get("generator", {}) if isinstance(meta, dict) else {}
    if isinstance(generator, dict) and str(generator.get("name", "")).endswith(
        ("synth.birds", "synth_birds")
    ):
        return "synthetic-birds"
    return "cub-200-2011"


def resolve_data(
    data: Path | None, cub: Path | None, prof: BenchProfile, seed: int, progress: bool
) -> tuple[Path, str]:
    """``(root, dataset name)``; exactly one of ``data`` (synthetic birds) or ``cub``."""
    if (data is None) == (cub is None):
        raise ValueError("give exactly one of data= (synthetic birds folder) or cub= (CUB root)")
    if cub is not None:
        root = Path(cub)
        if not root.is_dir():
            raise UserInputError(f"CUB-200-2011 folder not found: {root}")
        return root, "cub-200-2011"
    root = Path(data)  # type: ignore[arg-type]
    if not root.exists():
        _generate_birds(root, prof, seed, progress)
    return root, _dataset_name(root)


def train_or_load(
    root: Path,
    prof: BenchProfile,
    model_dir: Path,
    weights: Path | None,
    seed: int,
    device: str,
    progress: bool,
) -> tuple[EmbeddingNet, dict[str, Any], float]:
    """``(net, its embedding.json, training seconds)``: loaded from ``model_dir`` if it holds a
    net (0 s), else trained on the training classes and saved there."""
    if (model_dir / CONFIG_FILE).is_file():
        net, meta = load_embedding_net(model_dir, device=device)
        return net, meta, 0.0
    config = prof.train
    if weights is not None:
        config = replace(config, weights=str(weights))
    train_set = CUBDataset(  # training reads no masks: same images, half the decoding
        root,
        split="train",
        image_size=config.image_size,
        train_aug=True,
        aug=prof.train_aug,
        load_masks=False,
    )
    start = time.perf_counter()
    net, history = train_embedding(train_set, config, seed=seed, device=device, progress=progress)
    seconds = time.perf_counter() - start
    save_embedding_net(net, model_dir, config, history=history)
    _, meta = load_embedding_net(model_dir, device=device)  # the JSON as written
    return net, meta, seconds


@dataclass
class Splits:
    """The test (explained) and training (database) splits with their embeddings."""

    test_set: CUBDataset
    train_set: CUBDataset
    test_emb: Tensor  # (N_test, D)
    test_labels: Tensor  # (N_test,)
    train_emb: Tensor
    train_labels: Tensor
    retrieval: dict[str, float]  # Recall@1 and NMI on the test split


def embed_splits(
    net: EmbeddingNet, root: Path, cfg: EmbeddingTrainConfig, seed: int, device: str, progress: bool
) -> Splits:
    """Embed both splits at the net's input size; retrieval metrics on the test split."""
    test_set = CUBDataset(root, split="test", image_size=cfg.image_size)
    train_set = CUBDataset(root, split="train", image_size=cfg.image_size)
    test_emb, test_labels = embed_dataset(
        net, test_set, batch_size=cfg.eval_batch_size, device=device, progress=progress
    )
    train_emb, train_labels = embed_dataset(
        net, train_set, batch_size=cfg.eval_batch_size, device=device, progress=progress
    )
    retrieval = retrieval_metrics(test_emb, test_labels, seed=seed)
    return Splits(test_set, train_set, test_emb, test_labels, train_emb, train_labels, retrieval)
