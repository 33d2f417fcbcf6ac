"""Nearest-neighbour search for grad-weight databases (Chen §3.3 weight transfer).

faiss when it is installed (``pip install faiss-cpu``; exact ``IndexFlatL2`` or approximate
``IndexIVFFlat``), scikit-learn's exact brute-force search otherwise.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np

IndexKind = Literal["exact", "ivf"]


def _faiss() -> Any | None:
    try:
        import faiss
    except ImportError:
        return None
    return faiss


class NeighbourIndex:
    """Nearest-neighbour search over ``(N, D)`` float32 data (faiss, else scikit-learn)."""

    def __init__(self, data: np.ndarray, kind: IndexKind, nlist: int | None, nprobe: int) -> None:
        faiss = _faiss()
        n, dim = data.shape
        self.backend: str
        if kind == "ivf" and faiss is None:
            warnings.warn(
                "index='ivf' needs faiss (pip install faiss-cpu); using exact scikit-learn "
                "search instead",
                stacklevel=3,
            )
            kind = "exact"
        if faiss is None:
            from sklearn.neighbors import NearestNeighbors  # lazy: slow import

            self.backend = "sklearn-exact"
            self._nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(data)
            return
        if kind == "exact":
            self.backend = "faiss-flat"
            self._index = faiss.IndexFlatL2(dim)
        else:
            lists = nlist or max(1, min(int(2 * math.sqrt(n)), n // 39))
            self.backend = f"faiss-ivf{lists}-nprobe{nprobe}"
            quantizer = faiss.IndexFlatL2(dim)
            self._index = faiss.IndexIVFFlat(quantizer, dim, lists)
            # coarse k-means on 39 points per list (faiss's minimum, not 256) for 10 rounds:
            # a 1M-entry index trains in about a minute on one core instead of many
            self._index.cp.max_points_per_centroid = 39
            self._index.cp.niter = 10
            self._index.train(data)
            self._index.nprobe = nprobe
            self._quantizer = quantizer  # keep alive: the IVF index references it
        self._index.add(data)

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Q, D)`` -> ``(distances (Q,), indices (Q,))``, Euclidean distances."""
        if self.backend == "sklearn-exact":
            dist, idx = self._nn.kneighbors(queries, n_neighbors=1)
            return dist[:, 0], idx[:, 0]
        sq, idx = self._index.search(queries, 1)
        return np.sqrt(np.maximum(sq[:, 0], 0.0)), idx[:, 0]
