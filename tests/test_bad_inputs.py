"""Table-driven bad-input suite (issue 13): every hostile input is refused cleanly or handled.

Each row of :data:`CASES` builds its inputs in ``tmp_path`` (never the network), runs one
``houseprice`` command in-process through typer's ``CliRunner`` (or, where a crash could take
the interpreter down, in a subprocess) and checks the rule of the issue:

- the exit code is 2 (or 0 with a correct result where the row says so);
- the output names the problem (every ``needle`` regex matches);
- no traceback, no uncaught exception, no ``overwrite=True`` (the flag is ``--overwrite``);
- nothing was deleted or changed: the folders/files a row protects, and the session fixtures
  ``tiny_city`` / ``city_model``, have the same file list and SHA-256 digests afterwards.

A row that could hang (FIFOs, device names in manifests) runs under a timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from houseprice.jobs.stream import read_predictions

REPO = Path(__file__).resolve().parents[1]
EVIL_ID = "=cmd|' /C calc'!A0"
runner = CliRunner()


# ============================================================================ running commands
class CommandTimeout(BaseException):  # not Exception: `except Exception` must not eat it
    """A command ran longer than its row allows (a hang on a FIFO or a device file)."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def _raise(signum: int, frame: object) -> None:
        raise CommandTimeout(f"command did not finish within {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Outcome:
    code: int
    output: str
    crash: str | None  # formatted traceback of an uncaught exception (exit 1), else None


def invoke(argv: list[str], *, timeout: int) -> Outcome:
    with time_limit(timeout):
        res = runner.invoke(app, argv)
    crash = None
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        crash = "".join(traceback.format_exception(*res.exc_info))  # type: ignore[misc]
    return Outcome(res.exit_code, res.output, crash)


def invoke_subprocess(argv: list[str], *, timeout: int, cwd: Path | None = None) -> Outcome:
    """Run the console entry point in a fresh interpreter (survives a segfault; a timeout)."""
    cmd = [sys.executable, "-c", "from cli.main import main; main()", *argv]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        res = subprocess.run(
            cmd, cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"command did not finish within {timeout} s: {argv}") from e
    out = res.stdout + res.stderr
    return Outcome(res.returncode, out, out if "Traceback" in out else None)


# ============================================================================ snapshots
def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (or ``root`` itself if a file) -> sha256 / kind."""
    if not root.exists() and not root.is_symlink():
        return {"": "absent"}
    if not root.is_dir():
        return {"": _digest(root)}
    out = {"": "dir"}
    for p in sorted(root.rglob("*")):
        out[p.relative_to(root).as_posix()] = _digest(p)
    return out


def _digest(p: Path) -> str:
    if p.is_symlink():
        return "symlink->" + os.readlink(p)
    if p.is_dir():
        return "dir"
    if not p.is_file():  # FIFO, socket, device: never opened
        return "special"
    return hashlib.sha256(p.read_bytes()).hexdigest()


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ============================================================================ the case table
@dataclass
class Ctx:
    """Where a row builds its inputs; ``city``/``model`` are shared and must stay read-only."""

    tmp: Path
    city: Path  # the session's 160-house tiny_city
    model: Path  # the session's quick city_model
    small: Path  # a 40-house city (module scope) for the rows that really train

    def copy_city(self, name: str = "city2") -> Path:
        dst = self.tmp / name
        shutil.copytree(self.city, dst)
        return dst

    def copy_model(self, name: str = "model2") -> Path:
        dst = self.tmp / name
        shutil.copytree(self.model, dst)
        return dst

    def table(
        self,
        folder: Path,
        n: int = 12,
        *,
        name: str = "input.csv",
        mutate: Callable[[pd.DataFrame], None] | None = None,
    ) -> Path:
        """The first ``n`` rows of ``folder``'s houses.csv (no price), written in ``folder``."""
        df = pd.read_csv(folder / "houses.csv", dtype={"house_id": str}).head(n)
        df = df.drop(columns=["price"]).reset_index(drop=True)
        if mutate is not None:
            mutate(df)
        path = folder / name
        df.to_csv(path, index=False)
        return path

    @property
    def city_table(self) -> Path:
        return self.city / "houses.csv"


@dataclass
class Spec:
    """What a row's builder returns: the command line and what to check afterwards."""

    argv: list[object]
    protect: list[Path] = field(default_factory=list)  # must be byte-identical afterwards
    check: Callable[[str], None] | None = None  # extra assertions on the result
    cwd: Path | None = None


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Ctx], Spec]
    codes: tuple[int, ...] = (2,)
    needles: tuple[str, ...] = ()  # regexes that must all occur in the output
    timeout: int = 120
    in_subprocess: bool = False
    umask: int | None = None


