"""EmbeddingCAM (Bachhawat): Grad-CAM for embedding networks with a proxy-vector objective.

The objective is ``L_c = y . p_c`` (eq. 9) with ``y`` the *unnormalised* embedding and ``p_c``
a proxy: the image's own normalised embedding (single-point proxy) or the normalised mean of a
class's normalised embeddings (eq. 11-12). Channel weights are Grad-CAM's (eq. 10 with eq. 4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from houseprice.explain.base import Normalize, Target, class_indices
from houseprice.explain.gradcam import GradCAM
from houseprice.explain.targets import ClassTarget, EmbeddingTarget


def class_proxies(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised mean proxies (Bachhawat eq. 11-12) per class.

    Args:
        embeddings: ``(N, D)`` embeddings (normalised here, eq. 12).
        labels: ``(N,)`` integer class labels.

    Returns:
        ``(classes (K,), proxies (K, D))``: sorted unique labels and their unit-norm proxies.
    """
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {tuple(embeddings.shape)}")
    labels = torch.as_tensor(labels, device=embeddings.device)
    if labels.shape != (embeddings.shape[0],) or labels.is_floating_point():
        raise ValueError(
            f"labels must be an integer tensor of shape ({embeddings.shape[0]},), "
            f"got {tuple(labels.shape)} {labels.dtype}"
        )
    classes, inverse = torch.unique(labels, return_inverse=True)
    unit = F.normalize(embeddings.detach().float(), dim=1)  # eq. 12
    sums = torch.zeros(len(classes), unit.shape[1], device=unit.device).index_add_(0, inverse, unit)
    return classes, F.normalize(sums, dim=1)  # eq. 11: the 1/n factor vanishes in the norm


class EmbeddingCAM(GradCAM):
    """EmbeddingCAM (Bachhawat eq. 9-10): Grad-CAM weights of ``y . p`` for a proxy ``p``.

    Args:
        proxies: optional ``(K, D)`` class proxies (e.g. from :func:`class_proxies`) indexed by
            class id ``0..K-1``, or a pair ``(classes, proxies)`` as returned by it.
        top_m: keep only the ``top_m`` largest channel weights (Chen §3.2 rule); ``None``
            keeps every channel (Bachhawat).

    ``target``: ``None`` uses the single-point proxy (the image's own normalised embedding,
    detached); integer labels ``(B,)`` (or a :class:`~houseprice.explain.targets.ClassTarget`)
    pick rows of ``proxies``; a float tensor ``(B, D)`` (or an
    :class:`~houseprice.explain.targets.EmbeddingTarget`) gives the proxies directly (e.g.
    one-hot vectors, which reduce EmbeddingCAM to Grad-CAM).
    """

    name: ClassVar[str] = "embeddingcam"

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        *,
        proxies: Tensor | tuple[Tensor, Tensor] | None = None,
        top_m: int | None = None,
        normalize: Normalize = "max",
    ) -> None:
        super().__init__(model, target_layer, top_m=top_m, normalize=normalize)
        self.classes: Tensor | None = None
        if isinstance(proxies, tuple):
            self.classes, proxies = proxies
        if proxies is not None and proxies.ndim != 2:
            raise ValueError(f"proxies must have shape (K, D), got {tuple(proxies.shape)}")
        self.proxies = None if proxies is None else proxies.detach()

    def _proxy_rows(self, labels: Tensor) -> Tensor:
        if self.proxies is None:
            raise ValueError(
                "integer targets select class proxies, but this EmbeddingCAM has none; pass "
                "proxies=class_proxies(embeddings, labels) or give (B, D) proxy vectors"
            )
        if self.classes is None:
            rows = labels
        else:
            pos = torch.searchsorted(self.classes.to(labels.device), labels)
            pos = pos.clamp_max(len(self.classes) - 1)
            missing = self.classes.to(labels.device)[pos] != labels
            if bool(missing.any()):
                raise ValueError(f"no proxy for labels {labels[missing].unique().tolist()}")
            rows = pos
        if int(rows.min()) < 0 or int(rows.max()) >= self.proxies.shape[0]:
            raise ValueError(f"label out of range for {self.proxies.shape[0]} proxies")
        return self.proxies[rows.to(self.proxies.device)]

    def objective(self, target: Target, batch: int) -> Callable[[Any], Tensor]:
        if isinstance(target, EmbeddingTarget):
            return target  # y . p with the given proxy vectors (eq. 9)
        if isinstance(target, ClassTarget):
            target = target.index  # labels select class proxies
        if callable(target) and not isinstance(target, Tensor):
            raise TypeError(
                "EmbeddingCAM targets are proxies or labels (ClassTarget, EmbeddingTarget), "
                "not other callables"
            )

        def proxy_score(output: Any) -> Tensor:
            if not isinstance(output, Tensor) or output.ndim != 2:
                raise ValueError("EmbeddingCAM needs a (B, D) embedding output")
            if target is None:
                proxy = F.normalize(output.detach(), dim=1)  # single-point proxy, eq. 12
            elif isinstance(target, Tensor) and target.is_floating_point():
                proxy = target.to(output.device, output.dtype)
                if proxy.shape != output.shape:
                    raise ValueError(
                        f"proxy vectors must have shape {tuple(output.shape)}, "
                        f"got {tuple(proxy.shape)}"
                    )
            else:
                proxy = self._proxy_rows(class_indices(target, batch, output.device))
                proxy = proxy.to(output.device, output.dtype)
                if proxy.shape[1] != output.shape[1]:
                    raise ValueError(
                        f"proxies have dimension {proxy.shape[1]}, the embedding has "
                        f"{output.shape[1]}"
                    )
            return (output * proxy).sum(dim=1)  # eq. 9: L_c = y . p_c

        return proxy_score
