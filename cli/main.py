"""The ``houseprice`` command line: thin typer commands over :mod:`houseprice.jobs`.

The commands live in ``cli.data_commands``, ``cli.model_commands`` and ``cli.bench_commands``;
what they share (apps, options, the error boundary) in :mod:`cli.common`. Importing this module
registers every command on :data:`app`.
"""

from __future__ import annotations

import sys

from cli import bench_commands, data_commands, model_commands  # noqa: F401  (registers)
from cli.common import app
from houseprice.runtime import quiet_openmp

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    quiet_openmp()
    app(prog_name="houseprice")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
