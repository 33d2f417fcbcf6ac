"""``houseprice train --nproc N`` re-runs the command under torchrun (relaunch mocked here; the
real 2-process run is tested in tests/vision/siamese/test_distributed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def test_nproc_relaunches_and_passes_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[int] = []

    def fake_relaunch(nproc: int) -> int:
        calls.append(nproc)
        return 3

    monkeypatch.setattr("houseprice.jobs.launch.relaunch", fake_relaunch)
    args = ["train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "m"), "--nproc", "2"]
    res = runner.invoke(app, args)
    assert calls == [2] and res.exit_code == 3, res.output
    assert not (tmp_path / "m").exists()


def test_nproc_one_trains_in_this_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fail(nproc: int) -> int:
        raise AssertionError("relaunched")

    monkeypatch.setattr("houseprice.jobs.launch.relaunch", fail)
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "missing"), "--out", "x"])
    assert res.exit_code == 2 and "relaunched" not in res.output
