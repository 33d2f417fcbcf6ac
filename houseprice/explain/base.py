"""Explainer base class: the hook lifecycle, the batched forward/backward pass, map post-processing.

Every explainer in :mod:`houseprice.explain` derives from :class:`Explainer`. The base class owns

* the forward hook on the explained layer (:meth:`Explainer.capture`, a context manager that
  always removes the hook, restores the model's train/eval flags and re-raises errors),
* one batched forward and one backward pass to the explained layer
  (:meth:`Explainer.forward_backward`),
* the post-processing of a low-resolution map into ``(B, H, W)`` maps in ``[0, 1]`` at input
  resolution (:meth:`Explainer.postprocess`).

Subclasses differ only in how they compute channel weights or the low-resolution map
(:meth:`Explainer._compute`). The package is generic: it explains any PyTorch CNN and imports
nothing else from ``houseprice``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Normalize = Literal["max", "minmax"]
# A target is: None (method default), class indices (int, sequence or LongTensor of shape (B,)),
# per-sample vectors (FloatTensor) where a method documents it, or a callable objective mapping
# the model output to one scalar per sample, shape (B,) - e.g. the typed targets of
# houseprice.explain.targets (ClassTarget, EmbeddingTarget, SimilarityTarget, ...).
Target = None | int | Sequence[int] | Tensor | Callable[[Any], Tensor]


@dataclass
class LowRes:
    """What a method computes (:meth:`Explainer._compute`) before post-processing."""

    raw: Tensor  # (B, h, w) low-resolution map after rectification (ReLU/abs), unnormalised
    weights: Tensor | None = None  # (B, C) channel weights (zeros outside the kept channels)
    linear: Tensor | None = None  # (B, h, w) sum_k w_k A^k before rectification
    output: Any = None  # detached model output of the explained forward pass
    extras: dict[str, Tensor] = field(default_factory=dict)  # method-specific diagnostics


@dataclass
class Explanation(LowRes):
    """Result of :meth:`Explainer.explain` for a batch of ``B`` images of size ``H x W``."""

    maps: Tensor = field(kw_only=True)  # (B, H, W) float in [0, 1], bilinear at input resolution


@dataclass
class GradPass:
    """Activations and gradients of the explained layer from one forward + one backward pass."""

    activations: Tensor  # (B', C, h, w), B' = B * n_copies
    gradients: Tensor  # (B', C, h, w) d(sum of objective values) / d activations
    output: Any  # model output (detached), batch dimension unflattened to (B, n_copies) if > 1
    values: Tensor  # objective values (detached) as returned by the objective


@dataclass
class Capture:
    """What :meth:`Explainer.capture` saw during the ``with`` block."""

    activations: Tensor | None = None  # the layer output (detached) or what `replace` made
    calls: int = 0  # how often the hook fired


def _detach(output: Any) -> Any:
    if isinstance(output, Tensor):
        return output.detach()
    if isinstance(output, (tuple, list)):
        return type(output)(_detach(o) for o in output)
    return output


def _unflatten(output: Any, batch: int, copies: int) -> Any:
    if isinstance(output, Tensor):
        return output.unflatten(0, (batch, copies))
    if isinstance(output, (tuple, list)):
        return type(output)(_unflatten(o, batch, copies) for o in output)
    raise TypeError(f"model output of type {type(output).__name__} cannot be expanded per sample")


def normalize_maps(maps: Tensor, mode: Normalize = "max") -> Tensor:
    """Scale each map of a ``(B, H, W)`` batch into ``[0, 1]``.

    ``"max"`` divides by the per-map maximum (keeps the heatmap *mass* proportions, so the
    heatmap-ratio metric is unchanged; an all-zero map stays zero). ``"minmax"`` maps the
    per-map minimum to 0 and the maximum to 1 (the ``grad-cam`` package's convention; a
    constant map becomes zero).
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (B, H, W), got {tuple(maps.shape)}")
    flat = maps.flatten(1)
    if mode == "max":
        top = flat.amax(dim=1).clamp_min(0.0)[:, None, None]
        scaled = torch.where(top > 0, maps / torch.where(top > 0, top, 1.0), 0.0)
    elif mode == "minmax":
        low = flat.amin(dim=1)[:, None, None]
        span = flat.amax(dim=1)[:, None, None] - low
        scaled = torch.where(span > 0, (maps - low) / torch.where(span > 0, span, 1.0), 0.0)
    else:
        raise ValueError(f"normalize must be 'max' or 'minmax', got {mode!r}")
    return scaled.clamp(0.0, 1.0)


