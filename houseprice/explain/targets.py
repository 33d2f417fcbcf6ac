"""Typed targets: callable objectives ``model output -> (B,)`` in the ``pytorch-grad-cam`` style.

A target tells an explainer *what* to explain. Every explainer still accepts the plain forms of
:data:`~houseprice.explain.base.Target` (``None``, class indices, tensors, any callable); the
classes here are named, validated callables for the common objectives:

* :class:`ClassTarget` - the pre-softmax score of a class per sample (Chen eq. 2, ``y^c``);
* :class:`EmbeddingSumTarget` - the sum of the embedding's components (Taha eq. 6);
* :class:`EmbeddingTarget` - the dot product ``y . p`` with anchor/proxy vectors (Bachhawat
  eq. 9);
* :class:`SimilarityTarget` - the cosine similarity of the embedding to anchor vectors.

Gradient explainers (``GradCAM`` and its subclasses) call them as objectives. ``EmbeddingCAM``
reads a :class:`ClassTarget` as proxy labels and an :class:`EmbeddingTarget` as proxy vectors;
``L2CAF`` reads a :class:`ClassTarget` as the class of its class-specific loss (Taha eq. 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from houseprice.explain.base import class_indices, class_scores


def _embedding(output: Any, what: str) -> Tensor:
    if not isinstance(output, Tensor) or output.ndim != 2:
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(f"{what} needs a (B, D) embedding output, got {shape}")
    return output


def _anchors(anchor: Tensor, output: Tensor) -> Tensor:
    """Anchor vectors ``(D,)`` (one for the batch) or ``(B, D)`` on the output's device."""
    vectors = anchor.to(output.device, output.dtype)
    if vectors.ndim == 1 and vectors.shape[0] == output.shape[1]:
        vectors = vectors.expand_as(output)
    if vectors.shape != output.shape:
        raise ValueError(
            f"anchor vectors must have shape ({output.shape[1]},) or {tuple(output.shape)}, "
            f"got {tuple(anchor.shape)}"
        )
    return vectors


def embedding_sum(output: Any) -> Tensor:
    """Taha eq. 6 objective: sum of the output embedding's components, ``(B, D) -> (B,)``.

    ``d y / d A`` for a vector ``y`` is taken as the gradient of ``sum_d y_d`` (what
    ``tf.gradients`` computes for a vector output).
    """
    if not isinstance(output, Tensor) or output.ndim < 2:
        raise ValueError("the embedding objective needs a (B, D) tensor output")
    return output.flatten(1).sum(dim=1)


@dataclass(frozen=True)
class ClassTarget:
    """Pre-softmax score ``y^c`` of class ``index`` per sample (Chen eq. 2).

    ``index`` is one class for the whole batch (``int``) or one per image (a sequence or an
    integer tensor of shape ``(B,)``).
    """

    index: int | Sequence[int] | Tensor

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or (
            isinstance(self.index, Tensor) and self.index.is_floating_point()
        ):
            raise TypeError("ClassTarget index must be an int, ints or an integer tensor")

    def __call__(self, output: Any) -> Tensor:
        if not isinstance(output, Tensor):
            raise ValueError(f"a class target needs a tensor output, got {type(output).__name__}")
        return class_scores(output, class_indices(self.index, output.shape[0], output.device))


@dataclass(frozen=True)
class EmbeddingSumTarget:
    """Sum of the embedding's components (Taha eq. 6), the retrieval Grad-CAM default."""

    def __call__(self, output: Any) -> Tensor:
        return embedding_sum(output)


@dataclass(frozen=True, eq=False)
class EmbeddingTarget:
    """Dot product ``y . p`` of the (unnormalised) embedding with anchor vectors (Bachhawat
    eq. 9): ``anchor`` is ``(D,)`` for the whole batch or ``(B, D)``, e.g. class proxies."""

    anchor: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.anchor, Tensor) or self.anchor.ndim not in (1, 2):
            raise ValueError("EmbeddingTarget anchor must be a (D,) or (B, D) tensor")
        object.__setattr__(self, "anchor", self.anchor.detach())

    def __call__(self, output: Any) -> Tensor:
        y = _embedding(output, "EmbeddingTarget")
        return (y * _anchors(self.anchor, y)).sum(dim=1)  # Bachhawat eq. 9: L_c = y . p_c


@dataclass(frozen=True, eq=False)
class SimilarityTarget:
    """Cosine similarity of the embedding to anchor vectors ``(D,)`` or ``(B, D)`` (the
    ``pytorch-grad-cam`` "similarity to concept" objective for embedding networks)."""

    anchor: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.anchor, Tensor) or self.anchor.ndim not in (1, 2):
            raise ValueError("SimilarityTarget anchor must be a (D,) or (B, D) tensor")
        object.__setattr__(self, "anchor", self.anchor.detach())

    def __call__(self, output: Any) -> Tensor:
        y = _embedding(output, "SimilarityTarget")
        return F.cosine_similarity(y, _anchors(self.anchor, y), dim=1)


__all__ = [
    "ClassTarget",
    "EmbeddingSumTarget",
    "EmbeddingTarget",
    "SimilarityTarget",
    "embedding_sum",
]
