"""Data-parallel rank-siamese training over a ``torch.distributed`` process group.

What this module owns: detecting/initialising the process group (gloo on CPU, nccl on CUDA,
``env://`` as set by ``torchrun``), sharding a global batch over the ranks, the feature
exchange, the gradient all-reduce, a device-agnostic synchronised BatchNorm, and the
collectives that keep early stopping identical on every rank. ``fit_siamese``
(:mod:`houseprice.vision.siamese.train`) uses it only when a process group of world size > 1
is initialised; otherwise nothing here runs and training is unchanged.

The update equals the one-process update on the same global batch (Chen §4.2 loss over every
in-batch pair):

- every rank draws the same batches and the same dihedral augmentation for the *whole* global
  batch (same seeded generator), then encodes only its contiguous shard;
- shard features are exchanged with an autograd all-gather (:class:`_GatherWithGrad`), so
  every rank computes the same loss L over every pair of the global batch; its backward sums
  the feature gradients of all ranks, so rank r's parameter gradient is ∂(W·L)/∂θ through
  shard r;
- :meth:`Ranks.average_gradients` all-reduces the gradients and divides by W: Σ_r ∂(W·L)/∂θ_r
  / W = ∂L/∂θ, the one-process gradient (no further loss scaling);
- BatchNorm statistics are computed over the global batch (:class:`SyncBatchNorm2d`), so
  normalisation and running statistics match one process.

Gradients are averaged with one explicit flattened all-reduce per step, not
``DistributedDataParallel``: the step calls ``branch``/``pair_logits`` rather than
``forward`` (DDP's reducer is armed by ``forward``), a batch without kept pairs leaves the pair
head without a gradient (DDP would need ``find_unused_parameters``), and the compact net has
0.31 M parameters (1.2 MB of gradients), so overlapping the reduction with the backward, DDP's
advantage, saves next to nothing (it would for ResNet-50's 23.5 M on nccl; not measured).
``torch.nn.SyncBatchNorm`` refuses CPU tensors, hence :class:`SyncBatchNorm2d`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Ranks:
    """This process's place in an initialised process group (world size > 1)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> tuple[int, int, int]:
        """Contiguous rows ``[start, stop)`` of an ``n``-row global batch, and the padded size.

        Every rank gets ``m = ceil(n / W)`` rows except the tail ones (possibly none), so the
        gathered shards, unpadded, are the global batch in its original order.
        """
        m = -(-n // self.world_size)
        start = min(n, self.rank * m)
        return start, min(n, start + m), m

    def gather_rows(self, local: Tensor, n: int, *, grad: bool) -> Tensor:
        """Concatenate every rank's shard (rows of :meth:`shard`) into the ``(n, ...)`` batch.

        ``grad=True``: gradients flow back to every rank's shard (:class:`_GatherWithGrad`).
        """
        _, _, m = self.shard(n)
        pad = m - local.shape[0]
        if pad:
            local = torch.cat([local, local.new_zeros((pad, *local.shape[1:]))])
        if grad:
            return _GatherWithGrad.apply(local, self.rank, self.world_size)[:n]
        return _all_gather(local, self.world_size)[:n]

    def average_gradients(self, params: list[nn.Parameter]) -> None:
        """All-reduce the gradients in one flat buffer and divide by W.

        A parameter without a gradient on every rank (e.g. the pair head on a batch without
        kept pairs) keeps none, as in one process (AdamW then skips it); one missing on some
        ranks only counts as zero there.
        """
        if not params:
            return
        parts = [
            p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in params
        ]
        has = [p.new_ones(1) if p.grad is not None else p.new_zeros(1) for p in params]
        flat = torch.cat(parts + has)
        dist.all_reduce(flat)
        present = flat[len(flat) - len(params) :].cpu() > 0  # has a gradient on some rank
        offset = 0
        for i, p in enumerate(params):
            k = p.numel()
            if present[i]:
                g = flat[offset : offset + k].view_as(p) / self.world_size
                if p.grad is None:
                    p.grad = g
                else:
                    p.grad.copy_(g)
            offset += k

    def broadcast_module(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (same start everywhere)."""
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)

    def broadcast_floats(self, values: list[float]) -> list[float]:
        """Rank 0's values on every rank (used so early stopping decides identically)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.comm_device)
        dist.broadcast(t, src=0)
        return [float(v) for v in t.cpu()]

    @property
    def comm_device(self) -> torch.device:
        """Where collective tensors must live: the CUDA device for nccl, else CPU."""
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_gather(local: Tensor, world_size: int) -> Tensor:
    parts = [torch.empty_like(local) for _ in range(world_size)]
    dist.all_gather(parts, local.contiguous())
    return torch.cat(parts)


class _GatherWithGrad(torch.autograd.Function):
    """All ranks' equal-size shards concatenated; the backward sums every rank's gradient.

    The loss of rank q depends on every shard, so d(Σ_q L_q)/d(shard r) = Σ_q dL_q/d(rows of
    r): all-reduce the gathered gradient, keep this rank's rows (a reduce-scatter).
    """

    @staticmethod
    def forward(ctx: Any, local: Tensor, rank: int, world_size: int) -> Tensor:
        ctx.rank, ctx.rows = rank, local.shape[0]
        return _all_gather(local, world_size)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows], None, None


class _SumWithGrad(torch.autograd.Function):
    """The sum over ranks, on every rank; the backward is the same sum of the gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def current(device: torch.device | str = "cpu") -> Ranks | None:
    """The process group in use, or ``None`` without one (or with a single process).

    On CUDA a device without index becomes ``cuda:LOCAL_RANK`` (one GPU per rank).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return Ranks(rank=dist.get_rank(), world_size=dist.get_world_size(), device=dev)


def launched_by_torchrun() -> bool:
    """True inside a ``torchrun`` worker of a multi-process job (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: torch.device | str = "cpu") -> Ranks | None:
    """Initialise the process group from ``torchrun``'s environment (``env://``) if needed.

    Backend: nccl for a CUDA device, gloo otherwise. Returns :func:`current` (``None``
    outside ``torchrun``, where nothing is initialised).
    """
    if dist.is_initialized() or not launched_by_torchrun():
        return current(device)
    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://")
    return current(device)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are over the global batch of every rank.

    Shares the parameters and buffers of the BatchNorm it replaces (same state_dict keys).
    One autograd all-reduce per call, of the per-channel count, Σ(x − s) and Σ(x − s)²,
    shifted by the running mean ``s`` (the same on every rank) so that the variance
    E[(x − s)²] − E[x − s]² does not cancel; gradients flow through the statistics as in one
    process. Works on CPU (gloo), unlike ``torch.nn.SyncBatchNorm``, and with an empty shard
    on some rank.
    """

    def forward(self, input: Tensor) -> Tensor:
        if not self.training:
            return super().forward(input)  # running statistics: per sample, nothing to sync
        # input: (n, C, H, W), n may differ (or be 0) between ranks
        c = input.shape[1]
        shift = self.running_mean.detach() if self.running_mean is not None else input.new_zeros(c)
        x = input - shift[None, :, None, None]
        count = input.new_tensor([float(input.numel() // c)])
        s = _SumWithGrad.apply(torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count]))
        n_all = s[2 * c].detach()
        m = s[:c] / n_all  # E[x − s]
        var = (s[c : 2 * c] / n_all - m * m).clamp_min(0.0)  # biased, as F.batch_norm
        out = (x - m[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        if self.track_running_stats and self.running_mean is not None:
            self._update_running((shift + m).detach(), var.detach(), float(n_all))
        return out

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, n: float) -> None:
        # the same update as F.batch_norm: unbiased variance into the running estimate
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        m = self.momentum if self.momentum is not None else 1.0 / int(self.num_batches_tracked)
        self.running_mean.mul_(1 - m).add_(mean, alpha=m)
        self.running_var.mul_(1 - m).add_(var * (n / max(n - 1.0, 1.0)), alpha=m)


def _sync_copy(bn: nn.BatchNorm2d) -> SyncBatchNorm2d:
    new = SyncBatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    new._parameters, new._buffers = bn._parameters, bn._buffers  # shared, not copied
    return new.train(bn.training)


@contextlib.contextmanager
def sync_batchnorm(model: nn.Module) -> Iterator[nn.Module]:
    """Swap every BatchNorm2d for a :class:`SyncBatchNorm2d` sharing its state; restore after."""
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                swapped.append((parent, name, child))
                setattr(parent, name, _sync_copy(child))
    try:
        yield model
    finally:
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)


__all__ = [
    "Ranks",
    "SyncBatchNorm2d",
    "current",
    "init_from_env",
    "launched_by_torchrun",
    "sync_batchnorm",
]
