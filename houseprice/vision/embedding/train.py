"""Training an embedding net: the training config, the batch loss, epochs, evaluation.

:func:`train_embedding` draws P x K class-balanced batches (:class:`.sampler.PKBatchSampler`),
minimises the configured loss (:mod:`.losses`) with AdamW and a cosine learning rate (after an
optional linear warmup, :func:`lr_factor`), and
optionally evaluates Recall@1 / NMI (:mod:`.metrics`) on held-out classes after every epoch.

Datasets are map-style datasets of dict samples with ``"image"`` (normalised ``(3, S, S)``) and
``"label"`` (int) keys and a ``labels`` attribute (``(N,)`` ints), e.g.
:class:`houseprice.data.cub.CUBDataset`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from houseprice.data.cub import CUBAugConfig, DecodedImages
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.embedding.frozen import CachedFeatureBatches
from houseprice.vision.embedding.losses import (
    LOSSES,
    MININGS,
    LossName,
    normsoftmax_loss,
    npair_batch_loss,
    triplet_batch_hard_loss,
    triplet_semihard_loss,
)
from houseprice.vision.embedding.metrics import retrieval_metrics
from houseprice.vision.embedding.model import POOLINGS, EmbeddingNet, build_embedding_net
from houseprice.vision.embedding.sampler import PKBatchSampler


@dataclass
class EmbeddingTrainConfig:
    """Hyper-parameters of embedding training (stored in ``embedding.json``)."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    weights: str | None = None  # local backbone initialisation (e.g. ImageNet ResNet-50)
    dim: int = 128
    image_size: int = 64  # input side S the net is trained and evaluated at
    loss: str = "triplet"  # "triplet" (normalised), "npair" (raw) or "normsoftmax" (proxies)
    margin: float = 0.2  # triplet margin (Chen eq. 1, Taha S2)
    mining: str = "semihard"  # triplet negatives: "semihard" (FaceNet) or "hard" (batch-hard)
    npair_reg: float = 0.002  # N-pair embedding-norm regulariser (Sohn 2016)
    temperature: float = 0.05  # normalised-softmax temperature (Zhai & Wu 2019)
    epochs: int = 10
    classes_per_batch: int = 16  # P
    images_per_class: int = 4  # K
    batches_per_epoch: int | None = None  # None: len(dataset) // (P * K), at least 1
    lr: float = 1e-3
    warmup_epochs: float = 0.0  # linear learning-rate warmup before the cosine decay
    weight_decay: float = 5e-4
    eval_batch_size: int = 128
    pooling: str = "gap"  # "gap", "gap+gmp" or "gem" (model.POOLINGS)
    # > 0 with a fully frozen backbone (freeze -1): pooled features of this many augmented
    # views per image are computed once and only the FC head is trained on them (.frozen)
    feature_views: int = 0
    backbone_lr_mult: float = 1.0  # backbone learning rate = lr * this (pretrained: < 1)
    proxy_lr_mult: float = 1.0  # normsoftmax proxies' learning rate = lr * this

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.classes_per_batch < 2 or self.images_per_class < 2:
            raise ValueError("classes_per_batch (P) and images_per_class (K) must both be >= 2")
        if self.epochs < 0 or self.lr <= 0 or self.dim < 1 or self.image_size < 16:
            raise ValueError("need epochs >= 0, lr > 0, dim >= 1 and image_size >= 16")
        if self.mining not in MININGS:
            raise ValueError(f"mining must be one of {MININGS}, got {self.mining!r}")
        if not 0.0 <= self.warmup_epochs <= max(self.epochs, 0):
            raise ValueError(f"warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.feature_views < 0:
            raise ValueError(f"feature_views must be >= 0, got {self.feature_views}")
        if self.feature_views and self.backbone.freeze != -1:
            raise ValueError("feature_views needs a fully frozen backbone (backbone.freeze -1)")
        if self.backbone_lr_mult < 0 or self.proxy_lr_mult <= 0:
            raise ValueError("need backbone_lr_mult >= 0 and proxy_lr_mult > 0")
        if self.batches_per_epoch is not None and self.batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1, got {self.batches_per_epoch}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["backbone"] = self.backbone.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddingTrainConfig:
        d = dict(d)
        d["backbone"] = BackboneConfig.from_dict(d["backbone"])
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown embedding config keys {unknown}")
        return cls(**d)


class ClassProxies(torch.nn.Module):
    """One learned proxy per training class for the normalised-softmax loss (not part of the
    saved net: only the embedding is kept)."""

    def __init__(self, labels: np.ndarray, dim: int) -> None:
        super().__init__()
        classes = np.unique(labels)
        lookup = torch.full((int(classes.max()) + 1,), -1, dtype=torch.long)
        lookup[torch.from_numpy(classes)] = torch.arange(len(classes))
        self.register_buffer("lookup", lookup)
        self.weight = torch.nn.Parameter(torch.randn(len(classes), dim) / math.sqrt(dim))

    def index(self, labels: Tensor) -> Tensor:
        """Proxy rows ``(B,)`` of dataset labels ``(B,)``."""
        return self.lookup[labels.to(self.lookup.device)]


def _dataset_labels(dataset: Dataset[Any]) -> np.ndarray:
    labels = getattr(dataset, "labels", None)
    if labels is None:
        raise TypeError(
            f"{type(dataset).__name__} has no 'labels' attribute; the P x K sampler needs the "
            "(N,) integer labels of every sample (CUBDataset provides them)"
        )
    lab = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if lab.shape != (len(dataset),):  # type: ignore[arg-type]
        raise ValueError(f"dataset.labels has shape {lab.shape}, expected ({len(dataset)},)")  # type: ignore[arg-type]
    return lab.astype(np.int64)


class DecodedBatches:
    """Training batches of a :class:`~houseprice.data.cub.DecodedImages`: the sampler's index
    lists, augmented a batch at a time (one ``grid_sample``), drawn from a seeded generator."""

    def __init__(
        self, dataset: DecodedImages, sampler: PKBatchSampler, aug: CUBAugConfig | None, seed: int
    ) -> None:
        self.dataset, self.sampler, self.aug = dataset, sampler, aug
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        for indices in self.sampler:
            images, labels = self.dataset.batch(indices, self.aug, self.generator)
            yield {"image": images, "label": labels}


def param_groups(
    model: EmbeddingNet, proxies: ClassProxies | None, config: EmbeddingTrainConfig
) -> list[dict[str, Any]]:
    """AdamW groups: backbone at ``lr * backbone_lr_mult``, head at ``lr``, proxies at
    ``lr * proxy_lr_mult``; frozen parameters (and a zero multiplier's backbone) are left out."""
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": list(model.fc.parameters()), "lr": config.lr}]
    if backbone and config.backbone_lr_mult > 0:
        groups.append({"params": backbone, "lr": config.lr * config.backbone_lr_mult})
    if proxies is not None:
        groups.append(
            {"params": list(proxies.parameters()), "lr": config.lr * config.proxy_lr_mult}
        )
    return groups


def batch_loss(
    model: EmbeddingNet,
    images: Tensor,
    labels: Tensor,
    config: EmbeddingTrainConfig,
    proxies: ClassProxies | None = None,
) -> Tensor:
    """The configured metric-learning loss of one batch (triplet on normalised, N-pair on raw,
    normalised softmax against ``proxies``)."""
    return embedding_loss(model.forward_raw(images), labels, config, proxies)


def embedding_loss(
    raw: Tensor, labels: Tensor, config: EmbeddingTrainConfig, proxies: ClassProxies | None
) -> Tensor:
    """The configured loss of raw embeddings ``(B, D)`` with labels ``(B,)``."""
    if config.loss == "normsoftmax":
        if proxies is None:
            raise ValueError("the normsoftmax loss needs proxies= (ClassProxies)")
        return normsoftmax_loss(raw, proxies.index(labels), proxies.weight, config.temperature)
    if config.loss == "triplet" and config.mining == "hard":
        return triplet_batch_hard_loss(raw, labels, config.margin, normalize=True)
    if config.loss == "triplet":
        return triplet_semihard_loss(raw, labels, config.margin, normalize=True)
    return npair_batch_loss(raw, labels, config.npair_reg)


def lr_factor(total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """Learning-rate multiplier of step ``t``: linear warmup over ``warmup_steps`` (from
    ``1 / (warmup_steps + 1)``), then cosine decay to 0 at ``total_steps``.

    Without warmup it is ``0.5 (1 + cos(pi t / T))``, the schedule used before warmup existed.
    """
    total = max(1, total_steps)
    warm = min(max(0, warmup_steps), total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        span = max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, span) / span))

    return factor


