"""Retrieval metrics on held-out classes: Recall@K and NMI of a k-means clustering.

Taha supplementary S2: Recall@K over every sample as a query, and
``NMI = I(Omega, C) / sqrt(H(Omega) H(C))`` of a k-means clustering with as many clusters as
classes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


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


def retrieval_metrics(embeddings: Tensor, labels: Tensor, *, seed: int = 0) -> dict[str, float]:
    """``{"recall_at_1", "nmi"}`` of embeddings ``(N, D)`` with labels ``(N,)``."""
    return {
        "recall_at_1": recall_at_k(embeddings, labels, 1),
        "nmi": nmi_kmeans(embeddings, labels, seed=seed),
    }
