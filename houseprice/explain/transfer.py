"""Weight transfer (Chen §3.3): a new image's map from its nearest database entry's weights.

The database itself (:class:`GradWeightDatabase`, k-means compression, persistence) lives in
:mod:`houseprice.explain.gradweights` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from houseprice.explain.base import Explainer, LowRes, Normalize, Target, weighted_sum
from houseprice.explain.gradweights import FORMAT, FORMAT_VERSION, GradWeightDatabase, QueryResult
from houseprice.explain.neighbours import IndexKind

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GradWeightDatabase",
    "IndexKind",
    "QueryResult",
    "WeightTransferCAM",
]


class WeightTransferCAM(Explainer):
    """Weight transfer (Chen §3.3): the nearest database entry's grad-weights, forward pass only.

    Map = ``ReLU(sum_m w_m A^{k_m})`` over the neighbour's top-M channels ``k_m`` (Chen eq. 4).

    Args:
        database: a :class:`GradWeightDatabase` built for the same ``target_layer``.
        embed: maps the model output to the ``(B, D)`` query embedding (default: the output).
        signed: transfer the neighbour's signed weights of every channel instead (the database
            must hold them); ``linear`` is then the signed map ``sum_k w_k A^k`` and ``raw``
            its positive part.

    ``target``: ``None``, or precomputed ``(B, D)`` query embeddings.
    """

    name: ClassVar[str] = "transfer"

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        database: GradWeightDatabase,
        *,
        embed: Callable[[Any], Tensor] | None = None,
        signed: bool = False,
        normalize: Normalize = "max",
    ) -> None:
        super().__init__(model, target_layer, normalize=normalize)
        if not isinstance(database, GradWeightDatabase):
            raise TypeError(f"database must be a GradWeightDatabase, got {type(database).__name__}")
        if signed and database.signed is None:
            raise ValueError("signed=True needs a database built with signed weights")
        self.database = database
        self.embed = embed
        self.signed = signed

    def _compute(self, x: Tensor, target: Target) -> LowRes:
        activations, output = self.forward_activations(x)  # (B, C, h, w)
        if activations.shape[1] != self.database.n_channels:
            raise ValueError(
                f"target_layer has {activations.shape[1]} channels but the database was built "
                f"for {self.database.n_channels}"
            )
        if isinstance(target, Tensor) and target.is_floating_point():
            query = target
        elif target is None:
            query = self.embed(output) if self.embed is not None else output
        else:
            raise TypeError("target must be None or (B, D) query embeddings")
        if not isinstance(query, Tensor) or query.ndim != 2 or query.shape[0] != x.shape[0]:
            raise ValueError(
                f"query embeddings must have shape ({x.shape[0]}, D); pass embed= to select "
                "the embedding from the model output"
            )
        found = self.database.query(query)
        if self.signed:
            assert found.signed is not None
            weights = found.signed.to(activations.device, activations.dtype)
        else:
            channels = found.channels.to(activations.device)
            weights = torch.zeros(
                x.shape[0], activations.shape[1], device=activations.device, dtype=activations.dtype
            ).scatter_(1, channels, found.weights.to(activations.device, activations.dtype))
        linear = weighted_sum(activations, weights)
        return LowRes(
            raw=linear.clamp_min(0.0),
            weights=weights,
            linear=linear,
            output=output,
            extras={"neighbour": found.indices, "distance": found.distances},
        )
