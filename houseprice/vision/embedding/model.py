"""Embedding networks for image retrieval: model, metric-learning losses, metrics and training.

This module owns

* :class:`EmbeddingNet` - backbone -> global average pooling -> FC -> ``dim``-d embedding,
  L2-normalised by :meth:`EmbeddingNet.forward`; the *unnormalised* embedding ``y`` is exposed by
  :meth:`EmbeddingNet.forward_raw` (EmbeddingCAM, Bachhawat eq. 9, and the retrieval Grad-CAM /
  L2-CAF endpoints of Taha §4.2 use it) and by the :class:`RawEmbedding` view;
* the triplet loss with semi-hard negative mining (Chen eq. 1, Taha supplementary eq. S1,
  FaceNet's semi-hard rule) and the multi-class N-pair loss (Taha supplementary eq. S2);
* retrieval metrics on held-out classes: Recall@K and NMI of a k-means clustering (Taha
  supplementary S2, ``NMI = I(Omega, C) / sqrt(H(Omega) H(C))``);
* a P x K class-balanced batch sampler, :func:`train_one_epoch`, :func:`evaluate` and
  :func:`train_embedding`;
* persistence as ``embedding.safetensors`` + ``embedding.json`` (config, metrics, checksum).

Datasets are map-style datasets of dict samples with ``"image"`` (normalised ``(3, S, S)``) and
``"label"`` (int) keys and a ``labels`` attribute (``(N,)`` ints), e.g.
:class:`houseprice.data.cub.CUBDataset`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from houseprice.artifacts import atomic_write_bytes, atomic_write_json, sha256_file
from houseprice.vision.backbones import Backbone, BackboneConfig, build_backbone

LossName = Literal["triplet", "npair"]
LOSSES: tuple[str, ...] = ("triplet", "npair")
FORMAT = "houseprice.vision.embedding"
FORMAT_VERSION = 1
WEIGHTS_FILE = "embedding.safetensors"
CONFIG_FILE = "embedding.json"


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class EmbeddingNet(nn.Module):
    """``backbone -> GAP -> Linear(C, dim)``; ``forward`` returns the L2-normalised embedding.

    Args:
        backbone: a :class:`~houseprice.vision.backbones.Backbone` (its last stage is the
            explained layer, :attr:`target_layer`).
        dim: embedding dimension (128 in Chen §4.1, Bachhawat §4.1 and Taha S2).
    """

    def __init__(self, backbone: Backbone, dim: int = 128) -> None:
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise TypeError(f"backbone must be a Backbone, got {type(backbone).__name__}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_channels, dim)
        self.dim = int(dim)

    @property
    def target_layer(self) -> nn.Module:
        """The module whose output :meth:`forward_features` returns (explainers hook it)."""
        return self.backbone.target_layer

    @property
    def out_channels(self) -> int:
        """Channels ``C`` of the explained feature map."""
        return self.backbone.out_channels

    def forward_features(self, x: Tensor) -> Tensor:
        # (B, 3, H, W) -> (B, C, h, w)
        return self.backbone.forward_features(x)

    def forward_head_raw(self, fmap: Tensor) -> Tensor:
        # (B, C, h, w) -> (B, dim): the unnormalised embedding y
        return self.fc(Backbone.pool(fmap))

    def forward_head(self, fmap: Tensor) -> Tensor:
        # (B, C, h, w) -> (B, dim), unit L2 norm
        return F.normalize(self.forward_head_raw(fmap), dim=1)

    def forward_raw(self, x: Tensor) -> Tensor:
        # (B, 3, H, W) -> (B, dim) unnormalised
        return self.forward_head_raw(self.forward_features(x))

    def forward(self, x: Tensor) -> Tensor:
        # (B, 3, H, W) -> (B, dim) L2-normalised
        return self.forward_head(self.forward_features(x))

    def raw(self) -> RawEmbedding:
        """A module view of this net whose ``forward`` is :meth:`forward_raw` (for explainers)."""
        return RawEmbedding(self)


class RawEmbedding(nn.Module):
    """Wraps an :class:`EmbeddingNet` so that calling it returns the unnormalised embedding.

    The wrapped net is a submodule, so ``net.target_layer`` is a valid explainer target layer
    of this view.
    """

    def __init__(self, net: EmbeddingNet) -> None:
        super().__init__()
        self.net = net

    @property
    def target_layer(self) -> nn.Module:
        return self.net.target_layer

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_raw(x)  # (B, dim)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def pairwise_sq_distances(embeddings: Tensor) -> Tensor:
    """Squared Euclidean distances ``(B, B)`` between rows of ``(B, D)`` (exact zero diagonal)."""
    sq = embeddings.pow(2).sum(dim=1)
    dist = (sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.T).clamp_min(0.0)
    return dist * (1.0 - torch.eye(len(embeddings), device=dist.device, dtype=dist.dtype))


def _check_batch(embeddings: Tensor, labels: Tensor) -> Tensor:
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (B, D), got {tuple(embeddings.shape)}")
    labels = torch.as_tensor(labels, device=embeddings.device)
    if labels.shape != (embeddings.shape[0],) or labels.is_floating_point():
        raise ValueError(
            f"labels must be integers of shape ({embeddings.shape[0]},), "
            f"got {tuple(labels.shape)} {labels.dtype}"
        )
    return labels


def semihard_triplets(dist: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Semi-hard negative per anchor-positive pair (FaceNet; Taha supplementary, Fig. S1).

    Every ordered pair ``(a, p)`` of distinct same-label samples is kept. Its negative is the
    *semi-hard* one: the closest negative that is farther from the anchor than the positive,
    ``argmin_n {D_an : D_an > D_ap}``; when no negative is farther than the positive, the
    farthest negative ``argmax_n D_an`` is used (TensorFlow's ``triplet_semihard_loss``
    convention). Pairs whose anchor has no negative at all are dropped.

    Args:
        dist: ``(B, B)`` distances.
        labels: ``(B,)`` integer labels.

    Returns:
        ``(anchor, positive, negative)`` index tensors of shape ``(T,)``.
    """
    same = labels[:, None] == labels[None, :]  # (B, B)
    eye = torch.eye(len(labels), dtype=torch.bool, device=dist.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    anchor, positive = pos_mask.nonzero(as_tuple=True)  # (T,)
    d_an = dist[anchor]  # (T, B)
    d_ap = dist[anchor, positive][:, None]  # (T, 1)
    negatives = neg_mask[anchor]  # (T, B)
    outside = negatives & (d_an > d_ap)
    inf = torch.tensor(float("inf"), device=dist.device, dtype=dist.dtype)
    closest_outside = torch.where(outside, d_an, inf).argmin(dim=1)
    farthest = torch.where(negatives, d_an, -inf).argmax(dim=1)
    negative = torch.where(outside.any(dim=1), closest_outside, farthest)
    keep = negatives.any(dim=1)
    return anchor[keep], positive[keep], negative[keep]


def triplet_semihard_loss(
    embeddings: Tensor, labels: Tensor, margin: float = 0.2, *, normalize: bool = True
) -> Tensor:
    """Mean triplet loss over all anchor-positive pairs with semi-hard negatives.

    ``L = [D(f_a, f_p) - D(f_a, f_n) + margin]_+`` with ``D`` the squared Euclidean distance of
    L2-normalised embeddings (Chen eq. 1; Taha supplementary eq. S1, margin 0.2), negatives from
    :func:`semihard_triplets`. A batch without any valid triplet gives a zero loss that still
    depends on the embeddings (so ``backward`` works).
    """
    labels = _check_batch(embeddings, labels)
    f = F.normalize(embeddings, dim=1) if normalize else embeddings
    dist = pairwise_sq_distances(f)
    a, p, n = semihard_triplets(dist.detach(), labels)
    if a.numel() == 0:
        return (f * 0.0).sum()
    return (dist[a, p] - dist[a, n] + margin).clamp_min(0.0).mean()


def npair_loss(anchors: Tensor, positives: Tensor, reg: float = 0.0) -> Tensor:
    """Multi-class N-pair loss (Sohn 2016; Taha supplementary eq. S2) on raw embeddings.

    Row ``i`` of ``anchors`` and ``positives`` (both ``(N, D)``) share a class and every other
    row is another class: ``L_i = -log(exp(a_i.p_i) / sum_j exp(a_i.p_j))``, averaged over
    ``i``; ``reg`` adds ``reg/2 * mean(||a_i||^2 + ||p_i||^2)`` (Sohn's embedding-norm
    regulariser, needed because the N-pair embedding is unnormalised).
    """
    if anchors.ndim != 2 or anchors.shape != positives.shape:
        raise ValueError(
            f"anchors and positives must both have shape (N, D), got {tuple(anchors.shape)} "
            f"and {tuple(positives.shape)}"
        )
    if reg < 0:
        raise ValueError(f"reg must be >= 0, got {reg}")
    logits = anchors @ positives.T  # (N, N): [a_i][p_j]
    target = torch.arange(len(anchors), device=anchors.device)
    loss = F.cross_entropy(logits, target)  # eq. S2, negatives = the other classes' positives
    if reg > 0:
        loss = loss + 0.5 * reg * (anchors.pow(2).sum(1) + positives.pow(2).sum(1)).mean()
    return loss


def npair_batch_loss(embeddings: Tensor, labels: Tensor, reg: float = 0.0) -> Tensor:
    """N-pair loss of a class-balanced batch: consecutive same-class samples form pairs.

    The samples of each class are paired in batch order ``(1st, 2nd), (3rd, 4th), ...``; tuple
    ``j`` holds the ``j``-th pair of every class that has one (one positive pair per class, as
    Taha S1 prescribes) and the loss is the mean of :func:`npair_loss` over tuples with at
    least two classes. A batch with no such tuple gives a zero loss attached to the graph.
    """
    labels = _check_batch(embeddings, labels)
    pairs: dict[int, list[tuple[int, int]]] = {}
    for cls in labels.unique().tolist():
        idx = (labels == cls).nonzero()[:, 0].tolist()
        for j in range(len(idx) // 2):
            pairs.setdefault(j, []).append((idx[2 * j], idx[2 * j + 1]))
    losses = []
    for tuple_pairs in pairs.values():
        if len(tuple_pairs) < 2:
            continue
        a_idx = torch.tensor([a for a, _ in tuple_pairs], device=embeddings.device)
        p_idx = torch.tensor([p for _, p in tuple_pairs], device=embeddings.device)
        losses.append(npair_loss(embeddings[a_idx], embeddings[p_idx], reg))
    if not losses:
        return (embeddings * 0.0).sum()
    return torch.stack(losses).mean()


# --------------------------------------------------------------------------------------------
# Retrieval metrics
# --------------------------------------------------------------------------------------------


def _as_numpy(a: Tensor | np.ndarray) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)


def recall_hits(
    embeddings: Tensor | np.ndarray, labels: Tensor | np.ndarray, k: int = 1
) -> np.ndarray:
    """Per-query Recall@K hit ``(N,)`` bool: a same-class sample among the K nearest others.

    Every sample queries all others (itself excluded) by Euclidean distance of the
    L2-normalised embeddings (i.e. cosine similarity).
    """
    emb = torch.as_tensor(_as_numpy(embeddings), dtype=torch.float32)
    lab = torch.as_tensor(_as_numpy(labels))
    if emb.ndim != 2 or lab.shape != (emb.shape[0],):
        raise ValueError(
            f"need embeddings (N, D) and labels (N,), got {tuple(emb.shape)} and {tuple(lab.shape)}"
        )
    if not 1 <= k < emb.shape[0]:
        raise ValueError(f"k must be in [1, N-1] = [1, {emb.shape[0] - 1}], got {k}")
    unit = F.normalize(emb, dim=1)
    hits = torch.zeros(len(unit), dtype=torch.bool)
    for start in range(0, len(unit), 1024):  # (chunk, N) similarities at a time
        sim = unit[start : start + 1024] @ unit.T
        rows = torch.arange(start, min(start + 1024, len(unit)))
        sim[rows - start, rows] = -float("inf")  # exclude the query itself
        nearest = sim.topk(k, dim=1).indices  # (chunk, k)
        hits[rows] = (lab[nearest] == lab[rows][:, None]).any(dim=1)
    return hits.numpy()


def recall_at_k(embeddings: Tensor | np.ndarray, labels: Tensor | np.ndarray, k: int = 1) -> float:
    """Recall@K: fraction of queries with a same-class sample among their K nearest neighbours
    (see :func:`recall_hits`)."""
    return float(recall_hits(embeddings, labels, k).mean())


def nmi_kmeans(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    n_clusters: int | None = None,
    *,
    seed: int = 0,
) -> float:
    """NMI between the labels and a k-means clustering of the L2-normalised embeddings.

    ``NMI = I(Omega, C) / sqrt(H(Omega) H(C))`` (Taha supplementary S2; scikit-learn's
    ``average_method="geometric"``). ``n_clusters`` defaults to the number of classes.
    """
    from sklearn.cluster import KMeans  # lazy: slow import
    from sklearn.metrics import normalized_mutual_info_score

    emb = _as_numpy(embeddings).astype(np.float64)
    lab = _as_numpy(labels)
    if emb.ndim != 2 or lab.shape != (emb.shape[0],):
        raise ValueError(f"need embeddings (N, D) and labels (N,), got {emb.shape} and {lab.shape}")
    k = len(np.unique(lab)) if n_clusters is None else n_clusters
    if not 1 <= k <= len(emb):
        raise ValueError(f"n_clusters must be in [1, {len(emb)}], got {k}")
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    assign = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(unit)
    return float(normalized_mutual_info_score(lab, assign, average_method="geometric"))


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclass
class EmbeddingTrainConfig:
    """Hyper-parameters of embedding training (stored in ``embedding.json``)."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    weights: str | None = None  # local backbone initialisation (e.g. ImageNet ResNet-50)
    dim: int = 128
    image_size: int = 64  # input side S the net is trained and evaluated at
    loss: str = "triplet"  # "triplet" (semi-hard, normalised) or "npair" (raw embedding)
    margin: float = 0.2  # triplet margin (Chen eq. 1, Taha S2)
    npair_reg: float = 0.002  # N-pair embedding-norm regulariser (Sohn 2016)
    epochs: int = 10
    classes_per_batch: int = 16  # P
    images_per_class: int = 4  # K
    batches_per_epoch: int | None = None  # None: len(dataset) // (P * K), at least 1
    lr: float = 1e-3
    weight_decay: float = 5e-4
    eval_batch_size: int = 128

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.classes_per_batch < 2 or self.images_per_class < 2:
            raise ValueError("classes_per_batch (P) and images_per_class (K) must both be >= 2")
        if self.epochs < 0 or self.lr <= 0 or self.dim < 1 or self.image_size < 16:
            raise ValueError("need epochs >= 0, lr > 0, dim >= 1 and image_size >= 16")
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


class PKBatchSampler(Sampler[list[int]]):
    """Class-balanced batches: ``P`` distinct classes, ``K`` images each (``P * K`` indices).

    Classes are drawn without replacement per batch (all classes when fewer than ``P`` have
    at least two images); images of a class without replacement when it has at least ``K``,
    else with replacement. Classes with a single image are never drawn (no positive).
    Deterministic: batch ``i`` of epoch ``e`` depends only on ``(seed, e)``; call
    :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | Tensor,
        classes_per_batch: int,
        images_per_class: int,
        n_batches: int,
        *,
        seed: int = 0,
    ) -> None:
        lab = _as_numpy(labels) if isinstance(labels, Tensor) else np.asarray(labels)
        if lab.ndim != 1 or lab.size == 0:
            raise ValueError("labels must be a non-empty 1-d sequence")
        if n_batches < 1:
            raise ValueError(f"n_batches must be >= 1, got {n_batches}")
        self.by_class = {
            int(c): np.flatnonzero(lab == c) for c in np.unique(lab) if (lab == c).sum() >= 2
        }
        if len(self.by_class) < 2:
            raise ValueError(
                "a class-balanced batch needs at least 2 classes with at least 2 images each; "
                f"got {len(self.by_class)}"
            )
        self.p = min(classes_per_batch, len(self.by_class))
        self.k = images_per_class
        self.n_batches = n_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches :meth:`__iter__` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 0x9B])
        classes = np.array(sorted(self.by_class))
        for _ in range(self.n_batches):
            batch: list[int] = []
            for c in rng.choice(classes, size=self.p, replace=False):
                members = self.by_class[int(c)]
                take = rng.choice(members, size=self.k, replace=len(members) < self.k)
                batch.extend(int(i) for i in take)
            yield batch


