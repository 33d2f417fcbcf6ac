"""The checks a scoring job runs before its work (houseprice.jobs.guards), without a model.

The end-to-end rows (two real predicts on one output, a user's ``prices.rejected.csv``, an HTTP
server given as the scheduler) are in tests/test_bad_inputs_hardening.py; these pin the rules.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from houseprice.errors import OutputExistsError, UserInputError
from houseprice.jobs.guards import (
    check_dask_options,
    check_side_file,
    lock_path,
    locks_output,
    output_lock,
)

REPO = Path(__file__).resolve().parents[2]


def test_a_second_holder_is_refused_and_the_lock_file_goes_away(tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    with output_lock(out) as lock:
        assert lock == lock_path(out) and lock.read_text().strip() == str(os.getpid())
        with pytest.raises(OutputExistsError, match=rf"process {os.getpid()}\) is writing"):
            with output_lock(out):
                pass  # pragma: no cover
    assert not lock.exists()
    with output_lock(out):  # free again
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    code = (
        "import sys, time\nfrom houseprice.jobs.guards import output_lock\n"
        f"with output_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
        with pytest.raises(OutputExistsError, match=rf"process {proc.pid}\)"):
            with output_lock(out):
                pass  # pragma: no cover
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert lock_path(out).exists()  # killed: its file stays, but the kernel dropped the lock
    t0 = time.monotonic()
    with output_lock(out) as lock:
        assert lock.read_text().strip() == str(os.getpid())
    assert time.monotonic() - t0 < 5


def test_the_lock_leaves_no_folder_it_made(tmp_path: Path) -> None:
    with output_lock(tmp_path / "a" / "b" / "p.csv"):
        assert (tmp_path / "a" / "b").is_dir()
    assert not (tmp_path / "a").exists()


def test_locks_output_finds_the_argument_by_name(tmp_path: Path) -> None:
    @locks_output("out")
    def job(model: str, table: str, out: Path, *, flag: bool = False) -> bool:
        return lock_path(out).exists()

    assert job("m", "t", tmp_path / "x.csv")
    assert job("m", "t", out=tmp_path / "x.csv", flag=True)
    assert not lock_path(tmp_path / "x.csv").exists()


HEADER = ["source_row", "house_id", "column", "value", "reason"]


def test_side_file_rules(tmp_path: Path) -> None:
    side = tmp_path / "prices.rejected.csv"
    check_side_file(side, HEADER, overwrite=False)  # absent: fine
    side.write_text("my,own\nnotes,here\n")
    for flags in ({"overwrite": False}, {"overwrite": True}, {"overwrite": True, "resume": True}):
        with pytest.raises(OutputExistsError, match="not written by houseprice"):
            check_side_file(side, HEADER, **flags)
    side.write_text(",".join(HEADER) + "\n1,A,bedrooms,x,bedrooms: expected a finite integer\n")
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        check_side_file(side, HEADER, overwrite=False)
    check_side_file(side, HEADER, overwrite=True)
    check_side_file(side, HEADER, overwrite=False, resume=True)
    side.unlink()
    side.mkdir()
    with pytest.raises(OutputExistsError, match="not written by houseprice"):
        check_side_file(side, HEADER, overwrite=True)


def test_dask_options_need_the_dask_engine_and_an_address() -> None:
    check_dask_options("local", scheduler=None, workers=None)
    check_dask_options("dask", scheduler="tcp://h:8786", workers=None)
    with pytest.raises(UserInputError, match="--scheduler: only with --engine dask"):
        check_dask_options("local", scheduler="tcp://h:8786", workers=None)
    with pytest.raises(UserInputError, match="--scheduler, --workers: only with --engine dask"):
        check_dask_options("local", scheduler="", workers=2)
    for empty in ("", "  "):
        with pytest.raises(UserInputError, match="give the scheduler's address"):
            check_dask_options("dask", scheduler=empty, workers=None)


def test_scheduler_probe_accepts_a_scheduler_and_refuses_a_silent_server() -> None:
    import logging
    import socket
    import threading

    distributed = pytest.importorskip("distributed")
    from houseprice.jobs.guards import check_scheduler

    with distributed.LocalCluster(
        n_workers=0, processes=False, dashboard_address=None, silence_logs=logging.ERROR
    ) as cluster:
        check_scheduler(cluster.scheduler_address, seconds=5)
    with socket.socket() as server:  # accepts connections, never says a word
        server.bind(("127.0.0.1", 0))
        server.listen()
        conns: list[socket.socket] = []
        threading.Thread(target=lambda: conns.append(server.accept()[0]), daemon=True).start()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(UserInputError, match="cannot connect to a Dask scheduler"):
            check_scheduler(address, seconds=2)
        assert time.monotonic() - t0 < 6
        for c in conns:
            c.close()
