"""Sampled-loss grad-weights (Chen §3.2): average grad-weights over sampled partners, keep top-M.

For an anchor image, ``N_s`` partners are sampled from a reference set of precomputed (detached)
embeddings/features; the per-partner losses give per-partner grad-weights ``alpha^s`` (Chen eq.
5-6) which are averaged, ``alpha_k = 1/N_s sum_s alpha_k^s``, and only the ``M`` channels with
the largest weights are kept. Two samplers are provided:

* :class:`TripletSampler` - triplet loss (Chen eq. 1) for embedding networks, only *valid*
  triplets (non-zero hinge loss) are kept;
* :class:`RankPairSampler` - rank-siamese pair loss ``CE(head(f_i - f_j), [s_i > s_j])``
  (Chen §4.2) for siamese networks whose explained model is the branch ``f``.

A sampler is bound to a batch of anchors (:meth:`bind`) and returns a plain callable
``objective(output) -> (losses (B, S), valid (B, S))``; anything with ``n_samples`` and such a
``bind`` works with :class:`SampledGradCAM`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from houseprice.explain.base import (
    Explainer,
    LowRes,
    Normalize,
    Target,
    top_m_weights,
    weighted_sum,
)
from houseprice.explain.gradcam import gradcam_weights, gradcampp_weights

PairObjective = Callable[[Tensor], tuple[Tensor, Tensor]]


class PartnerSampler(Protocol):
    """Samples ``n_samples`` partners per anchor and builds the per-batch pair objective."""

    n_samples: int

    def bind(self, anchors: Tensor) -> PairObjective:
        """Objective for a batch of anchors given their labels/scores ``(B,)``.

        The objective takes the model output of the anchors, shaped ``(B, D)``, ``(B, 1, D)``
        or ``(B, S, D)`` (one copy per partner), and returns ``losses (B, S)`` and a boolean
        ``valid (B, S)`` mask; partner ``s`` is the same for every copy layout.
        """
        ...


def _anchor_view(output: Any, batch: int, dim: int) -> Tensor:
    if not isinstance(output, Tensor):
        raise TypeError(f"sampled objectives need a tensor output, got {type(output).__name__}")
    if output.ndim == 2:
        output = output[:, None]  # (B, 1, D)
    if output.ndim != 3 or output.shape[0] != batch or output.shape[2] != dim:
        raise ValueError(
            f"model output must have shape ({batch}, {dim}) to match the reference set, "
            f"got {tuple(output.shape)}"
        )
    return output


def _anchor_values(anchors: Any, allow_float: bool, what: str) -> Tensor:
    values = torch.as_tensor(anchors)
    if values.ndim != 1 or values.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty 1-d tensor (one per anchor image)")
    if not allow_float and values.is_floating_point():
        raise TypeError(f"{what} must be integer class labels, got dtype {values.dtype}")
    return values


def _sample_with_replacement(mask: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` uniform draws per row among the True entries of ``mask (B, N)`` -> ``(B, k)``."""
    weights = mask.float()
    weights[~mask.any(dim=1)] = 1.0  # rows without candidates: any index, flagged by the caller
    return torch.multinomial(weights, k, replacement=True, generator=generator)


