"""Grad-weight database (Chen §3.3, §4.1 storage analysis).

:class:`GradWeightDatabase` stores, per training image, its embedding ``(D,)``, the ids of its
top-M channels ``(M,)`` and their grad-weights ``(M,)`` (plus optional labels and optional
dense *signed* weights ``(C,)`` of every channel, for signed maps). A query
embedding finds its nearest entry (:mod:`houseprice.explain.neighbours`), whose weights
:class:`~houseprice.explain.transfer.WeightTransferCAM` renders with a forward pass only. The
database can be compressed with k-means to ``K`` centres with averaged weights, and
saved/loaded as safetensors + JSON (never pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from houseprice.explain.base import Explainer, Target
from houseprice.explain.neighbours import IndexKind, NeighbourIndex

FORMAT = "houseprice.explain.gradweights"
FORMAT_VERSION = 1


@dataclass
class QueryResult:
    """Nearest database entry per query embedding."""

    indices: Tensor  # (Q,) int64 entry index
    distances: Tensor  # (Q,) Euclidean distance in the (normalised) embedding space
    channels: Tensor  # (Q, M) int64 channel ids of the entry's top-M weights
    weights: Tensor  # (Q, M) float32 grad-weights
    signed: Tensor | None = None  # (Q, C) float32 signed weights of every channel, if stored


def _top_m(weights: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """``(N, C)`` dense weights -> top-M ``(channels (N, M) int64, weights (N, M))`` by value."""
    values, channels = weights.topk(min(m, weights.shape[1]), dim=1)
    return channels, values


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class GradWeightDatabase:
    """Embeddings with top-M channel ids and grad-weights per entry (Chen §3.3).

    Args:
        embeddings: ``(N, D)`` embeddings (L2-normalised here when ``normalize``).
        channels: ``(N, M)`` channel ids.
        weights: ``(N, M)`` grad-weights of those channels.
        n_channels: ``C``, the number of channels of the explained layer.
        labels: optional ``(N,)`` integer labels.
        signed: optional ``(N, C)`` signed weights of every channel (kept whole: a signed map
            needs the negative channels that a top-M by value drops).
        normalize: L2-normalise stored and query embeddings (nearest neighbour by cosine).
        index: ``"exact"`` (default) or ``"ivf"`` (approximate, faiss; for large databases).
        nlist: IVF lists (default ``2 sqrt(N)``, at most ``N / 39``); nprobe: lists searched
            per query (recall/speed trade-off).
    """

    def __init__(
        self,
        embeddings: Tensor,
        channels: Tensor,
        weights: Tensor,
        n_channels: int,
        labels: Tensor | None = None,
        *,
        signed: Tensor | None = None,
        normalize: bool = True,
        index: IndexKind = "exact",
        nlist: int | None = None,
        nprobe: int = 8,
    ) -> None:
        embeddings = torch.as_tensor(embeddings).detach().float().cpu()
        channels = torch.as_tensor(channels).detach().long().cpu()
        weights = torch.as_tensor(weights).detach().float().cpu()
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(
                f"embeddings must have shape (N, D) with N > 0, got {tuple(embeddings.shape)}"
            )
        n = embeddings.shape[0]
        if channels.ndim != 2 or channels.shape[0] != n or weights.shape != channels.shape:
            raise ValueError(
                f"channels and weights must both have shape ({n}, M), got "
                f"{tuple(channels.shape)} and {tuple(weights.shape)}"
            )
        if channels.numel() and (int(channels.min()) < 0 or int(channels.max()) >= n_channels):
            raise ValueError(f"channel ids must lie in [0, {n_channels}), the layer's channels")
        if labels is not None:
            labels = torch.as_tensor(labels).detach().cpu()
            if labels.shape != (n,) or labels.is_floating_point():
                raise ValueError(f"labels must be integers of shape ({n},)")
            labels = labels.long()
        if signed is not None:
            signed = torch.as_tensor(signed).detach().float().cpu()
            if signed.shape != (n, n_channels):
                raise ValueError(
                    f"signed weights must have shape ({n}, {n_channels}), got {tuple(signed.shape)}"
                )
        if index not in ("exact", "ivf"):
            raise ValueError(f"index must be 'exact' or 'ivf', got {index!r}")
        self.signed = signed
        self.embeddings = F.normalize(embeddings, dim=1) if normalize else embeddings
        self.channels = channels
        self.weights = weights
        self.n_channels = int(n_channels)
        self.labels = labels
        self.normalize = normalize
        self.index_kind: IndexKind = index
        self.nlist = nlist
        self.nprobe = nprobe
        self._index: NeighbourIndex | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        embeddings: Tensor,
        weights: Tensor,
        *,
        top_m: int = 50,
        labels: Tensor | None = None,
        signed: Tensor | None = None,
        normalize: bool = True,
        index: IndexKind = "exact",
    ) -> GradWeightDatabase:
        """Database from embeddings ``(N, D)`` and dense channel weights ``(N, C)`` (and
        optional dense signed weights ``(N, C)``)."""
        weights = torch.as_tensor(weights).detach().float().cpu()
        if weights.ndim != 2:
            raise ValueError(f"weights must have shape (N, C), got {tuple(weights.shape)}")
        if top_m < 1:
            raise ValueError(f"top_m must be >= 1, got {top_m}")
        channels, values = _top_m(weights, top_m)
        return cls(
            embeddings,
            channels,
            values,
            weights.shape[1],
            labels,
            signed=signed,
            normalize=normalize,
            index=index,
        )

    @classmethod
    def from_explainer(
        cls,
        explainer: Explainer,
        batches: Iterable[tuple[Tensor, Target]],
        *,
        top_m: int = 50,
        embed: Callable[[Any], Tensor] | None = None,
        labels: Tensor | None = None,
        normalize: bool = True,
        index: IndexKind = "exact",
        progress: bool = True,
    ) -> GradWeightDatabase:
        """Run ``explainer`` over ``(images, target)`` batches of a training set and store
        each image's embedding (``embed(model output)``, default the output itself) with its
        top-M channel weights."""
        embeddings: list[Tensor] = []
        channels: list[Tensor] = []
        values: list[Tensor] = []
        n_channels = 0
        for x, target in tqdm(batches, desc="grad-weight database", disable=not progress):
            explanation = explainer.explain(x, target)
            if explanation.weights is None:
                raise ValueError(f"{type(explainer).__name__} produces no channel weights")
            emb = embed(explanation.output) if embed is not None else explanation.output
            if not isinstance(emb, Tensor) or emb.ndim != 2 or emb.shape[0] != x.shape[0]:
                raise ValueError(
                    "the embedding of a batch must be a (B, D) tensor; pass embed= to select it "
                    "from the model output"
                )
            n_channels = explanation.weights.shape[1]
            ch, val = _top_m(explanation.weights.detach().cpu(), top_m)
            embeddings.append(emb.detach().float().cpu())
            channels.append(ch)
            values.append(val)
        if not embeddings:
            raise ValueError("no batches were given to build the database from")
        return cls(
            torch.cat(embeddings),
            torch.cat(channels),
            torch.cat(values),
            n_channels,
            labels,
            normalize=normalize,
            index=index,
        )

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return self.embeddings.shape[0]

    @property
    def dim(self) -> int:
        """Embedding dimension ``D``."""
        return self.embeddings.shape[1]

    @property
    def top_m(self) -> int:
        """Channels stored per entry ``M``."""
        return self.channels.shape[1]

    @property
    def backend(self) -> str:
        """Neighbour-search backend in use (builds the index if needed)."""
        return self._neighbours().backend

    def __repr__(self) -> str:
        return (
            f"GradWeightDatabase(n={len(self)}, dim={self.dim}, top_m={self.top_m}, "
            f"n_channels={self.n_channels}, index={self.index_kind!r})"
        )

    # ------------------------------------------------------------------ search
    def set_index(
        self, index: IndexKind = "exact", *, nlist: int | None = None, nprobe: int = 8
    ) -> GradWeightDatabase:
        """Choose the neighbour index (rebuilt lazily at the next query); returns ``self``."""
        if index not in ("exact", "ivf"):
            raise ValueError(f"index must be 'exact' or 'ivf', got {index!r}")
        self.index_kind, self.nlist, self.nprobe, self._index = index, nlist, nprobe, None
        return self

    def _neighbours(self) -> NeighbourIndex:
        if self._index is None:
            data = np.ascontiguousarray(self.embeddings.numpy(), dtype=np.float32)
            self._index = NeighbourIndex(data, self.index_kind, self.nlist, self.nprobe)
        return self._index

    def query(self, embeddings: Tensor) -> QueryResult:
        """Nearest entry for each query embedding ``(Q, D)`` (Chen §3.3 weight transfer)."""
        q = torch.as_tensor(embeddings).detach().float().cpu()
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(
                f"query embeddings must have shape (Q, {self.dim}), got {tuple(q.shape)}"
            )
        if self.normalize:
            q = F.normalize(q, dim=1)
        dist, idx = self._neighbours().search(np.ascontiguousarray(q.numpy(), dtype=np.float32))
        indices = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        if bool((indices < 0).any()):
            raise RuntimeError("the approximate index found no neighbour; raise nprobe")
        return QueryResult(
            indices=indices,
            distances=torch.from_numpy(np.asarray(dist, dtype=np.float32)),
            channels=self.channels[indices],
            weights=self.weights[indices],
            signed=None if self.signed is None else self.signed[indices],
        )

    def dense_weights(self, indices: Tensor | None = None) -> Tensor:
        """Entries' weights scattered to ``(n, C)`` dense rows (all entries by default)."""
        rows = torch.arange(len(self)) if indices is None else torch.as_tensor(indices).long()
        dense = torch.zeros(len(rows), self.n_channels)
        return dense.scatter_(1, self.channels[rows], self.weights[rows])

    # ------------------------------------------------------------------ compression
    def compress_kmeans(self, n_clusters: int, *, seed: int = 0) -> GradWeightDatabase:
        """k-means over the embeddings; each centre gets its cluster's averaged weights
        (Chen §4.1 storage analysis), re-truncated to the top-M channels."""
        if not 1 <= n_clusters <= len(self):
            raise ValueError(f"n_clusters must be in [1, {len(self)}], got {n_clusters}")
        from sklearn.cluster import KMeans  # lazy: slow import

        kmeans = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed)
        assign = torch.from_numpy(kmeans.fit_predict(self.embeddings.numpy()).astype(np.int64))
        sums = torch.zeros(n_clusters, self.n_channels)
        rows = assign[:, None].expand_as(self.channels)
        sums.index_put_((rows, self.channels), self.weights, accumulate=True)
        counts = torch.bincount(assign, minlength=n_clusters).clamp_min(1)
        labels = None
        if self.labels is not None:
            offset = self.labels - self.labels.min()
            n_labels = int(offset.max()) + 1
            votes = torch.bincount(assign * n_labels + offset, minlength=n_clusters * n_labels)
            labels = votes.view(n_clusters, n_labels).argmax(dim=1) + self.labels.min()
        centres = torch.from_numpy(kmeans.cluster_centers_.astype(np.float32))
        signed = None
        if self.signed is not None:  # cluster means of the signed weights
            signed = torch.zeros(n_clusters, self.n_channels).index_add_(0, assign, self.signed)
            signed = signed / counts[:, None].float()
        return GradWeightDatabase.build(
            centres,
            sums / counts[:, None].float(),
            top_m=self.top_m,
            labels=labels,
            signed=signed,
            normalize=self.normalize,
            index=self.index_kind,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike[str], name: str = "gradweights") -> Path:
        """Write ``<name>.safetensors`` and ``<name>.json`` atomically; returns the JSON path."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "embeddings": self.embeddings.contiguous(),
            "channels": self.channels.to(torch.int32).contiguous(),
            "weights": self.weights.contiguous(),
        }
        if self.labels is not None:
            tensors["labels"] = self.labels.contiguous()
        if self.signed is not None:
            tensors["signed"] = self.signed.contiguous()
        tensor_path = folder / f"{name}.safetensors"
        _atomic_write(tensor_path, lambda tmp: save_file(tensors, tmp))
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "tensors": tensor_path.name,
            "sha256": _sha256(tensor_path),
            "n_entries": len(self),
            "dim": self.dim,
            "top_m": self.top_m,
            "n_channels": self.n_channels,
            "normalize": self.normalize,
            "has_labels": self.labels is not None,
            "has_signed": self.signed is not None,
            "index": self.index_kind,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
        }
        json_path = folder / f"{name}.json"

        def write_json(tmp: str) -> None:
            Path(tmp).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

        _atomic_write(json_path, write_json)
        return json_path

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], name: str = "gradweights"
    ) -> GradWeightDatabase:
        """Read a database written by :meth:`save`, checking format, checksum and shapes."""
        json_path = Path(directory) / f"{name}.json"
        if not json_path.is_file():
            raise FileNotFoundError(f"grad-weight database metadata not found: {json_path}")
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{json_path}: not valid JSON ({err})") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{json_path}: not a grad-weight database (format != {FORMAT!r})")
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{json_path}: format version {meta.get('version')} is not supported "
                f"(expected {FORMAT_VERSION})"
            )
        missing = [k for k in ("tensors", "sha256", "n_channels", "normalize") if k not in meta]
        if missing:
            raise ValueError(f"{json_path}: missing keys {missing}")
        tensor_path = json_path.parent / str(meta["tensors"])
        if tensor_path.parent != json_path.parent:
            raise ValueError(f"{json_path}: 'tensors' must name a file in the same folder")
        if not tensor_path.is_file():
            raise FileNotFoundError(f"grad-weight tensors not found: {tensor_path}")
        if _sha256(tensor_path) != meta["sha256"]:
            raise ValueError(f"{tensor_path}: checksum does not match {json_path}")
        tensors = load_file(str(tensor_path))
        absent = {"embeddings", "channels", "weights"} - tensors.keys()
        if absent:
            raise ValueError(f"{tensor_path}: missing tensors {sorted(absent)}")
        db = cls(
            tensors["embeddings"],
            tensors["channels"],
            tensors["weights"],
            int(meta["n_channels"]),
            tensors.get("labels"),
            signed=tensors.get("signed"),
            normalize=bool(meta["normalize"]),
            index=meta.get("index", "exact"),
            nlist=meta.get("nlist"),
            nprobe=int(meta.get("nprobe", 8)),
        )
        for key, value in (("n_entries", len(db)), ("dim", db.dim), ("top_m", db.top_m)):
            if key in meta and meta[key] != value:
                raise ValueError(f"{json_path}: {key}={meta[key]} but the tensors give {value}")
        return db
