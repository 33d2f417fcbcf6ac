"""Signed rank-pair Grad-CAM: evidence that raises or lowers an image's ranking score.

:class:`SignedPairGradCAM` differentiates the pair-logit margin of a rank-siamese head (Chen
§4.2 pairs, :meth:`RankPairSampler.bind_margins`) instead of the pair loss, keeps every
channel's Grad-CAM weight (Chen eq. 3) and skips the ReLU (Chen eq. 4 without rectification),
so the map keeps its sign.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from houseprice.explain.base import Explainer, LowRes, Normalize, Target, weighted_sum
from houseprice.explain.gradcam import gradcam_weights
from houseprice.explain.sampled import RankPairSampler


class SignedPairGradCAM(Explainer):
    """Signed Grad-CAM of the rank-pair margin: evidence that raises or lowers the ranking.

    Target ``T_i = mean_j [head(f_i - f_j)[1] - head(f_i - f_j)[0]]`` over the valid sampled
    partners (:meth:`RankPairSampler.bind_margins`), whose increase means "``i`` ranks above its
    partners"; weights ``alpha_k = 1/Z sum_ij dT/dA^k_ij`` (Chen eq. 3) over *all* channels and
    the map ``M = sum_k alpha_k A^k`` without the ReLU (``linear``): positive where the image
    raises the ranking score, negative where it lowers it. ``raw`` (and so ``maps``) is the
    positive part; :func:`~houseprice.explain.base.signed_maps` renders ``linear`` in
    ``[-1, 1]``. With a linear pair head the partners cancel out of the gradient (it is that of
    ``u . f_i`` with ``u`` the head's logit difference), so the weights do not depend on the
    sample.

    ``target``: per-anchor scores ``(B,)`` (used to pick partners with a different score).
    """

    name: ClassVar[str] = "signed_pair_gradcam"

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        sampler: RankPairSampler,
        *,
        normalize: Normalize = "max",
    ) -> None:
        super().__init__(model, target_layer, normalize=normalize)
        if not hasattr(sampler, "bind_margins"):
            raise TypeError("sampler must provide bind_margins(anchors) (a RankPairSampler)")
        self.sampler = sampler

    def _compute(self, x: Tensor, target: Target) -> LowRes:
        if not isinstance(target, Tensor) or target.shape != (x.shape[0],):
            raise ValueError(f"{type(self).__name__} needs per-anchor scores of shape (B,)")
        objective = self.sampler.bind_margins(target)
        seen: dict[str, Tensor] = {}

        def mean_margin(output: Any) -> Tensor:
            margins, valid = objective(output)
            seen["valid"] = valid
            return (margins * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1)

        grad_pass = self.forward_backward(x, mean_margin)
        weights = gradcam_weights(grad_pass.activations, grad_pass.gradients)  # Chen eq. 3
        linear = weighted_sum(grad_pass.activations, weights)  # no ReLU: signed
        return LowRes(
            raw=linear.clamp_min(0.0),
            weights=weights,
            linear=linear,
            output=grad_pass.output,
            extras={"n_valid": seen["valid"].sum(dim=1), "margin": grad_pass.values},
        )