def _sample_without_replacement(
    mask: Tensor, k: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``k`` distinct uniform draws per row among True entries -> ``(index (B, k), valid (B, k))``.

    Rows with fewer than ``k`` candidates are padded with invalid entries.
    """
    keys = torch.rand(mask.shape, generator=generator, device=mask.device)
    keys = torch.where(mask, keys, -1.0)
    take = min(k, mask.shape[1])
    values, index = keys.topk(take, dim=1)
    valid = values >= 0
    if take < k:
        pad = k - take
        index = F.pad(index, (0, pad))
        valid = F.pad(valid, (0, pad), value=False)
    return index, valid


@dataclass
class TripletSampler:
    """Triplet-loss partners for embedding networks (Chen eq. 1, 5, 6).

    ``L = [D(f_a, f_p) - D(f_a, f_n) + margin]_+`` with ``D`` the squared Euclidean distance of
    L2-normalised embeddings. For each anchor, ``n_candidates`` (positive, negative) pairs are
    drawn uniformly (positives share the anchor's label, negatives do not; reference entries
    within ``exclude_radius`` of the anchor are the anchor itself and are skipped) and the first
    ``n_samples`` with non-zero loss are kept, i.e. a uniform draw of valid triplets. Anchors with
    fewer valid triplets use those they have (``n_valid`` in the explanation's extras).
    """

    embeddings: Tensor  # (N, D) reference embeddings, detached
    labels: Tensor  # (N,) integer labels
    n_samples: int = 50
    margin: float = 0.2
    normalize: bool = True
    n_candidates: int = 1000
    exclude_radius: float = 1e-3
    seed: int = 0
    _reference: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] == 0:
            raise ValueError(
                f"embeddings must have shape (N, D) with N > 0, got {tuple(self.embeddings.shape)}"
            )
        self.labels = torch.as_tensor(self.labels, device=self.embeddings.device)
        if self.labels.shape != (self.embeddings.shape[0],) or self.labels.is_floating_point():
            raise ValueError(
                f"labels must be integers of shape ({self.embeddings.shape[0]},), "
                f"got {tuple(self.labels.shape)} {self.labels.dtype}"
            )
        if self.n_samples < 1 or self.n_candidates < self.n_samples:
            raise ValueError("need 1 <= n_samples <= n_candidates")
        reference = self.embeddings.detach().float()
        self._reference = F.normalize(reference, dim=1) if self.normalize else reference

    def bind(self, anchors: Tensor) -> PairObjective:
        labels = _anchor_values(anchors, False, "triplet anchors (labels)")
        batch, dim = labels.shape[0], self._reference.shape[1]

        def objective(output: Tensor) -> tuple[Tensor, Tensor]:
            a = _anchor_view(output, batch, dim)  # (B, S', D)
            if self.normalize:
                a = F.normalize(a, dim=-1)
            reference = self._reference.to(a.device, a.dtype)
            ref_labels = self.labels.to(a.device)
            anchor0 = a[:, 0].detach()  # every copy holds the same values
            dist = torch.cdist(anchor0, reference).pow(2)  # (B, N), D of Chen eq. 1
            same = labels.to(a.device)[:, None] == ref_labels[None]
            itself = dist <= self.exclude_radius**2
            positives, negatives = same & ~itself, ~same & ~itself
            generator = torch.Generator(device=a.device).manual_seed(self.seed)
            p = _sample_with_replacement(positives, self.n_candidates, generator)  # (B, K)
            n = _sample_with_replacement(negatives, self.n_candidates, generator)
            possible = positives.any(dim=1) & negatives.any(dim=1)
            candidate_loss = dist.gather(1, p) - dist.gather(1, n) + self.margin
            valid = (candidate_loss > 0) & possible[:, None]  # valid triplet: non-zero loss
            first = torch.argsort((~valid).to(torch.uint8), dim=1, stable=True)[:, : self.n_samples]
            p, n, valid = p.gather(1, first), n.gather(1, first), valid.gather(1, first)
            d_ap = (a - reference[p]).pow(2).sum(dim=-1)  # (B, S)
            d_an = (a - reference[n]).pow(2).sum(dim=-1)
            losses = (d_ap - d_an + self.margin).clamp_min(0.0)  # Chen eq. 1
            return losses * valid, valid

        return objective


@dataclass
class RankPairSampler:
    """Rank-siamese pair loss partners (Chen §4.2; Burges et al. RankNet-style pairs).

    The explained model is the siamese branch ``f: x -> (B, D)``. For anchor ``i`` and a partner
    ``j`` with precomputed features ``f_j`` and score ``s_j`` (e.g. price),
    ``loss_ij = CE(pair_head(f_i - f_j), y_ij)`` with ``y_ij = 1[s_i > s_j]``. ``n_samples``
    distinct partners are drawn uniformly per anchor among reference entries with a different
    score and features farther than ``exclude_radius`` from the anchor's (the anchor itself).
    """

    pair_head: Callable[[Tensor], Tensor]  # (..., D) -> (..., 2) logits, e.g. nn.Linear(D, 2)
    features: Tensor  # (N, D) partner features, detached
    scores: Tensor  # (N,) partner scores (e.g. prices)
    n_samples: int = 50
    exclude_radius: float = 1e-6
    seed: int = 0

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.features.shape[0] == 0:
            raise ValueError(
                f"features must have shape (N, D) with N > 0, got {tuple(self.features.shape)}"
            )
        self.features = self.features.detach().float()
        self.scores = torch.as_tensor(self.scores, device=self.features.device).float()
        if self.scores.shape != (self.features.shape[0],):
            raise ValueError(
                f"scores must have shape ({self.features.shape[0]},), "
                f"got {tuple(self.scores.shape)}"
            )
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {self.n_samples}")

    def bind(self, anchors: Tensor) -> PairObjective:
        anchor_scores = _anchor_values(anchors, True, "rank-pair anchors (scores)").float()
        batch, dim = anchor_scores.shape[0], self.features.shape[1]

        def objective(output: Tensor) -> tuple[Tensor, Tensor]:
            f = _anchor_view(output, batch, dim)  # (B, S', D)
            features = self.features.to(f.device, f.dtype)
            scores = self.scores.to(f.device)
            mine = anchor_scores.to(f.device)
            far = torch.cdist(f[:, 0].detach(), features) > self.exclude_radius
            candidates = far & (scores[None] != mine[:, None])  # (B, N)
            generator = torch.Generator(device=f.device).manual_seed(self.seed)
            j, valid = _sample_without_replacement(candidates, self.n_samples, generator)
            logits = self.pair_head(f - features[j])  # (B, S, 2): head(f_i - f_j)
            if logits.shape[:2] != j.shape or logits.ndim != 3:
                raise ValueError(
                    f"pair_head must map (B, S, D) to (B, S, n_classes), got {tuple(logits.shape)}"
                )
            y = (mine[:, None] > scores[j]).long()  # y_ij = 1[s_i > s_j]
            ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            return ce.view_as(y) * valid, valid

        return objective

    def bind_margins(self, anchors: Tensor) -> PairObjective:
        """Like :meth:`bind`, but the objective returns the pair-logit *margins*
        ``head(f_i - f_j)[1] - head(f_i - f_j)[0]`` (the log-odds that anchor ``i`` ranks above
        partner ``j``) instead of the loss: a target whose increase means "ranked higher",
        whatever the anchor's own score (the loss gradient flips sign with ``y_ij``)."""
        anchor_scores = _anchor_values(anchors, True, "rank-pair anchors (scores)").float()
        batch, dim = anchor_scores.shape[0], self.features.shape[1]

        def objective(output: Tensor) -> tuple[Tensor, Tensor]:
            f = _anchor_view(output, batch, dim)  # (B, S', D)
            features = self.features.to(f.device, f.dtype)
            far = torch.cdist(f[:, 0].detach(), features) > self.exclude_radius
            scores = self.scores.to(f.device)
            candidates = far & (scores[None] != anchor_scores.to(f.device)[:, None])
            generator = torch.Generator(device=f.device).manual_seed(self.seed)
            j, valid = _sample_without_replacement(candidates, self.n_samples, generator)
            logits = self.pair_head(f - features[j])  # (B, S, 2)
            if logits.ndim != 3 or logits.shape[-1] != 2:
                raise ValueError("signed rank-pair margins need a pair head with 2 logits")
            return (logits[..., 1] - logits[..., 0]) * valid, valid

        return objective


class SampledGradCAM(Explainer):
    """Grad-weights averaged over sampled partner losses, top-M channels (Chen §3.2).

    Args:
        sampler: a :class:`PartnerSampler` (:class:`TripletSampler`, :class:`RankPairSampler`).
        base: ``"gradcam"`` (Chen eq. 6) or ``"gradcampp"`` (Grad-CAM++ eq. 19 per partner).
        top_m: channels kept, by largest weight value (``None`` keeps all channels).
        eps: Grad-CAM++ denominator stabiliser (see ``gradcampp_weights``).
        negate: use the gradients of ``-L`` (evidence that *lowers* the loss, i.e. supports the
            model's pairing or ranking) instead of ``dL/dA`` as written in Chen eq. 5-6.

    ``target``: per-anchor labels (triplets) or scores (rank pairs), shape ``(B,)``.

    With the Grad-CAM base the per-partner weights are linear in the gradient, so their average
    over valid partners is the gradient of the mean valid loss: one forward and one backward
    pass per batch. Grad-CAM++ weights are non-linear in the gradient, so the explained layer's
    output is repeated once per partner (one forward of the tail on ``B * N_s`` rows and one
    backward) and the per-partner weights are averaged.
    """

    name: ClassVar[str] = "sampled_gradcam"

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        sampler: PartnerSampler,
        *,
        base: Literal["gradcam", "gradcampp"] = "gradcam",
        top_m: int | None = 50,
        eps: float = 0.0,
        negate: bool = False,
        normalize: Normalize = "max",
    ) -> None:
        super().__init__(model, target_layer, normalize=normalize)
        if base not in ("gradcam", "gradcampp"):
            raise ValueError(f"base must be 'gradcam' or 'gradcampp', got {base!r}")
        if not hasattr(sampler, "bind") or not hasattr(sampler, "n_samples"):
            raise TypeError("sampler must provide n_samples and bind(anchors)")
        if top_m is not None and top_m < 1:
            raise ValueError(f"top_m must be >= 1 or None, got {top_m}")
        self.sampler = sampler
        self.base = base
        self.top_m = top_m
        self.eps = eps
        self.negate = negate

    def _compute(self, x: Tensor, target: Target) -> LowRes:
        if target is None or (callable(target) and not isinstance(target, Tensor)):
            raise ValueError(
                f"{type(self).__name__} needs per-anchor labels or scores of shape "
                f"({x.shape[0]},) as target"
            )
        anchors = torch.as_tensor(target)
        if anchors.shape != (x.shape[0],):
            raise ValueError(
                f"target must hold one label/score per image, shape ({x.shape[0]},), "
                f"got {tuple(anchors.shape)}"
            )
        objective = self.sampler.bind(anchors)
        batch, n_samples = x.shape[0], self.sampler.n_samples
        seen: dict[str, Tensor] = {}

        def pair_losses(output: Any) -> Tensor:
            losses, valid = objective(output)
            if losses.shape != (batch, n_samples):
                raise ValueError(
                    f"pair objective must return ({batch}, {n_samples}) losses, "
                    f"got {tuple(losses.shape)}"
                )
            seen["valid"], seen["losses"] = valid, losses.detach()
            if self.negate:
                losses = -losses
            if self.base == "gradcam":
                # Chen §3.2: mean over valid partners; eq. 6 is linear in dL/dA, so the weights
                # of the mean loss are the mean of the per-partner weights alpha^s.
                return (losses * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1)
            return losses * valid

        if self.base == "gradcam":
            grad_pass = self.forward_backward(x, pair_losses)
            activations, output = grad_pass.activations, grad_pass.output
            weights = gradcam_weights(activations, grad_pass.gradients)
        else:
            grad_pass = self.forward_backward(x, pair_losses, n_copies=n_samples)
            per_partner = gradcampp_weights(grad_pass.activations, grad_pass.gradients, self.eps)
            per_partner = per_partner.view(batch, n_samples, -1)  # (B, S, C) alpha^s
            valid = seen["valid"].to(per_partner.dtype)
            counts = valid.sum(dim=1, keepdim=True).clamp_min(1)  # (B, 1)
            weights = (per_partner * valid[..., None]).sum(dim=1) / counts  # mean over valid
            activations = grad_pass.activations[::n_samples]  # copies are identical
            output = grad_pass.output[:, 0]
        weights = top_m_weights(weights, self.top_m)
        linear = weighted_sum(activations, weights)
        n_valid = seen["valid"].sum(dim=1)
        mean_loss = seen["losses"].sum(dim=1) / n_valid.clamp_min(1)
        return LowRes(
            raw=linear.clamp_min(0.0),  # Chen eq. 4
            weights=weights,
            linear=linear,
            output=output,
            extras={"n_valid": n_valid, "loss": mean_loss},
        )


class SampledGradCAMPlusPlus(SampledGradCAM):
    """:class:`SampledGradCAM` with Grad-CAM++ as the base method."""

    name: ClassVar[str] = "sampled_gradcampp"

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        sampler: PartnerSampler,
        *,
        top_m: int | None = 50,
        eps: float = 0.0,
        negate: bool = False,
        normalize: Normalize = "max",
    ) -> None:
        super().__init__(
            model,
            target_layer,
            sampler,
            base="gradcampp",
            top_m=top_m,
            eps=eps,
            negate=negate,
            normalize=normalize,
        )
