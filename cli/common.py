"""What every ``houseprice`` command shares: the typer apps, the common options, ``run_job``.

Each command parses its options and calls one job function through :func:`run_job`, the one
place that seeds, resolves ``--device``, shows warnings and draws the error boundary:
:class:`houseprice.errors.HousepriceError` (bad input, a folder in the wrong format, an output
that must not be replaced) prints one line and exits with code 2; every other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from houseprice.errors import HousepriceError
from houseprice.profiles import Profile
from houseprice.runtime import CPU_ISA_VAR, DEVICE_HELP, pin_cpu_isa

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Value houses from attributes plus satellite tiles, and show why.",
)
data_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Create and check datasets."
)
bench_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Benchmarks.")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
console = Console(stderr=True)
out_console = Console()

T = TypeVar("T")

# Options shared by every command: defined once, used by every command's signature.
Seed = Annotated[int, typer.Option("--seed", help="Random seed (deterministic on CPU).")]
Device = Annotated[str, typer.Option("--device", help=DEVICE_HELP)]
ProfileOpt = Annotated[Profile, typer.Option("--profile", help="Size/settings preset.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing output written by houseprice.")
]
# The Dask options of predict, explain and train (--engine dask).
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Dask scheduler address (tcp://host:8786) for --engine dask; default: a "
        "LocalCluster with one worker process per core (or --workers). Workers need the "
        "command's files (model, tiles, output folder) under the same paths.",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", min=1, max=1024, help="LocalCluster workers (default: cores)."),
]


class CpuIsa(str, Enum):
    avx2 = "avx2"
    native = "native"


class Purpose(str, Enum):
    train = "train"
    predict = "predict"
    any = "any"


@dataclass(frozen=True)
class Common:
    """The shared options of one invocation."""

    seed: int = 0
    device: str = "cpu"
    quiet: bool = False
    threads: int | None = None  # None: the app-level --threads (see set_app_threads)

    @property
    def progress(self) -> bool:
        return not self.quiet


def run_job(common: Common, job: Callable[[], T]) -> T:
    """Seed, check the device, run ``job``; user errors become one line and exit code 2."""
    from houseprice.runtime import resolve_device, seed_everything, set_threads, tune_allocator

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            resolve_device(common.device)
            set_threads(common.threads if common.threads is not None else _APP["threads"])
            tune_allocator()  # batches' activations reuse memory (houseprice.runtime)
            seed_everything(common.seed)
            return job()
    except (HousepriceError, PermissionError) as e:
        console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


_APP: dict[str, int | None] = {"threads": None}


@app.callback()
def app_options(
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            max=256,
            help="torch CPU threads (default: HOUSEPRICE_THREADS or 2). Same seed and same "
            "threads give byte-identical models.",
        ),
    ] = None,
    cpu_isa: Annotated[
        CpuIsa,
        typer.Option(
            "--cpu-isa",
            envvar=CPU_ISA_VAR,
            help="Instruction set of torch's CPU kernels: avx2 (default) trains the same "
            "bytes on every x86 CPU with AVX2, AVX-512 ones included; native uses the CPU's "
            "widest kernels (faster on some CPUs, other last digits). CUDA is not affected.",
        ),
    ] = CpuIsa.avx2,
) -> None:
    """Value houses from attributes plus satellite tiles, and show why."""
    _APP["threads"] = threads
    pin_cpu_isa(cpu_isa.value)  # done already by cli.main before torch loaded; checks it


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    console.print(f"[yellow]warning:[/] {message}", markup=True, highlight=False, soft_wrap=True)


def say(text: str) -> None:
    out_console.print(text, highlight=False)