CASES: list[Case] = []


def case(
    case_id: str,
    *needles: str,
    code: int | tuple[int, ...] = 2,
    timeout: int = 120,
    in_subprocess: bool = False,
    umask: int | None = None,
) -> Callable[[Callable[[Ctx], Spec]], Callable[[Ctx], Spec]]:
    def register(build: Callable[[Ctx], Spec]) -> Callable[[Ctx], Spec]:
        codes = code if isinstance(code, tuple) else (code,)
        CASES.append(Case(case_id, build, codes, needles, timeout, in_subprocess, umask))
        return build

    return register


def predict_args(model: Path, table: Path, out: Path, *extra: object) -> list[object]:
    return ["predict", "--model", model, "--input", table, "--out", out, "--quiet", *extra]


def train_args(data: Path, out: Path, *extra: object) -> list[object]:
    return ["train", "--data", data, "--out", out, "--profile", "quick", "--quiet", *extra]


def read_pred(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"house_id": str, "tile_problem": str})


def reseal(folder: Path, *names: str) -> None:
    """Recompute the manifest digests of ``names`` (a hostile edit that keeps checksums valid)."""
    man = json.loads((folder / "manifest.json").read_text())
    for n in names:
        man["files"][n] = sha256(folder / n)
    (folder / "manifest.json").write_text(json.dumps(man, indent=2))


def edit_json(path: Path, fn: Callable[[dict], object]) -> None:
    obj = json.loads(path.read_text())
    res = fn(obj)
    path.write_text(json.dumps(obj if res is None else res, indent=2))


# ---------------------------------------------------------------------------- 1. data loss
@case("train-out-is-its-data-overwrite", r"is or contains the input")
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()
    return Spec(train_args(city2, city2, "--overwrite"), protect=[city2])


def _demo_over(c: Ctx, rel: str) -> Spec:
    d = c.tmp / "d"
    (d / rel).parent.mkdir(parents=True)
    (d / rel).write_text("my notes\n")
    return Spec(["demo", "--out", d, "--houses", "60", "--profile", "quick", "--quiet"], [d])


@case("demo-over-user-file-in-city", r"not written by houseprice")
def _(c: Ctx) -> Spec:
    return _demo_over(c, "city/notes.txt")


@case("demo-over-user-file-in-model", r"not written by houseprice")
def _(c: Ctx) -> Spec:
    return _demo_over(c, "model/x")


@case("demo-over-unrelated-top-level-file", r"not written by houseprice")
def _(c: Ctx) -> Spec:
    return _demo_over(c, "unrelated.txt")


@case("train-out-dot-overwrite", r"current folder|not written by houseprice")
def _(c: Ctx) -> Spec:
    work = c.tmp / "work"
    work.mkdir()
    (work / "keep.txt").write_text("keep me\n")

    def check(out: str) -> None:
        stray = [p.name for p in c.tmp.iterdir() if p.name.startswith(".") and ".tmp" in p.name]
        assert not stray, f"temporary folders left next to the output: {stray}"

    return Spec(
        ["train", "--data", c.small, "--out", ".", "--overwrite", "--profile", "quick"],
        protect=[c.tmp],
        check=check,
        cwd=work,
    )


@case("overwrite-folder-not-written-by-houseprice", r"not written by houseprice")
def _(c: Ctx) -> Spec:
    foreign = c.tmp / "foreign"
    (foreign / "sub").mkdir(parents=True)
    (foreign / "a.txt").write_text("a")
    (foreign / "sub" / "b.txt").write_text("b")
    return Spec(train_args(c.small, foreign, "--overwrite"), protect=[foreign])


