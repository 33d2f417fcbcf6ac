"""Gradient channel-weight explainers: Grad-CAM, Grad-CAM++, retrieval Grad-CAM and Grad-CAM-abs.

All of them run one forward and one backward pass per batch (see
:meth:`~houseprice.explain.base.Explainer.forward_backward`) and differ only in the objective,
the channel weights and the rectifier applied to ``sum_k w_k A^k``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from houseprice.explain.base import (
    Explainer,
    LowRes,
    Normalize,
    Target,
    class_indices,
    class_scores,
    top_m_weights,
    weighted_sum,
)
from houseprice.explain.targets import embedding_sum

Rectifier = Literal["relu", "abs"]


def gradcam_weights(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM channel weights, Chen eq. 3: ``alpha_k = 1/Z sum_ij dy/dA^k_ij`` -> ``(B, C)``."""
    del activations  # Grad-CAM weights depend on the gradients only
    return gradients.mean(dim=(2, 3))


def gradcampp_weights(activations: Tensor, gradients: Tensor, eps: float = 0.0) -> Tensor:
    """Grad-CAM++ channel weights (Chattopadhyay et al. 2018, eq. 19 and eq. 9) -> ``(B, C)``.

    With ``g = dY/dA`` and the exponential-output closed form of the higher derivatives,
    ``a^kc_ij = g^2 / (2 g^2 + sum_ab A^k_ab g^3 + eps)`` (0 where the denominator is 0) and
    ``w_k = sum_ij a^kc_ij ReLU(g_ij)``. ``eps = 0`` is the paper's formula; the ``grad-cam``
    package adds ``eps = 1e-6``, which dominates the denominator when ``|g| < ~1e-3``.
    """
    g2 = gradients.pow(2)
    g3 = g2 * gradients
    denominator = 2.0 * g2 + activations.sum(dim=(2, 3), keepdim=True) * g3 + eps
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where(denominator != 0, g2 / safe, torch.zeros_like(g2))
    return (alpha * gradients.clamp_min(0.0)).sum(dim=(2, 3))


def rectify(linear: Tensor, how: Rectifier) -> Tensor:
    """ReLU (Chen eq. 4) or absolute value (Taha eq. 7) of the weighted activation sum."""
    return linear.clamp_min(0.0) if how == "relu" else linear.abs()


def _check_top_m(top_m: int | None) -> int | None:
    if top_m is not None and (isinstance(top_m, bool) or top_m < 1):
        raise ValueError(f"top_m must be >= 1 or None, got {top_m}")
    return top_m


class GradCAM(Explainer):
    """Grad-CAM (Chen eq. 2-4): ``ReLU(sum_k alpha_k A^k)``, ``alpha_k`` = mean gradient.

    Args:
        top_m: keep only the ``top_m`` largest channel weights per image (Chen §3.2 rule, via
            :func:`~houseprice.explain.base.top_m_weights`); ``None`` keeps every channel.

    ``target``: ``None`` explains the arg-max class; class indices (int, sequence or LongTensor
    ``(B,)``, or a :class:`~houseprice.explain.targets.ClassTarget`) explain those classes'
    pre-softmax scores; a callable (e.g. the typed targets of
    :mod:`houseprice.explain.targets`) maps the model output to one scalar per sample.
    """

    name: ClassVar[str] = "gradcam"
    rectifier: ClassVar[Rectifier] = "relu"

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        *,
        top_m: int | None = None,
        normalize: Normalize = "max",
    ) -> None:
        super().__init__(model, target_layer, normalize=normalize)
        self.top_m = _check_top_m(top_m)

    def channel_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        """Channel weights ``(B, C)`` from activations and gradients ``(B, C, h, w)``."""
        return gradcam_weights(activations, gradients)

    def objective(self, target: Target, batch: int) -> Callable[[Any], Tensor]:
        """The per-sample scalar objective for ``target`` (class scores by default)."""
        if callable(target) and not isinstance(target, Tensor):
            return target

        def score(output: Any) -> Tensor:
            if target is None:
                if not isinstance(output, Tensor) or output.ndim != 2:
                    raise ValueError(
                        "target=None explains the arg-max class and needs a (B, n_classes) "
                        "output; pass a callable objective for other outputs"
                    )
                classes = output.detach().argmax(dim=1)
            else:
                classes = class_indices(target, batch, output.device)
            return class_scores(output, classes)

        return score

    def _compute(self, x: Tensor, target: Target) -> LowRes:
        objective = self.objective(target, x.shape[0])
        grad_pass = self.forward_backward(
            x, lambda out: self._per_sample(objective(out), x.shape[0], "the objective")
        )
        weights = self.channel_weights(grad_pass.activations, grad_pass.gradients)
        weights = top_m_weights(weights, self.top_m)  # Chen §3.2: top-M channels
        linear = weighted_sum(grad_pass.activations, weights)
        return LowRes(
            raw=rectify(linear, self.rectifier),
            weights=weights,
            linear=linear,
            output=grad_pass.output,
            extras={"objective": grad_pass.values},
        )


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++ (Chattopadhyay et al. eq. 19) for class scores or any scalar target.

    ``eps`` is added to the eq. 19 denominator (see :func:`gradcampp_weights`); 0 by default.
    """

    name: ClassVar[str] = "gradcampp"

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        *,
        eps: float = 0.0,
        top_m: int | None = None,
        normalize: Normalize = "max",
    ) -> None:
        super().__init__(model, target_layer, top_m=top_m, normalize=normalize)
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.eps = eps

    def channel_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        return gradcampp_weights(activations, gradients, self.eps)


class RetrievalGradCAM(GradCAM):
    """Vanilla Grad-CAM for retrieval (Taha eq. 6): gradient of the output embedding.

    ``target=None`` uses :func:`~houseprice.explain.targets.embedding_sum`; a callable objective
    (e.g. :class:`~houseprice.explain.targets.SimilarityTarget`) may be given instead.
    The model output should be the raw embedding (before L2 normalisation), as in Taha §4.2.
    """

    name: ClassVar[str] = "gradcam_vanilla"

    def objective(self, target: Target, batch: int) -> Callable[[Any], Tensor]:
        if target is None:
            return embedding_sum
        if callable(target) and not isinstance(target, Tensor):
            return target
        raise TypeError(
            f"{type(self).__name__} explains the embedding itself: target must be None or a "
            "callable objective (e.g. EmbeddingTarget, SimilarityTarget)"
        )


class GradCAMAbs(RetrievalGradCAM):
    """Grad-CAM-abs (Taha eq. 7): ``abs(sum_k alpha_k^y A^k)`` instead of the ReLU."""

    name: ClassVar[str] = "gradcam_abs"
    rectifier: ClassVar[Rectifier] = "abs"
