"""The ``houseprice`` command line: thin typer commands over :mod:`houseprice.jobs`.

The commands live in ``cli.data_commands``, ``cli.model_commands`` and ``cli.bench_commands``;
what they share (apps, options, the error boundary) in :mod:`cli.common`. Importing this module
registers every command on :data:`app`; before that it pins torch's CPU kernels (``--cpu-isa``
or ``HOUSEPRICE_CPU_ISA``, :func:`houseprice.runtime.pin_cpu_isa`), which torch and its
libraries read only when they start.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from houseprice.errors import UserInputError
from houseprice.runtime import pin_cpu_isa, quiet_openmp

CPU_ISA_OPTION = "--cpu-isa"


def cpu_isa_argument(argv: Sequence[str]) -> str | None:
    """The value of the last ``--cpu-isa V`` / ``--cpu-isa=V`` in ``argv`` (None: not given)."""
    found = None
    for i, arg in enumerate(argv):
        if arg == CPU_ISA_OPTION and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(CPU_ISA_OPTION + "="):
            found = arg.split("=", 1)[1]
    return found


def pin_from_argv(argv: Sequence[str]) -> None:
    """Pin the kernels as ``argv`` (or the environment) asks, before any command module loads.

    A value that is not a setting is left for the ``--cpu-isa`` option to refuse (exit 2), and
    a process that imports this module after torch ran gets the error from that option too.
    """
    try:
        pin_cpu_isa(cpu_isa_argument(argv))
    except (UserInputError, RuntimeError):
        pass


pin_from_argv(sys.argv[1:])

from cli import bench_commands, data_commands, model_commands  # noqa: E402, F401  (registers)
from cli.common import app  # noqa: E402

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    quiet_openmp()
    app(prog_name="houseprice")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
