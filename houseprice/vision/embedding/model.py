"""The embedding net of deep metric learning: backbone -> pooling -> FC, and its raw-embedding view.

This module owns

* :class:`EmbeddingNet` - backbone -> pooling (:data:`POOLINGS`: global average, average plus
  max, or generalised mean) -> FC -> ``dim``-d embedding,
  L2-normalised by :meth:`EmbeddingNet.forward`; the *unnormalised* embedding ``y`` is exposed by
  :meth:`EmbeddingNet.forward_raw` (EmbeddingCAM, Bachhawat eq. 9, and the retrieval Grad-CAM /
  L2-CAF endpoints of Taha §4.2 use it) and by the :class:`RawEmbedding` view;
* :func:`build_embedding_net`, a fresh net for a training config.

Losses are in :mod:`.losses`, the P x K sampler in :mod:`.sampler`, training in :mod:`.train`,
retrieval metrics in :mod:`.metrics` and persistence in :mod:`.io`.
"""

from __future__ import annotations

from typing import Protocol

import torch.nn.functional as F
from torch import Tensor, nn

from houseprice.vision.backbones import Backbone, BackboneConfig, build_backbone

POOLINGS = ("gap", "gap+gmp", "gem")
GEM_P = 3.0  # generalised-mean exponent (Radenovic et al. 2018's common choice)


def pool_features(fmap: Tensor, pooling: str = "gap") -> Tensor:
    """``(B, C, h, w) -> (B, C)``: global average (``gap``), average plus max (``gap+gmp``) or
    generalised mean with exponent :data:`GEM_P` (``gem``; the map is clamped at 1e-6)."""
    if pooling == "gap":
        return fmap.mean(dim=(2, 3))
    if pooling == "gap+gmp":
        return fmap.mean(dim=(2, 3)) + fmap.amax(dim=(2, 3))
    if pooling == "gem":
        return fmap.clamp_min(1e-6).pow(GEM_P).mean(dim=(2, 3)).pow(1.0 / GEM_P)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


class EmbeddingNet(nn.Module):
    """``backbone -> pooling -> Linear(C, dim)``; ``forward`` returns the L2-normalised
    embedding.

    Args:
        backbone: a :class:`~houseprice.vision.backbones.Backbone` (its last stage is the
            explained layer, :attr:`target_layer`).
        dim: embedding dimension (128 in Chen §4.1, Bachhawat §4.1 and Taha S2).
        pooling: one of :data:`POOLINGS` (``gap``: the papers' global average pooling).
    """

    def __init__(self, backbone: Backbone, dim: int = 128, pooling: str = "gap") -> None:
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise TypeError(f"backbone must be a Backbone, got {type(backbone).__name__}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
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
        return self.fc(pool_features(fmap, self.pooling))

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


class NetSpec(Protocol):
    """What :func:`build_embedding_net` reads of a config (an ``EmbeddingTrainConfig``)."""

    @property
    def backbone(self) -> BackboneConfig: ...
    @property
    def weights(self) -> str | None: ...
    @property
    def dim(self) -> int: ...
    @property
    def pooling(self) -> str: ...


def build_embedding_net(config: NetSpec) -> EmbeddingNet:
    """A fresh :class:`EmbeddingNet` for ``config`` (backbone weights from ``config.weights``)."""
    return EmbeddingNet(build_backbone(config.backbone, config.weights), config.dim, config.pooling)
