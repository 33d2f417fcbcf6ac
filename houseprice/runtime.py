"""Where and how computations run: device, seeding, threads, CPU instruction set, allocator.

Every job resolves ``--device`` through :func:`resolve_device` (so ``tpu``, ``""`` or a CUDA
request on a CPU-only machine is a user error, not a traceback) and seeds every generator
through :func:`seed_everything` (deterministic on CPU given ``--seed``). :func:`pin_cpu_isa`
pins the instruction set of torch's CPU kernels (before torch starts) so that a model trains
to the same bytes on every x86 CPU.
"""

from __future__ import annotations

import ctypes
import os
import platform
import random
import sys
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


#: ``--cpu-isa`` / this variable: ``avx2`` (the default) or ``native``.
CPU_ISA_VAR = "HOUSEPRICE_CPU_ISA"
CPU_ISAS = ("avx2", "native")
DEFAULT_CPU_ISA = "avx2"
#: What pins torch's CPU kernels to AVX2. Each library picks its kernels by the CPU's
#: instruction set on its own, and each choice reaches the trained weights (measured with
#: ``benchmarks/cpu_isa.py``: lowering any one of them alone changes a small siamese net's
#: bytes): ATen's vectorised element-wise ops and reductions (batch norm, pooling, the loss,
#: the optimiser), oneDNN's convolutions, and MKL's matrix products (the linear layers).
#: Each reads its variable once, when it first runs a kernel; CUDA ignores them all.
CPU_ISA_PINS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
}


def _has_avx2() -> bool:
    """True on an x86-64 CPU with AVX2 (on Linux read from /proc/cpuinfo; elsewhere assumed)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return True


def pin_cpu_isa(isa: str | None = None) -> str:
    """Pin torch's CPU kernels (ATen, oneDNN, MKL) to ``isa`` in this process and its children.

    ``isa``: ``avx2`` (default: ``HOUSEPRICE_CPU_ISA``, else ``avx2``) sets
    :data:`CPU_ISA_PINS` in ``os.environ``, so the same seed trains the same bytes on every
    x86 CPU with AVX2 (AVX-512 ones included); ``native`` removes them and lets each library
    use the CPU's widest kernels. A CPU without AVX2 (or not x86) runs ``native``. Returns the
    setting in effect and records it in ``HOUSEPRICE_CPU_ISA`` (processes started from here
    inherit it). Call it before torch runs its first operation (the CLI does so before it
    imports anything else); CUDA computations are not affected.

    Raises:
        UserInputError: ``isa`` is not one of :data:`CPU_ISAS`.
        RuntimeError: torch already chose other kernels in this process.
    """
    raw = isa if isa is not None else os.environ.get(CPU_ISA_VAR, DEFAULT_CPU_ISA)
    choice = str(raw).strip().lower()
    if choice not in CPU_ISAS:
        raise UserInputError(
            f"--cpu-isa / {CPU_ISA_VAR} must be one of {', '.join(CPU_ISAS)}, got {raw!r}"
        )
    if choice == "avx2" and not _has_avx2():
        choice = "native"
    for key, value in CPU_ISA_PINS.items():
        if choice == "avx2":
            os.environ[key] = value
        else:
            os.environ.pop(key, None)
    os.environ[CPU_ISA_VAR] = choice
    if choice == "avx2" and "torch" in sys.modules:
        import torch

        chosen = str(torch.backends.cpu.get_cpu_capability())
        if chosen != "AVX2":
            raise RuntimeError(
                f"pin_cpu_isa('avx2') came after torch chose its {chosen} kernels; call "
                "houseprice.runtime.pin_cpu_isa() before torch runs anything"
            )
    return choice


def cpu_isa() -> str:
    """This process's kernel setting, from its environment (what ``model.json`` records).

    ``avx2`` (pinned), ``native`` (none of :data:`CPU_ISA_PINS` set), or the variables as set
    (``ATEN_CPU_CAPABILITY=default`` ...) when they were set by hand to something else.
    """
    present = {k: os.environ[k] for k in CPU_ISA_PINS if k in os.environ}
    if present == CPU_ISA_PINS:
        return "avx2"
    if not present:
        return "native"
    return " ".join(f"{k}={v}" for k, v in present.items())


def cpu_isa_env() -> dict[str, str]:
    """The environment a child process needs to run this process's kernels (Dask, torchrun).

    Empty when this process was not pinned (a child then picks as this process did).
    """
    present = {k: os.environ[k] for k in CPU_ISA_PINS if k in os.environ}
    if CPU_ISA_VAR in os.environ:
        present[CPU_ISA_VAR] = os.environ[CPU_ISA_VAR]
    return present


def quiet_openmp() -> None:
    """Silence OpenMP's banner warnings (called by the CLI before torch/LightGBM load)."""
    os.environ.setdefault("KMP_WARNINGS", "0")


__all__ = [
    "ALLOCATOR_ENV",
    "CPU_ISAS",
    "CPU_ISA_PINS",
    "CPU_ISA_VAR",
    "DEFAULT_CPU_ISA",
    "DEFAULT_THREADS",
    "DEVICE_HELP",
    "cpu_isa",
    "cpu_isa_env",
    "pin_cpu_isa",
    "quiet_openmp",
    "resolve_device",
    "seed_everything",
    "set_threads",
    "tune_allocator",
]
