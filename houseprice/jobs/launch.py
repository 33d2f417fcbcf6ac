"""Multi-process training: re-run the current ``houseprice`` command under ``torchrun``.

``houseprice train --nproc N ...`` calls :func:`relaunch`, which runs

    python -m torch.distributed.run --standalone --nproc-per-node N -m cli.main <args>

(the same arguments without ``--nproc``; ``cli.main`` is what the ``houseprice`` console
script runs, pyproject ``[project.scripts]``). Each of the N workers runs the ordinary train
job; :func:`init_ranks` joins the process group that ``torchrun`` describes (``env://``;
gloo on CPU, nccl on CUDA), after which every siamese net trains data-parallel
(:mod:`houseprice.vision.siamese.distributed`) and only rank 0 (:func:`is_main_process`)
writes the model folder. Multi-node runs use ``torchrun`` directly with ``--nnodes`` and a
rendezvous endpoint, running ``-m cli.main train ...`` (without ``--nproc``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from houseprice.errors import UserInputError

NPROC_OPTION = "--nproc"
CLI_MODULE = "cli.main"  # pyproject [project.scripts]: houseprice = "cli.main:main"


def strip_option(argv: Sequence[str], option: str = NPROC_OPTION) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE`` (every occurrence)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def torchrun_command(
    argv: Sequence[str], nproc: int, *, module: str = CLI_MODULE, python: str | None = None
) -> list[str]:
    """The command that runs ``module`` with ``argv`` (minus ``--nproc``) on ``nproc`` ranks.

    ``--standalone``: a single-node rendezvous on a free local port (no address to choose).
    """
    if nproc < 1:
        raise UserInputError(f"--nproc must be at least 1, got {nproc}")
    return [
        python or sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(nproc),
        "-m",
        module,
        *strip_option(argv),
    ]


def worker_threads(nproc: int) -> int:
    """torch threads per worker so that the workers share the cores (at least 1)."""
    return max(1, (os.cpu_count() or 1) // nproc)


def relaunch(nproc: int, argv: Sequence[str] | None = None, *, module: str = CLI_MODULE) -> int:
    """Run this command (``sys.argv[1:]`` by default) under torchrun; return its exit code.

    Each worker gets ``HOUSEPRICE_THREADS`` = cores // nproc unless it is set already (the
    thread count is part of what makes a run byte-reproducible, runtime.DEFAULT_THREADS), and
    this process's environment, CPU kernel pins included (``runtime.pin_cpu_isa``; each rank's
    ``cli.main`` pins again from the same arguments before torch loads).

    Raises:
        UserInputError: ``nproc`` < 1, or this process already is a torchrun worker.
    """
    from houseprice.vision.siamese.distributed import launched_by_torchrun

    if launched_by_torchrun():
        raise UserInputError(
            f"{NPROC_OPTION} was given inside a torchrun worker; run the command without it"
        )
    cmd = torchrun_command(sys.argv[1:] if argv is None else argv, nproc, module=module)
    env = dict(os.environ)  # with this process's CPU kernel pins (runtime.pin_cpu_isa)
    env.setdefault("HOUSEPRICE_THREADS", str(worker_threads(nproc)))
    env.setdefault("OMP_NUM_THREADS", env["HOUSEPRICE_THREADS"])  # (torchrun warns otherwise)
    return subprocess.call(cmd, env=env)


_OWNED: list[bool] = [False]  # did init_ranks create the process group (finish_ranks ends it)


def init_ranks(device: str = "cpu") -> tuple[int, int]:
    """``(rank, world_size)``; joins torchrun's process group first when run by torchrun.

    Outside torchrun nothing is initialised and the answer is ``(0, 1)``; a group the caller
    initialised already is used as it is (and left to the caller to end).
    """
    import torch.distributed as dist

    from houseprice.runtime import resolve_device
    from houseprice.vision.siamese.distributed import init_from_env

    before = dist.is_available() and dist.is_initialized()
    ranks = init_from_env(resolve_device(device))
    _OWNED[0] = _OWNED[0] or (ranks is not None and not before)
    return (0, 1) if ranks is None else (ranks.rank, ranks.world_size)


def finish_ranks() -> None:
    """Leave the process group :func:`init_ranks` joined (each rank, when its part is done).

    Call it on every rank before exiting: a worker that exits with its group still open can
    abort at interpreter shutdown. It is not a collective, so rank 0 may still be writing.
    """
    import torch.distributed as dist

    if _OWNED[0] and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _OWNED[0] = False


def is_main_process() -> bool:
    """True on rank 0 (or without torchrun): the one process that writes outputs and prints.

    The group's rank while one is initialised, else torchrun's ``RANK`` (still right after
    :func:`finish_ranks`).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


__all__ = [
    "finish_ranks",
    "init_ranks",
    "is_main_process",
    "relaunch",
    "strip_option",
    "torchrun_command",
    "worker_threads",
]