def upsample(raw: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (half-pixel centres, as OpenCV's INTER_LINEAR) resize of ``(B, h, w)`` maps."""
    return F.interpolate(raw[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def signed_maps(linear: Tensor, size: tuple[int, int]) -> Tensor:
    """Signed ``(B, h, w)`` maps (``sum_k w_k A^k`` without the ReLU) -> ``(B, H, W)`` in
    ``[-1, 1]``: bilinear upsampling, then division by the per-map largest magnitude (the sign
    and the positive/negative mass proportions are kept; an all-zero map stays zero)."""
    up = upsample(linear.float(), size)
    top = up.flatten(1).abs().amax(dim=1)[:, None, None]
    return torch.where(top > 0, up / torch.where(top > 0, top, 1.0), 0.0).clamp(-1.0, 1.0)


def class_indices(target: Any, batch: int, device: torch.device) -> Tensor:
    """Turn an int / sequence / integer tensor into a ``(B,)`` LongTensor of class indices."""
    if isinstance(target, bool):
        raise TypeError("class target must be an int, a sequence of ints or an integer tensor")
    if isinstance(target, int):
        return torch.full((batch,), target, dtype=torch.long, device=device)
    idx = torch.as_tensor(target, device=device)
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise TypeError(f"class target must hold integers, got dtype {idx.dtype}")
    if idx.ndim == 0:  # one class for the whole batch (e.g. a numpy integer)
        idx = idx.expand(batch)
    if idx.ndim != 1 or idx.shape[0] != batch:
        raise ValueError(
            f"class target must have shape ({batch},) (one class per image), got {tuple(idx.shape)}"
        )
    return idx.long()


def class_scores(output: Any, classes: Tensor) -> Tensor:
    """Pre-softmax score of the chosen class per sample (Chen eq. 2: y^c)."""
    if not isinstance(output, Tensor) or output.ndim != 2:
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(
            f"a class target needs a model output of shape (B, n_classes), got {shape}; "
            "pass a callable objective for other outputs"
        )
    if int(classes.max()) >= output.shape[1] or int(classes.min()) < 0:
        raise ValueError(
            f"class index out of range: got {classes.tolist()}, model has {output.shape[1]} outputs"
        )
    return output.gather(1, classes[:, None])[:, 0]


def top_m_weights(weights: Tensor, m: int | None) -> Tensor:
    """Keep the ``m`` largest channel weights per row (by value, Chen §3.2) and zero the rest."""
    if m is None or m >= weights.shape[1]:
        return weights
    if m < 1:
        raise ValueError(f"top_m must be >= 1 or None, got {m}")
    values, idx = weights.topk(m, dim=1)
    return torch.zeros_like(weights).scatter(1, idx, values)


def weighted_sum(activations: Tensor, weights: Tensor) -> Tensor:
    """``sum_k w_k A^k`` (Chen eq. 4 before the ReLU): ``(B, C, h, w), (B, C) -> (B, h, w)``."""
    return torch.einsum("bchw,bc->bhw", activations, weights)


class Explainer(ABC):
    """Base class of all explainers.

    Args:
        model: the network to explain; put in eval mode during each explanation (the previous
            per-module train/eval flags are restored afterwards).
        target_layer: the module whose ``(B, C, h, w)`` output is explained; it must run exactly
            once per forward pass of ``model``.
        normalize: how maps are scaled into ``[0, 1]`` (see :func:`normalize_maps`).
    """

    name: ClassVar[str] = "explainer"

    def __init__(
        self, model: nn.Module, target_layer: nn.Module | None, *, normalize: Normalize = "max"
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if target_layer is not None:
            if not isinstance(target_layer, nn.Module):
                raise TypeError(
                    f"target_layer must be a torch.nn.Module, got {type(target_layer).__name__}"
                )
            if not any(m is target_layer for m in model.modules()):
                raise ValueError("target_layer is not a submodule of model")
        if normalize not in ("max", "minmax"):
            raise ValueError(f"normalize must be 'max' or 'minmax', got {normalize!r}")
        self.model = model
        self.target_layer = target_layer
        self.normalize: Normalize = normalize

    # ------------------------------------------------------------------ public API
    def explain(self, x: Tensor, target: Target = None) -> Explanation:
        """Explain a batch ``x`` of shape ``(B, C, H, W)``; see each method for ``target``."""
        if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a float tensor of shape (B, C, H, W), got {got}")
        if x.shape[0] == 0:
            raise ValueError("x is an empty batch")
        parts = self._compute(x, target)
        maps = self.postprocess(parts.raw, (x.shape[-2], x.shape[-1]))
        return Explanation(**vars(parts), maps=maps)

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        """Shortcut for ``explain(x, target).maps``: ``(B, H, W)`` maps in ``[0, 1]``."""
        return self.explain(x, target).maps

    def postprocess(self, raw: Tensor, size: tuple[int, int]) -> Tensor:
        """``(B, h, w)`` low-resolution maps -> ``(B, H, W)`` bilinear maps in ``[0, 1]``."""
        return normalize_maps(upsample(raw.float(), size), self.normalize)

    @contextmanager
    def capture(
        self, replace: Callable[[Tensor], Tensor] | None = None, *, enable_grad: bool = False
    ) -> Iterator[Capture]:
        """Forward hook on ``target_layer`` for the duration of the ``with`` block.

        The model runs in eval mode under ``torch.no_grad()`` (the trunk before the explained
        layer never needs a graph). When the hook fires it stores the detached layer output; if
        ``enable_grad`` it switches autograd on for the rest of the forward (the tail); if
        ``replace`` is given the layer output is replaced by ``replace(detached_output)`` and
        ``capture.activations`` holds that result. The hook is always removed, the previous
        grad mode and per-module train flags are restored, and errors propagate unchanged.
        """
        if self.target_layer is None:
            raise RuntimeError(f"{type(self).__name__} was built without a target_layer")
        cap = Capture()

        def hook(module: nn.Module, inputs: Any, output: Any) -> Tensor | None:
            cap.calls += 1
            if cap.calls > 1:
                raise RuntimeError(
                    "target_layer ran more than once in one forward pass; explain a layer that "
                    "the model calls exactly once"
                )
            if not isinstance(output, Tensor) or output.ndim != 4:
                got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
                raise TypeError(
                    f"target_layer output must be a (B, C, h, w) tensor, got {got}; "
                    "choose a convolutional layer or block"
                )
            if enable_grad:
                torch.set_grad_enabled(True)  # the enclosing no_grad() restores the mode on exit
            cap.activations = output.detach()
            if replace is None:
                return None
            cap.activations = replace(cap.activations)
            return cap.activations

        flags = {m: m.training for m in self.model.modules()}
        handle = self.target_layer.register_forward_hook(hook)
        try:
            self.model.eval()
            with torch.no_grad():
                yield cap
        finally:
            handle.remove()
            for module, training in flags.items():
                module.training = training

    def forward_activations(self, x: Tensor) -> tuple[Tensor, Any]:
        """One forward pass without autograd: ``(activations (B, C, h, w), model output)``."""
        with self.capture() as cap:
            output = self.model(x)
        return self._checked(cap), _detach(output)

    def forward_backward(
        self, x: Tensor, objective: Callable[[Any], Tensor], *, n_copies: int = 1
    ) -> GradPass:
        """One forward and one backward pass for a whole batch.

        ``objective`` maps the model output to per-sample values; the gradient of their sum with
        respect to the explained layer's output is returned. Samples are independent (eval mode),
        so the gradient of the sum is the per-sample gradient. With ``n_copies > 1`` the layer
        output is repeated ``n_copies`` times per sample (``repeat_interleave``) so that each copy
        gets its own gradient (needed when per-partner gradients enter non-linearly, e.g.
        Grad-CAM++ with sampled losses); the output given to ``objective`` then has its batch
        dimension unflattened to ``(B, n_copies, ...)``.
        """
        if n_copies < 1:
            raise ValueError(f"n_copies must be >= 1, got {n_copies}")
        leaf: dict[str, Tensor] = {}

        def make_leaf(a: Tensor) -> Tensor:
            if n_copies > 1:
                a = a.repeat_interleave(n_copies, dim=0)
            leaf["A"] = a.requires_grad_(True)
            return a.clone()  # downstream in-place ops must not touch the leaf

        with self.capture(make_leaf, enable_grad=True) as cap:
            output = self.model(x)
            self._checked(cap)
            if n_copies > 1:
                output = _unflatten(output, x.shape[0], n_copies)
            values = objective(output)
            if not isinstance(values, Tensor):
                raise TypeError(f"objective must return a tensor, got {type(values).__name__}")
            if not values.requires_grad:
                raise ValueError(
                    "the objective does not depend on target_layer's output (no gradient); "
                    "check that the objective uses the model output"
                )
            (grads,) = torch.autograd.grad(values.sum(), leaf["A"], allow_unused=True)
        if grads is None:
            raise ValueError("the model output does not depend on target_layer's output")
        return GradPass(leaf["A"].detach(), grads, _detach(output), values.detach())

    # ------------------------------------------------------------------ subclass hook
    @abstractmethod
    def _compute(self, x: Tensor, target: Target) -> LowRes:
        """The method itself: low-resolution map (and weights) for a batch."""

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _checked(cap: Capture) -> Tensor:
        if cap.activations is None:
            raise RuntimeError(
                "target_layer did not run during the forward pass; pass a module that is part "
                "of model's forward computation"
            )
        return cap.activations

    @staticmethod
    def _per_sample(values: Tensor, batch: int, what: str) -> Tensor:
        if values.shape != (batch,):
            raise ValueError(
                f"{what} must return one scalar per sample, shape ({batch},), "
                f"got {tuple(values.shape)}"
            )
        return values
