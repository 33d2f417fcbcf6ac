"""L2-CAF (Taha et al.): a unit-L2-norm spatial attention filter optimised per image.

A filter ``f (h, w)`` multiplies the explained layer's output, ``A' = A * f / ||f||_2``, and is
optimised so that the filtered output matches the unfiltered one (class-oblivious, Taha eq. 1)
or favours one class's logit (class-specific, eq. 2). The map is ``|f| / ||f||_2`` resized.

* fast variant (eq. 3): with a ``head`` mapping the layer output to the model output, the layer
  output is computed once and only the head runs per iteration;
* vanilla variant: each iteration runs the whole model with a hook that applies the filter.

Many filters are optimised at once: the batch loss is the sum of independent per-image losses,
and each image stops on its own rule ``|L_i - L_{i-d}| < eps`` (Taha §3.2) or at ``max_iter``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from houseprice.explain.base import Explainer, LowRes, Normalize, Target, class_indices
from houseprice.explain.targets import ClassTarget


@dataclass
class L2CAFConfig:
    """Optimisation settings of :class:`L2CAF` (Taha §3.2 defaults for ``eps`` and ``patience``)."""

    max_iter: int = 1000  # L_max, the iteration cap
    eps: float = 1e-5  # stop when |L_i - L_{i-d}| < eps
    patience: int = 50  # d
    lr: float = 0.1
    optimizer: Literal["adam", "sgd"] = "adam"
    seed: int = 0  # filter initialisation f^1 ~ U[0, 1]^{h x w}

    def __post_init__(self) -> None:
        if self.max_iter < 1 or self.patience < 1:
            raise ValueError("max_iter and patience must be >= 1")
        if self.eps < 0 or self.lr <= 0:
            raise ValueError("eps must be >= 0 and lr > 0")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")


def _unit(f: Tensor) -> Tensor:
    """``f / ||f||_2`` per sample: ``(B, h, w)``."""
    return f / f.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]


class L2CAF(Explainer):
    """L2-norm constrained attention filter (Taha eq. 1-3).

    Args:
        head: callable mapping the explained layer's output ``(B, C, h, w)`` to the model
            output; enables the fast variant (eq. 3).
        fast: ``None`` = fast iff a head is given; ``True`` requires a head; ``False`` forces
            the vanilla variant (whole model per iteration).
        config: optimisation settings, :class:`L2CAFConfig`.
        progress: show a tqdm bar over iterations.

    ``target``: ``None`` is class-oblivious (eq. 1, for embeddings or logits); class indices
    ``(B,)`` (or a :class:`~houseprice.explain.targets.ClassTarget`) are class-specific (eq. 2,
    logits output). The filter is not sign-constrained: with eq. 2 it turns negative where
    features support the *other* classes, and ``|f|`` shows those regions too. Diagnostics in
    ``extras``: ``filter`` (signed ``f / ||f||``, ``(B, h, w)``), ``iterations``, ``converged``
    and final ``loss`` per image.
    """

    name: ClassVar[str] = "l2caf"

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        *,
        head: Callable[[Tensor], Any] | None = None,
        fast: bool | None = None,
        config: L2CAFConfig | None = None,
        normalize: Normalize = "max",
        progress: bool = False,
    ) -> None:
        super().__init__(model, target_layer, normalize=normalize)
        if fast and head is None:
            raise ValueError(
                "the fast L2-CAF needs head= (layer output -> model output); "
                "without it use fast=False"
            )
        self.head = head
        self.fast = head is not None if fast is None else fast
        self.config = config or L2CAFConfig()
        self.progress = progress

    def _filtered_output(self, x: Tensor, activations: Tensor, unit: Tensor) -> Tensor:
        """Model output with the layer output multiplied by ``unit (B', h, w)``."""
        if self.fast and self.head is not None:
            out = self.head(activations * unit[:, None])  # eq. 3: FT(V(x), f)
        else:
            with self.capture(lambda a: a * unit[:, None], enable_grad=True):
                out = self.model(x)  # eq. 1: FT(x, f), the whole network
        if not isinstance(out, Tensor):
            raise TypeError(f"L2-CAF needs a tensor model output, got {type(out).__name__}")
        return out

    @staticmethod
    def _loss(filtered: Tensor, reference: Tensor, classes: Tensor | None) -> Tensor:
        """Per-sample loss ``(B',)``: eq. 1 (class-oblivious) or eq. 2 (class-specific)."""
        if classes is None:
            return (reference - filtered).pow(2).flatten(1).sum(dim=1)  # ||NT - FT||^2
        chosen = filtered.gather(1, classes[:, None])[:, 0]
        return -chosen + (filtered.sum(dim=1) - chosen)  # -FT_c + sum_{i != c} FT_i

    def _compute(self, x: Tensor, target: Target) -> LowRes:
        cfg = self.config
        activations, output = self.forward_activations(x)  # (B, C, h, w), NT(x)
        batch, _, height, width = activations.shape
        classes = None
        if isinstance(target, ClassTarget):
            target = target.index
        if target is not None:
            if callable(target) and not isinstance(target, Tensor):
                raise TypeError("L2-CAF targets are None (class-oblivious) or class indices")
            classes = class_indices(target, batch, activations.device)
        if self.fast and self.head is not None:
            with torch.no_grad():
                reference = self.head(activations)  # V'(x) of eq. 3
        else:
            reference = output
        if not isinstance(reference, Tensor):
            raise TypeError("L2-CAF needs a tensor model output")
        bad_classes = classes is not None and (
            reference.ndim != 2 or int(classes.max()) >= reference.shape[1]
        )
        if bad_classes:
            raise ValueError("class-specific L2-CAF needs (B, n_classes) logits and valid classes")

        generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
        init = torch.rand(batch, height, width, generator=generator)  # f^1 in [0, 1]^{h x w}
        f = init.to(activations.device, activations.dtype).requires_grad_(True)
        optimizer: torch.optim.Optimizer = (
            torch.optim.Adam([f], lr=cfg.lr)
            if cfg.optimizer == "adam"
            else torch.optim.SGD([f], lr=cfg.lr)
        )
        history = torch.full((cfg.max_iter, batch), float("nan"))
        active = torch.ones(batch, dtype=torch.bool)
        final = f.detach().clone()  # f^l of each finished sample
        iterations = torch.full((batch,), cfg.max_iter, dtype=torch.long)
        converged = torch.zeros(batch, dtype=torch.bool)
        last_loss = torch.zeros(batch)
        with torch.enable_grad():
            for step in tqdm(range(cfg.max_iter), desc="L2-CAF", disable=not self.progress):
                rows = active.nonzero()[:, 0]
                dev_rows = rows.to(activations.device)
                current = f[dev_rows]
                filtered = self._filtered_output(x[dev_rows], activations[dev_rows], _unit(current))
                sel = None if classes is None else classes[dev_rows]
                losses = self._loss(filtered, reference[dev_rows], sel)  # (B',) at f^i
                optimizer.zero_grad(set_to_none=False)
                losses.sum().backward()  # independent filters: per-sample gradients
                detached = losses.detach().cpu()
                history[step, rows] = detached
                last_loss[rows] = detached
                final[dev_rows] = current.detach()
                if step >= cfg.patience:
                    change = (detached - history[step - cfg.patience, rows]).abs()
                    done = change < cfg.eps
                    converged[rows[done]] = True
                    iterations[rows[done]] = step + 1
                    active[rows[done]] = False
                if not bool(active.any()):
                    break
                optimizer.step()
                with torch.no_grad():  # finished filters stay put (Adam momentum would move them)
                    frozen = (~active).to(f.device)
                    f[frozen] = final[frozen]
        signed = _unit(final)  # f / ||f||_2
        return LowRes(
            raw=signed.abs(),  # |f| / ||f||_2, Taha §3.2
            output=output,
            extras={
                "filter": signed,
                "iterations": iterations,
                "converged": converged,
                "loss": last_loss,
            },
        )
