"""explain --resume: an interrupted run keeps its finished partitions; a resume runs the rest.

The tiny city's 160 houses in ``chunk_size=54`` partitions: rows 0-54, 54-108, 108-160 (the
same layout as ``--engine dask --partitions 3``). A run is interrupted by making the per-house
work (``explain_rows``) raise on its 2nd partition.
"""

from __future__ import annotations

import functools
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import houseprice.jobs.explain as explain
from houseprice.data.houses import load_any
from houseprice.errors import OutputExistsError, UserInputError
from houseprice.jobs.explain import explain_table
from houseprice.jobs.explain_dask import explain_rows
from houseprice.jobs.explain_work import EXPLAIN_WORK, part_done, work_folder
from houseprice.jobs.stream import Partition, part_footer, read_job
from houseprice.valuation.model import HousePriceModel

CHUNK = 54
PARTS = [Partition(0, 0, 54), Partition(1, 54, 108), Partition(2, 108, 160)]


class Interrupted(Exception):
    """Stands for Ctrl-C / a killed process in the middle of a run."""


def _explain(model: Path, city: Path, out: Path, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("chunk_size", CHUNK)
    return explain_table(
        model, city, out, map_html=out / "map.html", progress=False, max_evidence=8, **kw
    )


def _count(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> list[int]:
    """Record the first row of every partition the local engine explains; raise at the
    ``fail_at``-th (1-based) call, before any of its work is done."""
    seen: list[int] = []
    real = explain.explain_rows

    def counting(model, rows, *args, **kw):  # type: ignore[no-untyped-def]
        seen.append(int(rows.index[0]))
        if len(seen) == fail_at:
            raise Interrupted
        return real(model, rows, *args, **kw)

    monkeypatch.setattr(explain, "explain_rows", counting)
    return seen


def _interrupt(model: Path, city: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run that dies in its 2nd partition; returns its work folder."""
    seen = _count(monkeypatch, fail_at=2)
    with pytest.raises(Interrupted):
        _explain(model, city, out)
    assert seen == [0, 54]
    monkeypatch.undo()
    return work_folder(out)


def _not_now(*args, **kw):  # type: ignore[no-untyped-def]
    raise AssertionError("the model was loaded before the output was checked")


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def reference(city_model: Path, tiny_city: Path, tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted run in the default layout (one partition): every file's bytes."""
    out = tmp_path_factory.mktemp("ref") / "e"
    res = _explain(city_model, tiny_city, out, chunk_size=512)
    assert res.partitions == 1 and res.reused == 0
    return _files(out)


def test_interrupted_run_resumes_only_the_missing_partitions(
    reference, city_model: Path, tiny_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "e"
    work = _interrupt(city_model, tiny_city, out, monkeypatch)
    assert not out.exists()  # nothing that looks like an output
    assert work == tmp_path / ".e.explain-work"
    assert sorted(p.name for p in work.iterdir()) == [
        "_job.json",
        "heatmaps",
        "overlays",
        "part-00000.parquet",
    ]
    first = pq.read_table(work / "part-00000.parquet").to_pandas()
    assert len(first) == 54
    pngs = sorted(p.name for p in (work / "overlays").iterdir())
    assert pngs == sorted(Path(v).name for v in first["overlay"].dropna())  # only partition 0
    seen = _count(monkeypatch)
    res = _explain(city_model, tiny_city, out, resume=True)
    assert seen == [54, 108]  # partition 0 was kept
    assert (res.partitions, res.reused) == (3, 1)
    assert not work.exists()
    got = _files(out)
    assert sorted(got) == sorted(reference)  # no partition files, no _job.json, no temp files
    for name, data in reference.items():
        assert got[name] == data, name  # table, PNGs, report, map, manifest
    assert len(res.frame) == 160 and res.frame["house_id"].is_unique


def test_resume_of_another_job_and_leftovers_are_refused(
    city_model: Path, tiny_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    city = tmp_path / "city"
    shutil.copytree(tiny_city, city)
    out = tmp_path / "e"
    work = _interrupt(city_model, city, out, monkeypatch)
    table = pd.read_csv(city / "houses.csv", dtype=str, keep_default_na=False)
    original = table.copy()
    table.loc[0, "area_sqft"] = "1234.5"  # same rows, paths and options; other values
    table.to_csv(city / "houses.csv", index=False)
    with pytest.raises(UserInputError, match=r"another job.*--overwrite"):
        _explain(city_model, city, out, resume=True)
    original.to_csv(city / "houses.csv", index=False)
    refused = pytest.raises(OutputExistsError, match=r"an unfinished run \(pass --resume\)")
    with monkeypatch.context() as m, refused:
        m.setattr(explain.HousePriceModel, "load", _not_now)  # refused before the long work
        _explain(city_model, city, out)
    (work / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"did not write \(notes\.txt\)"):
        _explain(city_model, city, out, overwrite=True)
    assert (work / "notes.txt").read_text() == "mine"
    (work / "notes.txt").unlink()
    seen = _count(monkeypatch)
    res = _explain(city_model, city, out, overwrite=True)  # starts over
    assert seen == [0, 54, 108] and res.reused == 0
    assert not work.exists() and (out / "explanations.csv").is_file()


def test_a_stale_partition_file_is_not_done(
    city_model: Path, tiny_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "e"
    work = _interrupt(city_model, tiny_city, out, monkeypatch)
    key = read_job(work, EXPLAIN_WORK)["key"]
    path = work / "part-00000.parquet"
    assert part_done(work, PARTS[0], key)
    assert not part_done(work, PARTS[1], key)  # absent
    assert not part_done(work, Partition(0, 0, 53), key)  # another range
    table = pq.read_table(path)
    foreign = {**table.schema.metadata, **part_footer(PARTS[0], "another-job")}
    pq.write_table(table.replace_schema_metadata(foreign), path)
    assert not part_done(work, PARTS[0], key)
    seen = _count(monkeypatch)
    res = _explain(city_model, tiny_city, out, resume=True)
    assert seen == [0, 54, 108] and res.reused == 0  # the stale partition was redone


def test_partition_files_give_back_the_in_memory_frame(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    """Houses without a tile (no PNG: None paths) in later partitions: the frame read back
    from the partition files is the one a single in-memory pass gives (values, dtypes, None
    and NaN as they were)."""
    model = HousePriceModel.load(city_model)
    city = tmp_path / "city"
    shutil.copytree(tiny_city, city)
    table = pd.read_csv(city / "houses.csv", dtype=str, keep_default_na=False)
    unseen = table.index[~table["house_id"].isin(model.train_ids)]
    blank = [*unseen[unseen >= 54][:2], unseen[-1]]  # partitions 1 and 2 (the report needs
    table.loc[blank, "image"] = ""  # the training houses' tiles)
    table.to_csv(city / "houses.csv", index=False)
    res = _explain(city_model, city, tmp_path / "e")
    ds = load_any(city, purpose="predict")
    want, _ = explain_rows(
        model, ds.records, ds.tiles, tmp_path / "x", device="cpu", progress=False
    )
    assert res.frame.loc[blank, "overlay"].isna().all()
    assert res.frame["overlay"].notna().sum() > 100
    got = res.frame.copy()
    for col in ("overlay", "heatmap"):  # absolute paths under --out in the result
        rel = [
            None if pd.isna(v) else Path(v).relative_to(tmp_path / "e").as_posix() for v in got[col]
        ]
        got[col] = pd.Series(rel, index=got.index, dtype=object)
    pd.testing.assert_frame_equal(got, want)
    for col in want.columns:
        if want[col].dtype == "object":
            assert [type(v) for v in got[col]] == [type(v) for v in want[col]], col


def test_cli_resume_exit_codes(
    city_model: Path, tiny_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.main import app

    out = tmp_path / "e"

    def invoke(*extra: str, out: Path = out):  # type: ignore[no-untyped-def]
        args = ["explain", "--model", city_model, "--input", tiny_city, "--out", out, "--quiet"]
        return CliRunner().invoke(app, [str(a) for a in [*args, *extra]])

    def crash(*a, **kw):  # type: ignore[no-untyped-def]
        raise Interrupted  # after the (only) partition, before the table is written

    monkeypatch.setattr(explain, "_write_outputs", crash)
    assert isinstance(invoke().exception, Interrupted)
    monkeypatch.undo()
    assert (work_folder(out) / "part-00000.parquet").is_file() and not out.exists()
    for extra, message in [
        ((), r"an unfinished run \(pass --resume\)"),
        (("--resume", "--unseen-only"), r"another job.*--overwrite"),
    ]:
        res = invoke(*extra)
        assert res.exit_code == 2, res.output
        assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
        assert re.search(message, " ".join(res.output.split())), res.output
    seen = _count(monkeypatch)
    res = invoke("--resume")
    assert res.exit_code == 0, res.output
    assert seen == [] and "1 of 1 partitions kept from before" in " ".join(res.output.split())
    assert (out / "explanations.csv").is_file() and not work_folder(out).exists()
    foreign = work_folder(tmp_path / "f")
    foreign.mkdir()
    (foreign / "mine.txt").write_text("not houseprice's")
    for extra in [(), ("--resume",), ("--overwrite",), ("--resume", "--overwrite")]:
        res = invoke(*extra, out=tmp_path / "f")
        assert res.exit_code == 2 and "not written by houseprice explain" in res.output
    assert (foreign / "mine.txt").read_text() == "not houseprice's"


def recording_partition(job, part, *, marker: str):  # type: ignore[no-untyped-def]
    """The Dask task, leaving a marker file per partition it ran."""
    import houseprice.jobs.explain_dask as explain_dask

    Path(marker, f"{part.index}").touch()
    return explain_dask.explain_partition(job, part)


@pytest.mark.slow  # a 2-worker LocalCluster
def test_dask_resumes_a_local_run(
    scheduler: str,
    reference,
    city_model: Path,
    tiny_city: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cloudpickle

    import houseprice.jobs.explain_dask as explain_dask

    out = tmp_path / "e"
    _interrupt(city_model, tiny_city, out, monkeypatch)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests
    marker = tmp_path / "ran"
    marker.mkdir()
    task = functools.partial(recording_partition, marker=str(marker))
    real = explain_dask.explain_on_dask
    monkeypatch.setattr(explain, "explain_on_dask", functools.partial(real, task=task))
    res = _explain(
        city_model, tiny_city, out, resume=True, engine="dask", scheduler=scheduler, partitions=3
    )
    assert sorted(p.name for p in marker.iterdir()) == ["1", "2"]  # the same layout: 0 kept
    assert res.reused == 1
    got = _files(out)
    assert sorted(got) == sorted(reference)
    for name, data in reference.items():
        assert got[name] == data, name


def test_a_file_at_the_work_folder_path_is_never_deleted(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    """The hidden work-folder path is houseprice's choice: a file there is someone else's, so
    it is refused whatever the flags (``--overwrite`` included) and left as it was."""
    out = tmp_path / "expl"
    work = work_folder(out)
    work.write_bytes(b"not ours")
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(OutputExistsError, match="work folder; move it away"):
            _explain(city_model, tiny_city, out, **flags)
    assert work.read_bytes() == b"not ours" and not out.exists()


def test_unseen_only_on_training_houses_only_is_a_clear_error(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    city = tmp_path / "city"
    shutil.copytree(tiny_city, city)
    table = pd.read_csv(city / "houses.csv", dtype={"house_id": str})
    train = set(HousePriceModel.load(city_model).train_ids)
    table[table["house_id"].isin(train)].to_csv(city / "houses.csv", index=False)
    with pytest.raises(UserInputError, match="nothing to explain with --unseen-only"):
        _explain(city_model, city, tmp_path / "expl", test_only=True)
    assert not (tmp_path / "expl").exists() and not work_folder(tmp_path / "expl").exists()


def test_a_training_tile_gone_skips_the_scores_with_a_warning(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    """Evidence scores need every training house's tile (reference pairs, re-keyed database):
    with one deleted, the explanations are written and the scores are skipped, with a
    warning saying why (it used to crash in the database code)."""
    city = tmp_path / "city"
    shutil.copytree(tiny_city, city)
    first = HousePriceModel.load(city_model).train_ids[0]
    (city / "tiles" / f"{first}.png").unlink()
    with pytest.warns(UserWarning, match="evidence scores skipped: .*no usable tile now"):
        res = _explain(city_model, city, tmp_path / "expl", chunk_size=512)
    assert res.report is None and not (tmp_path / "expl" / "report.json").exists()
    assert (tmp_path / "expl" / "explanations.csv").is_file()


def test_a_run_killed_just_before_its_final_rename_is_run_again(
    reference, city_model: Path, tiny_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """finish() has dropped ``_job.json`` and written the manifest, then the process dies
    before the rename: the work folder is recognised (not "not written by houseprice"), and a
    changed one is never deleted."""
    import houseprice.jobs.explain_work as explain_work

    def die(*a, **kw):  # type: ignore[no-untyped-def]
        raise Interrupted

    out = tmp_path / "e"
    monkeypatch.setattr(explain_work, "swap_in_folder", die)
    with pytest.raises(Interrupted):
        _explain(city_model, tiny_city, out)
    monkeypatch.undo()
    work = work_folder(out)
    assert not out.exists() and not (work / "_job.json").exists()
    assert explain_work.unmoved_output(work)
    with pytest.raises(OutputExistsError, match="interrupted before it was moved onto"):
        _explain(city_model, tiny_city, out)
    with pytest.warns(UserWarning, match="all partitions are explained again"):
        res = _explain(city_model, tiny_city, out, resume=True)
    assert res.reused == 0 and not work.exists()
    got = _files(out)
    assert sorted(got) == sorted(reference)
    assert all(got[name] == data for name, data in reference.items())
    # the same state, but someone changed a file in it: not ours to delete any more
    monkeypatch.setattr(explain_work, "swap_in_folder", die)
    with pytest.raises(Interrupted):
        _explain(city_model, tiny_city, tmp_path / "f")
    monkeypatch.undo()
    changed = work_folder(tmp_path / "f")
    (changed / "report.md").write_text("my notes")
    assert not explain_work.unmoved_output(changed)
    for flags in ({"resume": True}, {"overwrite": True}):
        with pytest.raises(OutputExistsError, match="not written by houseprice explain"):
            _explain(city_model, tiny_city, tmp_path / "f", **flags)
    assert (changed / "report.md").read_text() == "my notes"