def _dataset_labels(dataset: Dataset[Any]) -> np.ndarray:
    labels = getattr(dataset, "labels", None)
    if labels is None:
        raise TypeError(
            f"{type(dataset).__name__} has no 'labels' attribute; the P x K sampler needs the "
            "(N,) integer labels of every sample (CUBDataset provides them)"
        )
    lab = _as_numpy(labels) if isinstance(labels, Tensor) else np.asarray(labels)
    if lab.shape != (len(dataset),):  # type: ignore[arg-type]
        raise ValueError(f"dataset.labels has shape {lab.shape}, expected ({len(dataset)},)")  # type: ignore[arg-type]
    return lab.astype(np.int64)


def batch_loss(
    model: EmbeddingNet, images: Tensor, labels: Tensor, config: EmbeddingTrainConfig
) -> Tensor:
    """The configured metric-learning loss of one batch (triplet on normalised, N-pair on raw)."""
    raw = model.forward_raw(images)  # (B, D)
    if config.loss == "triplet":
        return triplet_semihard_loss(raw, labels, config.margin, normalize=True)
    return npair_batch_loss(raw, labels, config.npair_reg)


def train_one_epoch(
    model: EmbeddingNet,
    loader: DataLoader[Any],
    optimizer: torch.optim.Optimizer,
    config: EmbeddingTrainConfig,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "train",
) -> dict[str, float]:
    """One pass over ``loader`` (batches of dict samples); returns ``{"loss", "seconds"}``."""
    model.train()
    start = time.perf_counter()
    total, n = 0.0, 0
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        images = batch["image"].to(device)  # (B, 3, S, S)
        labels = torch.as_tensor(batch["label"]).to(device)  # (B,)
        loss = batch_loss(model, images, labels, config)
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