@case("overwrite-output-with-user-file-added", r"did not write")
def _(c: Ctx) -> Spec:
    m = c.copy_model()
    (m / "notes.txt").write_text("mine\n")
    return Spec(train_args(c.small, m, "--overwrite"), protect=[m])


@case("overwrite-output-with-file-edited", r"changed since houseprice wrote")
def _(c: Ctx) -> Spec:
    m = c.copy_model()
    with open(m / "regressor.txt", "a") as fh:
        fh.write("\n# my edit\n")
    return Spec(train_args(c.small, m, "--overwrite"), protect=[m])


@case("overwrite-unchanged-output-allowed", code=0)
def _(c: Ctx) -> Spec:
    m = c.copy_model()
    old_ids = json.loads((m / "model.json").read_text())["train_ids"]

    def check(out: str) -> None:
        new_ids = json.loads((m / "model.json").read_text())["train_ids"]
        assert new_ids != old_ids, "the folder was not replaced by the new model"
        small_ids = set(pd.read_csv(c.small / "houses.csv", dtype=str)["house_id"])
        assert set(new_ids) <= small_ids
        leftovers = [p.name for p in c.tmp.iterdir() if p.name.startswith(".")]
        assert not leftovers, f"temporary/old folders left behind: {leftovers}"

    return Spec(train_args(c.small, m, "--overwrite"), check=check)


@case("predict-out-existing-csv-refused", r"exists; pass --overwrite")
def _(c: Ctx) -> Spec:
    out = c.tmp / "existing.csv"
    out.write_text("precious,data\n1,2\n")
    return Spec(predict_args(c.model, c.city_table, out), protect=[out])


@case("predict-out-existing-csv-overwrite-allowed", code=0)
def _(c: Ctx) -> Spec:
    out = c.tmp / "existing.csv"
    out.write_text("precious,data\n1,2\n")

    def check(text: str) -> None:
        pred = read_pred(out)
        assert len(pred) == 160 and (pred["predicted_price"] > 0).all()

    return Spec(predict_args(c.model, c.city_table, out, "--overwrite"), check=check)


@case("predict-out-is-the-input-table", r"is the input table")
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()
    t = c.table(city2)
    return Spec(predict_args(c.model, t, t, "--overwrite"), protect=[city2])


# ---------------------------------------------------------------------------- 2. --weights
@case("weights-path-missing", r"nope\.pth.*not found|not found.*nope\.pth")
def _(c: Ctx) -> Spec:
    return Spec(train_args(c.small, c.tmp / "m", "--weights", c.tmp / "nope.pth"))


WEIGHTS_REFUSED = r"w\.pth: (not a readable (state dict|weights file)|expected a state dict)"


@case("weights-not-a-state-dict", WEIGHTS_REFUSED)
def _(c: Ctx) -> Spec:
    w = c.tmp / "w.pth"
    w.write_bytes(b"this is not a torch file\n" * 10)
    return Spec(train_args(c.small, c.tmp / "m", "--weights", w))


@case("weights-dict-of-non-tensors", WEIGHTS_REFUSED)
def _(c: Ctx) -> Spec:
    import torch

    w = c.tmp / "w.pth"
    torch.save({"stem.0.weight": [1, 2, 3], "note": "hello"}, w)
    return Spec(train_args(c.small, c.tmp / "m", "--weights", w))


@case("weights-resnet18-for-compact", r"do not fit")
def _(c: Ctx) -> Spec:
    import torch
    import torchvision

    w = c.tmp / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), w)
    return Spec(train_args(c.small, c.tmp / "m", "--weights", w), protect=[w])


@case("weights-constant-conv1-are-used", code=0)
def _(c: Ctx) -> Spec:
    import torch

    from houseprice.vision.backbones import build_backbone

    state = build_backbone("compact").state_dict()
    first = next(k for k, v in state.items() if k.endswith("weight") and v.dim() == 4)
    state[first] = torch.full_like(state[first], 0.05)
    w = c.tmp / "const.pth"
    torch.save(state, w)
    with_w, without = c.tmp / "with", c.tmp / "without"

    def check(out: str) -> None:
        base = invoke([str(a) for a in train_args(c.small, without, "--seed", "0")], timeout=120)
        assert base.code == 0 and base.crash is None, base.output + (base.crash or "")
        assert sha256(with_w / "siamese.safetensors") != sha256(without / "siamese.safetensors")
        meta_text = (with_w / "model.json").read_text()
        assert "weights_sha256" in meta_text and sha256(w) in meta_text
        assert "weights_sha256" not in (without / "model.json").read_text()

    return Spec(train_args(c.small, with_w, "--weights", w, "--seed", "0"), check=check)