def train_one_epoch(
    model: EmbeddingNet,
    loader: Iterable[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    config: EmbeddingTrainConfig,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "train",
    proxies: ClassProxies | None = None,
) -> dict[str, float]:
    """One pass over ``loader`` (batches of dict samples); returns ``{"loss", "seconds"}``."""
    model.train()
    start = time.perf_counter()
    total, n = 0.0, 0
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        labels = torch.as_tensor(batch["label"]).to(device)  # (B,)
        if "pooled" in batch:  # cached features of a frozen backbone (.frozen)
            raw = model.fc(batch["pooled"].to(device))  # (B, C) -> (B, D)
        else:
            raw = model.forward_raw(batch["image"].to(device))  # (B, 3, S, S) -> (B, D)
        loss = embedding_loss(raw, labels, config, proxies)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += float(loss.detach())
        n += 1
    return {"loss": total / max(n, 1), "seconds": time.perf_counter() - start}


@torch.no_grad()
def embed_dataset(
    model: EmbeddingNet,
    dataset: Dataset[Any],
    *,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Unnormalised embeddings ``(N, D)`` (CPU float32) and labels ``(N,)`` of a dataset."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    embeddings, labels = [], []
    try:
        for batch in tqdm(loader, desc="embed", disable=not progress, leave=False):
            embeddings.append(model.forward_raw(batch["image"].to(device)).float().cpu())
            labels.append(torch.as_tensor(batch["label"]).long())
    finally:
        model.train(was_training)
    if not embeddings:
        raise ValueError("the dataset is empty")
    return torch.cat(embeddings), torch.cat(labels)


def evaluate(
    model: EmbeddingNet,
    dataset: Dataset[Any],
    *,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Recall@1 and NMI (k-means, as many clusters as classes) on a held-out-class dataset."""
    emb, lab = embed_dataset(
        model, dataset, batch_size=batch_size, device=device, progress=progress
    )
    return retrieval_metrics(emb, lab, seed=seed)


def train_embedding(
    train_dataset: Dataset[Any],
    config: EmbeddingTrainConfig,
    *,
    loss: LossName | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    eval_dataset: Dataset[Any] | None = None,
    aug: CUBAugConfig | None = None,
) -> tuple[EmbeddingNet, list[dict[str, float]]]:
    """Train an :class:`EmbeddingNet` with P x K batches, AdamW and a cosine learning rate.

    Args:
        train_dataset: dict-sample dataset with ``labels`` (training augmentation is the
            dataset's business, e.g. ``CUBDataset(train_aug=True)``, which draws from torch's
            global RNG: it is seeded here).
        config: hyper-parameters; ``loss`` overrides ``config.loss`` when given.
        eval_dataset: optional held-out classes, evaluated (Recall@1, NMI) after every epoch.
        aug: the batched augmentation of a :class:`~houseprice.data.cub.DecodedImages`
            training set (``None``: its plain images); other datasets augment themselves.

    Returns:
        ``(model in eval mode, history)`` with one ``{"epoch", "loss", "seconds"[,
        "recall_at_1", "nmi"]}`` dict per epoch.
    """
    if loss is not None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        config = EmbeddingTrainConfig.from_dict({**config.to_dict(), "loss": loss})
    labels = _dataset_labels(train_dataset)
    torch.manual_seed(seed)
    model = build_embedding_net(config).to(device)
    n_batches = config.batches_per_epoch or max(
        1, len(labels) // (config.classes_per_batch * config.images_per_class)
    )
    sampler = PKBatchSampler(
        labels, config.classes_per_batch, config.images_per_class, n_batches, seed=seed
    )
    loader: Iterable[dict[str, Any]]
    if config.feature_views:
        if not isinstance(train_dataset, DecodedImages):
            raise TypeError("feature_views needs a DecodedImages training set")
        loader = CachedFeatureBatches(
            model,
            train_dataset,
            sampler,
            aug,
            views=config.feature_views,
            batch_size=config.eval_batch_size,
            seed=seed,
            device=device,
        )
    elif isinstance(train_dataset, DecodedImages):
        loader = DecodedBatches(train_dataset, sampler, aug, seed)
    else:
        loader = DataLoader(train_dataset, batch_sampler=sampler, num_workers=0)
    proxies = ClassProxies(labels, config.dim).to(device) if config.loss == "normsoftmax" else None
    optimizer = torch.optim.AdamW(
        param_groups(model, proxies, config), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(config.epochs * n_batches, round(config.warmup_epochs * n_batches))
    )
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.epochs), desc="embedding epochs", disable=not progress)
    for epoch in bar:
        sampler.set_epoch(epoch)
        row: dict[str, float] = {"epoch": float(epoch + 1)}
        row.update(
            train_one_epoch(
                model,
                loader,
                optimizer,
                config,
                scheduler=scheduler,
                device=device,
                progress=progress,
                desc=f"epoch {epoch + 1}",
                proxies=proxies,
            )
        )
        if eval_dataset is not None:
            row.update(
                evaluate(
                    model,
                    eval_dataset,
                    batch_size=config.eval_batch_size,
                    device=device,
                    seed=seed,
                )
            )
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
    model.eval()
    return model, history
