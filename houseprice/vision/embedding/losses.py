"""Metric-learning losses: pairwise distances, semi-hard triplets, triplet and N-pair losses.

* the triplet loss with semi-hard negative mining (Chen eq. 1, Taha supplementary eq. S1,
  FaceNet's semi-hard rule) on L2-normalised embeddings;
* the batch-hard triplet loss (Hermans et al. 2017: hardest positive and negative per anchor);
* the multi-class N-pair loss (Taha supplementary eq. S2, Sohn 2016) on raw embeddings;
* the normalised-softmax loss (Zhai & Wu 2019, "classification is a strong baseline for deep
  metric learning"): cosine similarity to one learned proxy per training class, temperature.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LossName = Literal["triplet", "npair", "normsoftmax"]
LOSSES: tuple[str, ...] = ("triplet", "npair", "normsoftmax")
MININGS: tuple[str, ...] = ("semihard", "hard")  # negatives of the triplet loss


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


def triplet_batch_hard_loss(
    embeddings: Tensor, labels: Tensor, margin: float = 0.2, *, normalize: bool = True
) -> Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) with the triplet of Chen eq. 1.

    Per anchor: its farthest positive and its closest negative in the batch,
    ``L_a = [max_p D_ap - min_n D_an + margin]_+`` with ``D`` the squared Euclidean distance of
    L2-normalised embeddings, averaged over anchors that have both. A batch without such an
    anchor gives a zero loss that still depends on the embeddings.
    """
    labels = _check_batch(embeddings, labels)
    f = F.normalize(embeddings, dim=1) if normalize else embeddings
    dist = pairwise_sq_distances(f)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=dist.device)
    pos_mask, neg_mask = same & ~eye, ~same
    keep = pos_mask.any(dim=1) & neg_mask.any(dim=1)
    if not bool(keep.any()):
        return (f * 0.0).sum()
    inf = torch.tensor(float("inf"), device=dist.device, dtype=dist.dtype)
    hardest_pos = torch.where(pos_mask, dist, -inf).amax(dim=1)
    hardest_neg = torch.where(neg_mask, dist, inf).amin(dim=1)
    return (hardest_pos - hardest_neg + margin)[keep].clamp_min(0.0).mean()


def normsoftmax_loss(
    embeddings: Tensor, targets: Tensor, proxies: Tensor, temperature: float = 0.05
) -> Tensor:
    """Normalised-softmax loss (Zhai & Wu 2019): cross-entropy of ``cos(f_i, w_c) / T``.

    Args:
        embeddings: ``(B, D)`` raw embeddings (normalised here).
        targets: ``(B,)`` class indices ``0..K-1`` into ``proxies``.
        proxies: ``(K, D)`` learned class proxies (normalised here).
        temperature: ``T``; small values (0.05) sharpen the softmax.
    """
    if embeddings.ndim != 2 or proxies.ndim != 2 or proxies.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"need embeddings (B, D) and proxies (K, D), got {tuple(embeddings.shape)} and "
            f"{tuple(proxies.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = F.normalize(embeddings, dim=1) @ F.normalize(proxies, dim=1).T / temperature
    return F.cross_entropy(logits, targets.to(embeddings.device))


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