# ---------------------------------------------------------------------------- 3. hostile tiles
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png() -> bytes:
    """A 69-byte PNG whose header claims 30000 x 30000 RGB pixels (hand-made IHDR)."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4)
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
    png += _png_chunk(b"IEND", b"")
    assert len(png) == 69
    return png


def _make_bomb(p: Path, city: Path) -> None:
    p.write_bytes(bomb_png())


def _make_fifo(p: Path, city: Path) -> None:
    os.mkfifo(p)


def _make_truncated(p: Path, city: Path) -> None:
    data = (city / "tiles" / sorted(os.listdir(city / "tiles"))[5]).read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _make_dir(p: Path, city: Path) -> None:
    p.mkdir()
    (p / "inside.txt").write_text("not an image")


def _grey_of_first_tile(city: Path) -> np.ndarray:
    from PIL import Image

    first = city / "tiles" / sorted(os.listdir(city / "tiles"))[0]
    return np.asarray(Image.open(first).convert("L"), dtype=np.uint16)


def _make_16bit(p: Path, city: Path) -> None:
    from PIL import Image

    im = Image.fromarray((_grey_of_first_tile(city) * 257).astype(np.uint16))
    assert im.mode == "I;16"
    im.save(p, format="PNG")


def _hostile_tile_case(maker: Callable[[Path, Path], None], name: str) -> Callable[[Ctx], Spec]:
    def build(c: Ctx) -> Spec:
        city2 = c.copy_city()
        maker(city2 / "tiles" / name, city2)

        def mutate(df: pd.DataFrame) -> None:
            df.loc[0, "image"] = f"tiles/{name}"

        t = c.table(city2, mutate=mutate)
        out = c.tmp / "p.csv"

        def check(text: str) -> None:
            pred = read_pred(out)
            assert len(pred) == 12 and np.isfinite(pred["predicted_price"]).all()
            assert (pred["predicted_price"] > 0).all()
            assert pred["used_visual"].tolist()[1:] == [True] * 11
            row = pred.iloc[0]
            if name == "i16.png" and bool(row["used_visual"]):
                return  # converted: checked by the 16-bit row's own pixel check
            assert not bool(row["used_visual"]), "a hostile tile was used for visual features"
            assert isinstance(row["tile_problem"], str) and name in row["tile_problem"]
            assert str(c.tmp) not in row["tile_problem"]

        return Spec(predict_args(c.model, t, out), check=check)

    return build


for _name, _maker, _id in [
    ("bomb.png", _make_bomb, "tile-69-byte-png-claiming-30000x30000"),
    ("fifo.png", _make_fifo, "tile-fifo-named-png"),
    ("i16.png", _make_16bit, "tile-16-bit-png"),
    ("trunc.png", _make_truncated, "tile-truncated-png"),
    ("dir.png", _make_dir, "tile-directory-named-png"),
]:
    case(_id, code=0, timeout=60)(_hostile_tile_case(_maker, _name))


def test_16_bit_tile_is_not_white(tmp_path: Path, tiny_city: Path) -> None:
    """Row 7 of the issue: an I;16 tile is read as its grey levels, or refused; never white."""
    from houseprice.data.houses.tiles import read_tile

    p = tmp_path / "i16.png"
    _make_16bit(p, tiny_city)
    try:
        px = read_tile(p, 64)
    except ValueError as e:  # refused per row: acceptable
        assert "i16.png" in str(e)
        return
    assert not (px == 255).all(), "16-bit tile read as all white"
    expected = _grey_of_first_tile(tiny_city).astype(np.float64)
    assert np.abs(px[..., 0].astype(np.float64) - expected).mean() < 2.0


def _validate_tiles(c: Ctx, *extra: str) -> Spec:
    city2 = c.copy_city()
    _make_truncated(city2 / "tiles" / "trunc.png", city2)
    df = pd.read_csv(city2 / "houses.csv", dtype=str, keep_default_na=False)
    df.loc[3, "image"] = "tiles/trunc.png"
    df.to_csv(city2 / "houses.csv", index=False)
    return Spec(["data", "validate", city2, "--for", "train", *extra], protect=[city2])


@case("validate-reports-unreadable-tile", r"row 4, column 'image'.*trunc\.png")
def _(c: Ctx) -> Spec:
    return _validate_tiles(c)


@case("validate-no-tiles-skips-tile-check", r"valid \(160\s+rows\)", code=0)
def _(c: Ctx) -> Spec:
    return _validate_tiles(c, "--no-tiles")


# ---------------------------------------------------------------------------- 4. CSV injection
def _evil(df: pd.DataFrame) -> None:
    df.loc[0, "house_id"] = EVIL_ID


@case("formula-id-predict-csv-is-quoted", code=0)
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()
    t, out = c.table(city2, mutate=_evil), c.tmp / "p.csv"

    def check(text: str) -> None:
        cell = pd.read_csv(out, dtype=str)["house_id"].iloc[0]
        assert cell == "'" + EVIL_ID

    return Spec(predict_args(c.model, t, out), check=check)


@case("formula-id-predict-parquet-keeps-raw", code=0)
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()
    t, out = c.table(city2, mutate=_evil), c.tmp / "p.parquet"

    def check(text: str) -> None:
        assert read_predictions(out)["house_id"].iloc[0] == EVIL_ID

    return Spec(predict_args(c.model, t, out), check=check)


@case("formula-id-explanations-csv-is-quoted", code=0)
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()
    t, out = c.table(city2, n=6, mutate=_evil), c.tmp / "e"

    def check(text: str) -> None:
        table = pd.read_csv(out / "explanations.csv", dtype=str)
        assert table["house_id"].iloc[0] == "'" + EVIL_ID
        assert not any(str(v).startswith(("=", "+", "@")) for v in table.to_numpy().ravel())

    return Spec(["explain", "--model", c.model, "--input", t, "--out", out, "--quiet"], check=check)


# ---------------------------------------------------------------------------- 5. explain subset
@case("explain-first-5-rows-of-city-table", code=(0, 2))
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()
    df = pd.read_csv(city2 / "houses.csv", dtype=str, keep_default_na=False).head(5)
    df.to_csv(city2 / "first5.csv", index=False)
    out = c.tmp / "e"

    def check(text: str) -> None:
        if (out / "explanations.csv").exists():
            assert len(pd.read_csv(out / "explanations.csv")) == 5
            assert (out / "map.html").stat().st_size > 1000
        else:
            assert re.search(r"error: .*first5\.csv", text), text

    argv = ["explain", "--model", c.model, "--input", city2 / "first5.csv", "--out", out]
    return Spec([*argv, "--map", out / "map.html", "--quiet"], check=check)


# ---------------------------------------------------------------------------- 6. --attributes
@case("attributes-include-price", r"--attributes may not include price")
def _(c: Ctx) -> Spec:
    return Spec(train_args(c.small, c.tmp / "m", "--attributes", "G,price"))


@case("attributes-none", r"--attributes 'none' names no attribute")
def _(c: Ctx) -> Spec:
    return Spec(train_args(c.small, c.tmp / "m", "--attributes", "none"))


@case("attributes-only-commas", r"--attributes ',,,' names no attribute")
def _(c: Ctx) -> Spec:
    return Spec(train_args(c.small, c.tmp / "m", "--attributes", ",,,"))


# ---------------------------------------------------------------------------- 8. model folders
def _model_case(mutate: Callable[[Path], None]) -> Callable[[Ctx], Spec]:
    def build(c: Ctx) -> Spec:
        m = c.copy_model()
        mutate(m)
        out = c.tmp / "p.csv"

        def check(text: str) -> None:
            assert not out.exists(), "a prediction was written from a damaged model folder"

        return Spec(predict_args(m, c.city_table, out), protect=[m], check=check)

    return build


def _append_space(m: Path) -> None:
    with open(m / "model.json", "a") as fh:
        fh.write(" ")


def _manifest_key(key: str) -> Callable[[Path], None]:
    def mutate(m: Path) -> None:
        edit_json(m / "manifest.json", lambda man: man["files"].update({key: "0" * 64}))

    return mutate


def _truncate_regressor(m: Path) -> None:
    text = (m / "regressor.txt").read_text()
    (m / "regressor.txt").write_text(text[: len(text) // 2])
    reseal(m, "regressor.txt")


def _model_json(fn: Callable[[dict], object]) -> Callable[[Path], None]:
    def mutate(m: Path) -> None:
        edit_json(m / "model.json", fn)
        reseal(m, "model.json")

    return mutate


def _invalid_json(m: Path) -> None:
    (m / "model.json").write_text('{"format": "houseprice-model", oops')
    reseal(m, "model.json")


for _id, _mutate, _needle, _extra in [
    ("model-json-edited", _append_space, r"model\.json: checksum mismatch", {}),
    ("manifest-key-dev-zero", _manifest_key("/dev/zero"), r"'/dev/zero' is not a plain", {}),
    ("manifest-key-dotdot", _manifest_key("../x"), r"'\.\./x' is not a plain file name", {}),
    (
        "manifest-files-empty",
        lambda m: edit_json(m / "manifest.json", lambda man: man.update(files={})),
        r"'files' must be a non-empty object",
        {},
    ),
    ("regressor-truncated-resealed", _truncate_regressor, r"regressor\.txt", {"sub": True}),
    ("model-json-is-a-list", _model_json(lambda meta: [meta]), r"must be a JSON object", {}),
    (
        "model-json-unknown-key",
        _model_json(lambda meta: meta.update(surprise=1)),
        r"model\.json.*surprise",
        {},
    ),
    (
        "model-json-feature-dim-changed",
        _model_json(lambda meta: meta["config"]["siamese"].update(feature_dim=7)),
        r"(siamese\.safetensors|model\.json).*(do not fit|does not fit)",
        {},
    ),
    ("model-json-invalid-json", _invalid_json, r"model\.json.*not valid JSON", {}),
    (
        "manifest-format-version-string",
        lambda m: edit_json(m / "manifest.json", lambda man: man.update(format_version="1")),
        r"format_version '1' is not supported",
        {},
    ),
    (
        "model-json-format-version-string",
        _model_json(lambda meta: meta.update(format_version="2")),
        r"model\.json.*format_version",
        {},
    ),
]:
    case(_id, _needle, timeout=30 if not _extra else 180, in_subprocess=bool(_extra))(
        _model_case(_mutate)
    )


# ---------------------------------------------------------------------------- 9. options
for _dev in ("tpu", "", "meta"):

    @case(f"device-{_dev or 'empty'}", r"--device '?" + re.escape(_dev))
    def _(c: Ctx, dev: str = _dev) -> Spec:
        return Spec(predict_args(c.model, c.city_table, c.tmp / "p.csv", "--device", dev))


@case("folds-50-on-20-houses", r"--folds 50 is too many")
def _(c: Ctx) -> Spec:
    from houseprice.synth.city import generate_city

    city = generate_city(c.tmp / "c20", n_houses=20, seed=1, progress=False)
    return Spec(train_args(city, c.tmp / "m", "--folds", "50"), protect=[city])


@case("synth-city-tile-px-20000", r"--tile-px")
def _(c: Ctx) -> Spec:
    out = c.tmp / "c"

    def check(text: str) -> None:
        assert not out.exists()

    return Spec(["data", "synth-city", "--out", out, "--tile-px", "20000", "--quiet"], check=check)


@case("predict-out-existing-folder", r"is a folder")
def _(c: Ctx) -> Spec:
    folder = c.tmp / "results"
    folder.mkdir()
    (folder / "old.csv").write_text("a\n1\n")
    return Spec(predict_args(c.model, c.city_table, folder), protect=[folder])


# ---------------------------------------------------------------------------- 10. tables
HEADER = "house_id,latitude,longitude,bedrooms,bathrooms,sold_date,area_sqft,price\n"
ROW_A = "A,43.70,-79.40,3,2,2018-03-01,1500,500000\n"


def _table_case(data: bytes, *args: str, name: str = "h.csv") -> Callable[[Ctx], Spec]:
    def build(c: Ctx) -> Spec:
        p = c.tmp / name
        p.write_bytes(data)
        return Spec(["data", "validate", p, *args], protect=[p])

    return build


RAGGED = r"h\.csv: .*(well-formed|fields)"
LATIN1 = (HEADER + ROW_A).encode() + "Bé,43.71,-79.41,2,1,2018-04-01,900,400000\n".encode("latin-1")

for _id, _data, _args, _needle in [
    ("table-latin-1", LATIN1, (), r"h\.csv: line 3 is not UTF-8"),
    ("table-zero-bytes", b"", (), r"h\.csv: the file is empty"),
    ("table-ragged-row", (HEADER + ROW_A + "C,1,2,3,4,5,6,7,8,9\n").encode(), (), RAGGED),
    ("table-header-only-validate", HEADER.encode(), ("--for", "train"), r"header but no rows"),
    (  # found by tests/data/test_records_hypothesis.py
        "table-nul-byte-in-image-path",
        b"house_id,latitude,longitude,image\nA,43.7,-79.4,tiles/a\x00.png\n",
        (),
        r"h\.csv.*\n.*row 1, column 'image'",
    ),
]:
    case(_id, _needle)(_table_case(_data, *_args))


@case("table-header-only-train", r"header but no rows")
def _(c: Ctx) -> Spec:
    p = c.tmp / "h.csv"
    p.write_text(HEADER)
    return Spec(train_args(p, c.tmp / "m"), protect=[p])


@case(
    "table-implausible-dates-and-area-warn",
    r"warning: .*sold_date outside the plausible range",
    r"warning: .*area_sqft outside the plausible range",
    code=0,
)
def _(c: Ctx) -> Spec:
    p = c.tmp / "h.csv"
    p.write_text(
        HEADER
        + ROW_A
        + "B,43.71,-79.41,2,1,2099-01-01,900,400000\n"
        + "C,43.72,-79.42,2,1,1066-10-14,900,400000\n"
        + "D,43.73,-79.43,2,1,2018-05-01,1e300,400000\n"
    )
    return Spec(["data", "validate", p, "--for", "train"], protect=[p])


@case("demo-houses-0", r"--houses")
def _(c: Ctx) -> Spec:
    return Spec(["demo", "--out", c.tmp / "d", "--houses", "0", "--profile", "quick", "--quiet"])


@case("synth-birds-classes-0", r"--classes")
def _(c: Ctx) -> Spec:
    return Spec(["data", "synth-birds", "--out", c.tmp / "b", "--classes", "0", "--quiet"])


@case("overwrite-message-names-the-flag", r"pass --overwrite")
def _(c: Ctx) -> Spec:
    out = c.tmp / "c"
    argv = ["data", "synth-city", "--out", str(out), "--houses", "5", "--tile-px", "8", "--quiet"]
    first = invoke(argv, timeout=60)
    assert first.code == 0, first.output
    return Spec(argv, protect=[out])  # the global rule refuses "overwrite=True" in the output


# ---------------------------------------------------------------------------- 11. misc
@case("bench-model-is-a-house-price-model", r"holds no embedding net")
def _(c: Ctx) -> Spec:
    m = c.copy_model()
    argv = ["bench", "explainers", "--model", m, "--data", c.tmp / "birds", "--out", c.tmp / "b"]
    return Spec([*argv, "--profile", "quick", "--quiet"], protect=[m])


def _no_local_paths(text: str, c: Ctx) -> None:
    for local in {str(c.tmp), str(c.tmp.resolve()), str(REPO)}:
        assert local not in text, f"output names a local path {local}"


def _two_bad_tiles(df: pd.DataFrame) -> None:
    df.loc[0, "image"] = "tiles/does_not_exist.png"
    df.loc[1, "image"] = "tiles/trunc.png"


@case("predict-csv-has-no-absolute-paths", code=0)
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()
    _make_truncated(city2 / "tiles" / "trunc.png", city2)
    t, out = c.table(city2, mutate=_two_bad_tiles), c.tmp / "p.csv"

    def check(text: str) -> None:
        pred = read_pred(out)
        assert pred["tile_problem"].notna().tolist()[:2] == [True, True]
        _no_local_paths(out.read_text(), c)

    return Spec(predict_args(c.model, t, out), check=check)


@case("explanations-csv-has-no-absolute-paths", code=0)
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()
    _make_truncated(city2 / "tiles" / "trunc.png", city2)
    t, out = c.table(city2, n=6, mutate=_two_bad_tiles), c.tmp / "e"

    def check(text: str) -> None:
        _no_local_paths((out / "explanations.csv").read_text(), c)

    return Spec(["explain", "--model", c.model, "--input", t, "--out", out, "--quiet"], check=check)


@case("model-folder-modes-follow-umask", code=0, umask=0o022)
def _(c: Ctx) -> Spec:
    m = c.tmp / "m"

    def check(text: str) -> None:
        modes = {p.name: p.stat().st_mode & 0o777 for p in [m, *m.iterdir()]}
        bad = {n: oct(v) for n, v in modes.items() if v & 0o044 != 0o044}
        assert not bad, f"group/other cannot read (umask 022): {bad}"
        assert modes["m"] == 0o755

    return Spec(train_args(c.small, m), check=check)


@case("predict-far-outside-training-area-warns", r"training area.*extrapolation", code=0)
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()

    def far(df: pd.DataFrame) -> None:
        df.loc[:2, "latitude"] = df.loc[:2, "latitude"] + 2.0

    return Spec(predict_args(c.model, c.table(city2, mutate=far), c.tmp / "p.csv"))


@case("predict-far-outside-training-period-warns", r"training period.*extrapolation", code=0)
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()

    def late(df: pd.DataFrame) -> None:
        df.loc[:2, "sold_date"] = "2022-06-01"

    return Spec(predict_args(c.model, c.table(city2, mutate=late), c.tmp / "p.csv"))


# ============================================================================ the test
@pytest.fixture(scope="module")
def small_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-house city: the rows that really train use it (about a second per training)."""
    from houseprice.synth.city import generate_city

    return generate_city(
        tmp_path_factory.mktemp("small") / "city", n_houses=40, seed=5, progress=False
    )


