"""Where and how computations run: device resolution, seeding, threads and the allocator.

Every job resolves ``--device`` through :func:`resolve_device` (so ``tpu``, ``""`` or a CUDA
request on a CPU-only machine is a user error, not a traceback) and seeds every generator
through :func:`seed_everything` (deterministic on CPU given ``--seed``).
"""

from __future__ import annotations

import ctypes
import os
import random
from typing import TYPE_CHECKING

from houseprice.errors import UserInputError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "cpu, cuda, cuda:N or auto (CUDA when available, else CPU)."


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else must be ``cpu`` or a CUDA device.

    Raises:
        UserInputError: the name is not a device, or CUDA is requested but not available.
    """
    import torch

    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(str(device))
        except (RuntimeError, ValueError) as err:
            raise UserInputError(f"--device {device!r} is not a device; use {DEVICE_HELP}") from err
    if dev.type not in ("cpu", "cuda"):
        raise UserInputError(f"--device {device!r} is not supported; use {DEVICE_HELP}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserInputError(f"--device {device} requested but no CUDA device is available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserInputError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (on every device)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


#: Default torch CPU threads. Fixed (not "all cores") because the thread count changes the
#: order of floating-point reductions: the same seed gives byte-identical models only with the
#: same thread count (measured: 1 vs 2 threads give different siamese weights).
DEFAULT_THREADS = 2


def set_threads(n: int | None = None) -> int:
    """Set torch's CPU threads (``HOUSEPRICE_THREADS`` or :data:`DEFAULT_THREADS`); return it."""
    import torch

    if n is None:
        raw = os.environ.get("HOUSEPRICE_THREADS", str(DEFAULT_THREADS))
        try:
            n = int(raw)
        except ValueError:
            raise UserInputError(
                f"HOUSEPRICE_THREADS must be a whole number, got {raw!r}"
            ) from None
    if not 1 <= n <= 256:
        raise UserInputError(f"--threads must be between 1 and 256, got {n}")
    torch.set_num_threads(n)
    return n


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: glibc malloc settings for a process that runs the same forward pass over and over. By
#: default glibc serves every block above 32 MB (and, until its dynamic threshold adapts, above
#: 128 kB) with a fresh ``mmap`` and hands it back on ``free``: each batch's activations (the
#: siamese stem's output for 256 tiles is 33.5 MB) are then page-faulted in again and zeroed by
#: the kernel, and a big share of the forward pass is system time. With these settings freed
#: blocks stay in the process for the next batch (peak RSS grows a little instead).
#: ``MALLOC_ARENA_MAX=1`` makes a worker *thread* (Dask runs tasks in one) use the main heap,
#: which honours the thresholds for blocks of any size; a thread's own arena maps blocks over
#: 64 MB afresh whatever the thresholds say. Measured: benchmarks/results/allocator.md.
ALLOCATOR_ENV: dict[str, str] = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str((1 << 31) - 1),
}


def tune_allocator() -> bool:
    """Apply :data:`ALLOCATOR_ENV`'s thresholds to this (running) process; False if not glibc.

    The arena count can only be set before a process starts (its environment); the CLI's own
    process runs its jobs on the main thread, which uses the main heap anyway. Process-wide:
    the CLI calls it, a library user may.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False  # not glibc (macOS, musl): nothing to tune
    ok = mallopt(_M_MMAP_THRESHOLD, int(ALLOCATOR_ENV["MALLOC_MMAP_THRESHOLD_"]))
    ok &= mallopt(_M_TRIM_THRESHOLD, int(ALLOCATOR_ENV["MALLOC_TRIM_THRESHOLD_"]))
    return bool(ok)


def quiet_openmp() -> None:
    """Silence OpenMP's banner warnings (called by the CLI before torch/LightGBM load)."""
    os.environ.setdefault("KMP_WARNINGS", "0")


__all__ = [
    "ALLOCATOR_ENV",
    "DEFAULT_THREADS",
    "DEVICE_HELP",
    "quiet_openmp",
    "resolve_device",
    "seed_everything",
    "set_threads",
    "tune_allocator",
]
