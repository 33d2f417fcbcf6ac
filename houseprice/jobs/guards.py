"""Checks a scoring job runs before its long work, so that a refusal comes first.

This module owns:

- :func:`output_lock` / :func:`locks_output`: one run at a time per output. A second
  ``predict`` on an ``--out`` that a running one is writing is refused up front (the two used
  to race: one deleted the other's temporary partition files). The lock is ``flock`` on a
  hidden sibling file ``.<out name>.lock`` holding the owner's process id; the kernel drops it
  when that process dies, so a killed run never leaves a stale lock;
- :func:`check_side_file`: a file a job writes next to its output (``prices.rejected.csv``)
  replaces only a file houseprice wrote before, and only with ``--overwrite`` or
  ``--resume``; a user's own file of that name is never replaced;
- :func:`check_dask_options` and :func:`check_scheduler`: ``--scheduler`` / ``--workers``
  only with ``--engine dask``, never an empty address, and the address must answer as a Dask
  scheduler within :data:`SCHEDULER_SECONDS` (connection *and* handshake: something else
  listening there used to hang the run for minutes).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from houseprice.errors import OutputExistsError, UserInputError, quote, shorten

F = TypeVar("F", bound=Callable[..., Any])

#: How long a Dask scheduler has to accept a connection and answer who it is.
SCHEDULER_SECONDS = 10.0


# ------------------------------------------------------------------------------ the lock
def lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold the lock of ``out`` for the body; raise :class:`OutputExistsError` if another
    process holds it. The lock file is removed when the body ends."""
    out = Path(os.path.abspath(out))
    path = lock_path(out)
    made = _missing_parents(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise OutputExistsError(
                f"another houseprice run (process {owner}) is writing {out}; wait for it to "
                f"finish, or choose another --out (lock: {path.name})"
            ) from None
        # the file may have been removed by the previous owner between open and flock
        if _same_file(fd, path):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # releases the lock
        for folder in made:  # folders made only for the lock, if the run left them empty
            with contextlib.suppress(OSError):
                folder.rmdir()


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def locks_output(param: str = "out") -> Callable[[F], F]:
    """Decorate a job function so it runs holding :func:`output_lock` of its ``param``."""

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args: Any, **kwargs: Any) -> Any:
            out = sig.bind(*args, **kwargs).arguments[param]
            with output_lock(out):
                return fn(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return wrap


# ------------------------------------------------------------------------------ side files
def check_side_file(
    path: Path, header: Sequence[str], *, overwrite: bool, resume: bool = False
) -> None:
    """Refuse to replace ``path`` unless houseprice wrote it (its first line is ``header``)
    and the run may replace its outputs (``overwrite`` or ``resume``)."""
    if not (path.exists() or path.is_symlink()):
        return
    try:
        if path.is_symlink() or not path.is_file():
            raise OSError
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline(4096).strip()
    except OSError:
        first = None
    if first != ",".join(header):
        raise OutputExistsError(
            f"{path} exists and was not written by houseprice; this run writes its refused "
            "rows there: move the file away or choose another --out"
        )
    if not (overwrite or resume):
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")


# ------------------------------------------------------------------------------ Dask
def check_dask_options(engine: str, *, scheduler: str | None, workers: int | None) -> None:
    """``--scheduler`` and ``--workers`` only with ``--engine dask``; a non-empty address."""
    given = [f"--{k}" for k, v in (("scheduler", scheduler), ("workers", workers)) if v is not None]
    if engine != "dask" and given:
        raise UserInputError(
            f"{', '.join(given)}: only with --engine dask (the local engine does not use them)"
        )
    if scheduler is not None and not scheduler.strip():
        raise UserInputError(
            f"--scheduler {quote(scheduler)}: give the scheduler's address (tcp://host:8786), "
            "or leave --scheduler out to start a LocalCluster"
        )


def check_scheduler(scheduler: str | None, *, seconds: float = SCHEDULER_SECONDS) -> None:
    """Refuse an address where no Dask scheduler answers within ``seconds`` (connection and
    handshake both; ``distributed.Client``'s own timeout covers only the connection). Dask's
    ``distributed.comm.timeouts.connect`` shortens it when it is shorter."""
    if scheduler is None:
        return
    check_dask_options("dask", scheduler=scheduler, workers=None)
    import asyncio

    import dask
    import distributed  # noqa: F401  (registers distributed's config defaults)
    from dask.utils import parse_timedelta

    connect = dask.config.get("distributed.comm.timeouts.connect", default=f"{seconds}s")
    seconds = min(seconds, parse_timedelta(connect))

    def probe() -> Any:  # in its own thread: the caller may run an event loop (Jupyter)
        # a little over ``seconds``: Dask's own connect timeout (the clearer error) ends first
        return asyncio.run(asyncio.wait_for(_identity(scheduler, seconds), seconds + 1.0))

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="houseprice-scheduler-probe") as pool:
            identity = pool.submit(probe).result()
    except (TimeoutError, asyncio.TimeoutError):
        why = f"cannot connect to a Dask scheduler there (nothing answered within {seconds:g} s)"
    except Exception as err:  # refused connection, bad address, garbage from a non-Dask server
        why = f"cannot connect to a Dask scheduler there ({type(err).__name__}: {shorten(err)})"
    else:
        kind = identity.get("type") if isinstance(identity, dict) else type(identity).__name__
        if kind == "Scheduler":
            return
        why = f"it answers, but as {quote(kind)}"
    raise UserInputError(
        f"--scheduler {quote(scheduler)}: {why} (not a Dask scheduler, or not reachable); give "
        "its address as tcp://host:8786, or leave --scheduler out to start a LocalCluster"
    )


async def _identity(address: str, seconds: float) -> Any:
    from distributed.core import rpc
    from distributed.security import Security

    args = Security().get_connection_args("client")
    async with rpc(address, timeout=seconds, connection_args=args) as remote:
        return await remote.identity()


__all__ = [
    "SCHEDULER_SECONDS",
    "check_dask_options",
    "check_scheduler",
    "check_side_file",
    "locks_output",
    "output_lock",
]