@pytest.mark.parametrize("row", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    row: Case,
    tmp_path: Path,
    tiny_city: Path,
    city_model: Path,
    small_city: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = Ctx(tmp=tmp_path, city=tiny_city, model=city_model, small=small_city)
    check_row(row, ctx, monkeypatch)


def check_row(row: Case, ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    """Build ``row``'s inputs, run its command and check every rule of the module docstring."""
    shared = {p: snapshot(p) for p in (ctx.city, ctx.model, ctx.small)}
    spec = row.build(ctx)
    before = {p: snapshot(p) for p in spec.protect}
    argv = [str(a) for a in spec.argv]
    old_mask = os.umask(row.umask) if row.umask is not None else None
    try:
        if row.in_subprocess:
            res = invoke_subprocess(argv, timeout=row.timeout, cwd=spec.cwd)
        else:
            if spec.cwd is not None:
                monkeypatch.chdir(spec.cwd)
            res = invoke(argv, timeout=row.timeout)
    finally:
        if old_mask is not None:
            os.umask(old_mask)
        monkeypatch.chdir(REPO)
    shown = f"argv: {argv}\nexit {res.code}\n{res.output}\n{res.crash or ''}"
    assert res.crash is None, f"uncaught exception\n{shown}"
    assert "Traceback" not in res.output, shown
    assert res.code in row.codes, shown
    for needle in row.needles:
        assert re.search(needle, res.output), f"expected /{needle}/ in the output\n{shown}"
    assert "overwrite=True" not in res.output, shown
    for p, snap in before.items():
        assert snapshot(p) == snap, f"{p} changed or lost files\n{shown}"
    if spec.check is not None:
        spec.check(res.output)
    for p, snap in shared.items():
        assert snapshot(p) == snap, f"shared fixture {p} was modified"