def retrieval_metrics(embeddings: Tensor, labels: Tensor, *, seed: int = 0) -> dict[str, float]:
    """``{"recall_at_1", "nmi"}`` of embeddings ``(N, D)`` with labels ``(N,)``."""
    return {
        "recall_at_1": recall_at_k(embeddings, labels, 1),
        "nmi": nmi_kmeans(embeddings, labels, seed=seed),
    }


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


def build_embedding_net(config: EmbeddingTrainConfig) -> EmbeddingNet:
    """A fresh :class:`EmbeddingNet` for ``config`` (backbone weights from ``config.weights``)."""
    return EmbeddingNet(build_backbone(config.backbone, config.weights), config.dim)


def train_embedding(
    train_dataset: Dataset[Any],
    config: EmbeddingTrainConfig,
    *,
    loss: LossName | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    eval_dataset: Dataset[Any] | None = None,
) -> tuple[EmbeddingNet, list[dict[str, float]]]:
    """Train an :class:`EmbeddingNet` with P x K batches, AdamW and a cosine learning rate.

    Args:
        train_dataset: dict-sample dataset with ``labels`` (training augmentation is the
            dataset's business, e.g. ``CUBDataset(train_aug=True)``, which draws from torch's
            global RNG: it is seeded here).
        config: hyper-parameters; ``loss`` overrides ``config.loss`` when given.
        eval_dataset: optional held-out classes, evaluated (Recall@1, NMI) after every epoch.

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
    loader: DataLoader[Any] = DataLoader(train_dataset, batch_sampler=sampler, num_workers=0)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    total_steps = max(1, config.epochs * n_batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)),
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


# --------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------


def save_embedding_net(
    model: EmbeddingNet,
    directory: str | Path,
    config: EmbeddingTrainConfig,
    *,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, float]] | None = None,
) -> Path:
    """Write ``embedding.safetensors`` then ``embedding.json`` (atomically); returns the JSON.

    The JSON holds the format version, the training config (enough to rebuild the net), the
    weights' SHA-256 and optional metrics/history; it is written last, so a folder with a
    JSON always has matching weights.
    """
    if model.dim != config.dim or model.backbone.config != config.backbone:
        raise ValueError("config does not describe this model (dim or backbone differ)")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights_path = atomic_write_bytes(folder / WEIGHTS_FILE, save_safetensors(state))
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "weights": WEIGHTS_FILE,
        "sha256": sha256_file(weights_path),
        "config": config.to_dict(),
        "metrics": metrics or {},
        "history": history or [],
    }
    return atomic_write_json(folder / CONFIG_FILE, meta)


def load_embedding_net(
    directory: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[EmbeddingNet, dict[str, Any]]:
    """Read a net written by :func:`save_embedding_net`; returns ``(model in eval mode, meta)``.

    Checks the format, version and checksum, and that the weights fit the configured net.
    ``EmbeddingTrainConfig.from_dict(meta["config"])`` rebuilds the training config.
    """
    import json

    folder = Path(directory)
    json_path = folder / CONFIG_FILE
    if not json_path.is_file():
        raise FileNotFoundError(f"embedding model metadata not found: {json_path}")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{json_path}: not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{json_path}: not an embedding model (format != {FORMAT!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{json_path}: format version {meta.get('version')} is not supported "
            f"(expected {FORMAT_VERSION})"
        )
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise FileNotFoundError(f"embedding weights not found: {weights_path}")
    if sha256_file(weights_path) != meta.get("sha256"):
        raise ValueError(f"{weights_path}: checksum does not match {json_path}")
    config = EmbeddingTrainConfig.from_dict(meta["config"])
    model = EmbeddingNet(build_backbone(config.backbone), config.dim)
    state = load_safetensors(weights_path.read_bytes())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights_path}: weights do not fit the configured net ({err})") from err
    model.to(device).eval()
    return model, meta
