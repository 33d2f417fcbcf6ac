"""Registry of explainers by stable method name, for runners that loop over methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from houseprice.explain.base import Explainer
from houseprice.explain.embeddingcam import EmbeddingCAM
from houseprice.explain.gradcam import GradCAM, GradCAMAbs, GradCAMPlusPlus, RetrievalGradCAM
from houseprice.explain.l2caf import L2CAF
from houseprice.explain.sampled import SampledGradCAM, SampledGradCAMPlusPlus
from houseprice.explain.transfer import WeightTransferCAM
from houseprice.explain.uniform import UniformCAM


def _embeddingcam_mean(model: nn.Module, target_layer: nn.Module, **kw: Any) -> EmbeddingCAM:
    if kw.get("proxies") is None:
        raise ValueError(
            "embeddingcam_mean needs proxies= (e.g. class_proxies(embeddings, labels)); "
            "explain with target = class labels"
        )
    return EmbeddingCAM(model, target_layer, **kw)


_FACTORIES: dict[str, Callable[..., Explainer]] = {
    "gradcam": GradCAM,
    "gradcampp": GradCAMPlusPlus,
    "gradcam_vanilla": RetrievalGradCAM,
    "gradcam_abs": GradCAMAbs,
    "sampled_gradcam": SampledGradCAM,
    "sampled_gradcampp": SampledGradCAMPlusPlus,
    "embeddingcam_point": EmbeddingCAM,
    "embeddingcam_mean": _embeddingcam_mean,
    "l2caf": L2CAF,
    "transfer": WeightTransferCAM,
    "uniform": UniformCAM,
}

#: Stable method names accepted by :func:`make_explainer`.
METHODS: tuple[str, ...] = tuple(_FACTORIES)


def make_explainer(
    name: str, model: nn.Module, target_layer: nn.Module | None, **kwargs: Any
) -> Explainer:
    """Build the explainer called ``name`` (one of :data:`METHODS`) with method keywords.

    Required keywords: ``sampler=`` for the ``sampled_*`` methods, ``proxies=`` for
    ``embeddingcam_mean``, ``database=`` for ``transfer``.
    """
    if name not in _FACTORIES:
        raise ValueError(f"unknown explainer {name!r}; choose one of {', '.join(METHODS)}")
    try:
        return _FACTORIES[name](model, target_layer, **kwargs)
    except TypeError as err:
        raise TypeError(f"make_explainer({name!r}): {err}") from err
