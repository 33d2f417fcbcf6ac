"""explain on Dask: the same table and PNG bytes as the local engine, dead workers, the CLI.

One LocalCluster (2 worker processes, 1 thread each) serves the module; the tests connect to
it by address, which is also how ``--scheduler`` reaches an existing cluster.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

distributed = pytest.importorskip("distributed")

import houseprice.jobs.explain as explain  # noqa: E402
import houseprice.jobs.explain_dask as explain_dask  # noqa: E402
from houseprice.errors import UserInputError  # noqa: E402
from houseprice.jobs.explain import ExplainResult, explain_table  # noqa: E402

PNG_FOLDERS = ("overlays", "heatmaps")
pytestmark = pytest.mark.slow  # multi-process (a 2-worker LocalCluster), ~1 min


def _explain(model: Path, city: Path, out: Path, **kw) -> ExplainResult:  # type: ignore[no-untyped-def]
    # max_evidence: the (client-side, engine-independent) report stays small and fast
    return explain_table(model, city, out, progress=False, max_evidence=8, **kw)


@pytest.fixture(scope="module")
def local_out(city_model: Path, tiny_city: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("local") / "e"
    return out, _explain(city_model, tiny_city, out)


def _same_output(got: Path, want: Path) -> None:
    """Byte-identical table, PNGs and report; nothing else in the folder."""
    assert (got / "explanations.csv").read_bytes() == (want / "explanations.csv").read_bytes()
    names = {sub: sorted(p.name for p in (want / sub).iterdir()) for sub in PNG_FOLDERS}
    assert len(names["overlays"]) > 100  # the tiny city: 160 houses, nearly all with tiles
    for sub in PNG_FOLDERS:
        assert sorted(p.name for p in (got / sub).iterdir()) == names[sub]  # no temp files
        for n in names[sub]:
            assert (got / sub / n).read_bytes() == (want / sub / n).read_bytes(), (sub, n)
    assert (got / "report.json").read_bytes() == (want / "report.json").read_bytes()
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in want.iterdir())


def _frames_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    paths = ["overlay", "heatmap"]  # absolute, under each run's own folder
    pd.testing.assert_frame_equal(got.drop(columns=paths), want.drop(columns=paths))
    for col in paths:
        assert [Path(v).name if v else v for v in got[col]] == [
            Path(v).name if v else v for v in want[col]
        ]


def test_dask_equals_local(
    scheduler: str, local_out, city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    want_dir, want = local_out
    out = tmp_path / "d"
    res = _explain(city_model, tiny_city, out, engine="dask", scheduler=scheduler, partitions=3)
    _same_output(out, want_dir)
    _frames_equal(res.frame, want.frame)
    assert res.report == want.report


def dying_partition(job, part, *, marker: str):  # type: ignore[no-untyped-def]
    """Partition 1's first attempt writes its PNGs, spoils one, leaves a temp file and dies."""
    frame, signed = explain_dask.explain_partition(job, part)
    if part.index == 1:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return frame, signed  # the retry: carry on
        name = Path(frame["overlay"].dropna().iloc[0]).name
        (Path(job.out) / "overlays" / name).write_bytes(b"half a png")
        (Path(job.out) / "overlays" / f".{name}.dead.tmp").write_bytes(b"temp")
        os._exit(1)  # the worker process dies (no cleanup, like a kill -9)
    return frame, signed


def test_dead_worker_loses_and_duplicates_nothing(
    scheduler: str, local_out, city_model: Path, tiny_city: Path, tmp_path: Path, monkeypatch
) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests
    marker = tmp_path / "died"
    task = functools.partial(dying_partition, marker=str(marker))
    real = explain_dask.explain_on_dask
    monkeypatch.setattr(explain, "explain_on_dask", functools.partial(real, task=task))
    out = tmp_path / "d"
    res = _explain(city_model, tiny_city, out, engine="dask", scheduler=scheduler, partitions=4)
    assert marker.exists(), "no worker died: the test tested nothing"
    assert res.frame["house_id"].is_unique and len(res.frame) == 160
    _same_output(out, local_out[0])


def test_cli_explain_on_dask(
    scheduler: str, local_out, city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    from cli.main import app

    out = tmp_path / "c"
    common = ["explain", "--model", city_model, "--input", tiny_city, "--out", out, "--quiet"]
    res = CliRunner().invoke(
        app, [str(a) for a in [*common, "--engine", "dask", "--scheduler", scheduler]]
    )
    assert res.exit_code == 0, res.output
    assert "explained 160 houses" in res.output
    want = local_out[0] / "explanations.csv"
    assert (out / "explanations.csv").read_bytes() == want.read_bytes()
    for flag in (["--scheduler", scheduler], ["--workers", "2"], ["--partitions", "2"]):
        res = CliRunner().invoke(app, [str(a) for a in [*common, "--overwrite", *flag]])
        assert res.exit_code == 2, res.output
        assert f"{flag[0]}: only with --engine dask" in res.output
    with pytest.raises(UserInputError, match="--engine must be"):
        explain_table(city_model, tiny_city, tmp_path / "x", engine="spark")
