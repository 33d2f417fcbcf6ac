"""Saved artifacts: atomic file and folder writes, checksums and folder manifests.

Everything that persists a model, a report or a dataset goes through these helpers so a crash
never leaves a half-written artifact behind: data goes to a temporary sibling first and is
moved into place with ``os.replace`` (atomic on POSIX for files on one filesystem).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; use the usual file mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN is refused: reports must be valid JSON)."""
    return atomic_write_text(
        path, json.dumps(obj, indent=2, allow_nan=False, sort_keys=False) + "\n"
    )


@contextlib.contextmanager
def atomic_directory(
    path: str | Path,
    *,
    overwrite: bool = False,
    kind: str = "houseprice-output",
    inputs: tuple[str | Path, ...] = (),
) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path`` in one rename.

    The new folder gets a ``manifest.json`` (format ``kind``, the SHA-256 of every file) unless
    the body wrote one itself: that is houseprice's mark of ownership. An existing non-empty
    ``path`` is replaced only with ``overwrite`` *and* only if :func:`check_replaceable` allows
    it (houseprice wrote it, nothing was added or changed since, it holds none of ``inputs``).
    The old folder is moved aside and deleted only after the new one is in place. On error the
    temporary folder is removed and ``path`` is left untouched.
    """
    path = Path(os.path.abspath(path))
    check_output_folder(path, overwrite=overwrite, inputs=inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if not (tmp / MANIFEST_NAME).exists():
            write_manifest(tmp, kind=kind, version=1, files=tree_files(tmp))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; use the usual folder mode
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_in_folder(tmp, path)


def swap_in_folder(new: Path, path: Path) -> Path:
    """Put the finished folder ``new`` at ``path`` in one rename (same file system); an
    existing ``path`` (already checked replaceable by the caller) is moved aside first and
    deleted only once the new folder is in place."""
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(new, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def check_output_folder(
    path: str | Path, *, overwrite: bool = False, inputs: tuple[str | Path, ...] = ()
) -> None:
    """Raise unless ``path`` may be written: absent or empty, or replaceable with ``overwrite``.

    Jobs call this before long work so that a refusal comes first, not after hours of training.
    """
    from houseprice.errors import OutputExistsError

    path = Path(os.path.abspath(path))
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a folder")
    replacing = path.exists() and any(path.iterdir())
    if replacing and not overwrite:
        raise OutputExistsError(f"{path} exists and is not empty; pass --overwrite to replace it")
    if replacing:
        check_replaceable(path, inputs=inputs)
    check_not_input(path, inputs)


def tree_files(folder: str | Path) -> list[str]:
    """Every regular file under ``folder`` as a relative POSIX path (the manifest excluded)."""
    folder = Path(folder)
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            rel = p.relative_to(folder).as_posix()
            if rel != MANIFEST_NAME:
                out.append(rel)
    return out


def check_not_input(path: Path, inputs: tuple[str | Path, ...]) -> None:
    """Refuse an output folder that is, or contains, one of the job's inputs (or the cwd)."""
    from houseprice.errors import OutputExistsError

    target = path.resolve()
    for item in (*inputs, Path.cwd()):
        p = Path(item).resolve()
        if p == target or target in p.parents:
            what = "the current folder" if Path(item) == Path.cwd() else f"the input {item}"
            raise OutputExistsError(
                f"{path}: refusing to write here: it is or contains {what}; choose another --out"
            )


def check_replaceable(path: str | Path, *, inputs: tuple[str | Path, ...] = ()) -> None:
    """Raise unless houseprice wrote ``path`` and nothing in it was added or changed since.

    Ownership is ``manifest.json`` with a ``houseprice-*`` format listing every file in the
    folder with its SHA-256. A folder without one, with files it does not list (e.g. the user
    put something there), or with a changed file is never deleted.
    """
    from houseprice.errors import OutputExistsError

    path = Path(path)
    check_not_input(path, inputs)
    refuse = f"{path}: refusing to replace it with --overwrite: "
    manifest = _manifest_or_none(path)
    kind = manifest.get("format") if manifest is not None else None
    if not isinstance(kind, str) or not kind.startswith("houseprice"):
        raise OutputExistsError(
            refuse + f"it was not written by houseprice (no houseprice {MANIFEST_NAME}); "
            "move it away or choose another --out"
        )
    listed = manifest.get("files", {})
    if not isinstance(listed, dict):
        raise OutputExistsError(refuse + f"its {MANIFEST_NAME} is damaged")
    extra = sorted(set(tree_files(path)) - set(listed))
    if extra:
        shown = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
        raise OutputExistsError(
            refuse + f"it holds {len(extra)} file(s) houseprice did not write ({shown})"
        )
    changed = [n for n, d in listed.items() if (path / n).is_file() and sha256_file(path / n) != d]
    if changed:
        raise OutputExistsError(
            refuse + f"{len(changed)} file(s) changed since houseprice wrote them "
            f"({', '.join(changed[:5])})"
        )


#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame: Any) -> Any:
    """A copy of a pandas frame whose text cells cannot run as spreadsheet formulas.

    A text cell starting with ``= + - @``, tab or CR gets a leading ``'`` (OWASP's rule);
    numbers, dates and booleans are untouched. Every CSV report houseprice writes for a person
    (predictions, explanations, refused rows, tile problems) goes through it; Parquet outputs
    and dataset tables that houseprice reads back keep the raw values.
    """
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v
            )
    return out


def atomic_write_csv(path: str | Path, frame: Any) -> Path:
    """Write a pandas frame as CSV atomically, with formula-like cells neutralised."""
    return atomic_write_text(path, csv_safe(frame).to_csv(index=False))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Manifests: one reader/writer for every saved houseprice folder (models, embedding nets,
# reports). ``manifest.json`` names the folder's format and version and the SHA-256 of every
# file in it (including the folder's own metadata JSON), so nothing in the folder can change
# unnoticed and nothing outside it is ever read.
# --------------------------------------------------------------------------------------------

MANIFEST_NAME = "manifest.json"
_MAX_JSON_BYTES = 64 << 20  # metadata JSON larger than this is not ours
_HEX = frozenset("0123456789abcdef")


def _plain_name(name: Any) -> bool:
    """A file name directly inside a folder: no separators, no '..', not hidden-absolute."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )


def _relative_name(name: Any) -> bool:
    """A relative POSIX path that stays inside the folder (for output manifests)."""
    return isinstance(name, str) and all(_plain_name(part) for part in name.split("/"))


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """Read a JSON object from a regular file; anything else is a :class:`FormatError`."""
    from houseprice.errors import FormatError

    path = Path(path)
    if not path.is_file():  # follows symlinks; FIFOs and devices are refused here
        raise FormatError(f"{path}: {what} missing (or not a regular file)")
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise FormatError(f"{path}: {what} is implausibly large ({path.stat().st_size} bytes)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{path}: {what} is not valid JSON ({err})") from err
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: {what} must be a JSON object, found {type(obj).__name__}")
    return obj


def write_manifest(
    folder: str | Path, *, kind: str, version: int, files: list[str] | tuple[str, ...]
) -> Path:
    """Write ``manifest.json`` listing the SHA-256 of ``files`` (plain names inside ``folder``)."""
    from houseprice import __version__

    folder = Path(folder)
    bad = [f for f in files if not _relative_name(f) or f == MANIFEST_NAME]
    if bad:
        raise ValueError(f"manifest entries must be relative file names in the folder, got {bad}")
    manifest = {
        "format": kind,
        "format_version": version,
        "houseprice_version": __version__,
        "files": {f: sha256_file(folder / f) for f in sorted(files)},
    }
    return atomic_write_json(folder / MANIFEST_NAME, manifest)


def read_manifest(
    folder: str | Path,
    *,
    kind: str,
    version: int,
    required: tuple[str, ...] = (),
    hint: str = "",
) -> dict[str, Any]:
    """Check a folder against its manifest; return the manifest.

    The format and version must match exactly (an ``int``), every listed name must be a plain
    regular file inside the folder with the listed digest, and every ``required`` file must be
    listed. Any failure is a :class:`~houseprice.errors.FormatError` naming the file.
    """
    from houseprice.errors import FormatError

    folder = Path(folder)
    suffix = f"; {hint}" if hint else ""
    if not folder.is_dir():
        raise FormatError(f"{folder}: not a folder{suffix}")
    path = folder / MANIFEST_NAME
    if not path.exists():
        raise FormatError(f"{folder}: not a {kind} folder (no {MANIFEST_NAME}){suffix}")
    manifest = read_json_object(path, "manifest")
    if manifest.get("format") != kind:
        raise FormatError(f"{path}: format is {manifest.get('format')!r}, expected {kind!r}")
    found = manifest.get("format_version")
    if type(found) is not int or found != version:
        raise FormatError(
            f"{path}: format_version {found!r} is not supported (this houseprice reads "
            f"{version}){suffix}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise FormatError(f"{path}: 'files' must be a non-empty object of name -> sha256")
    for name, digest in files.items():
        if not _plain_name(name):
            raise FormatError(f"{path}: {name!r} is not a plain file name inside the folder")
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _HEX):
            raise FormatError(f"{path}: checksum of {name!r} is not a SHA-256 hex digest")
    missing = [r for r in required if r not in files]
    if missing:
        raise FormatError(f"{path}: required file(s) {', '.join(missing)} not listed")
    for name, digest in files.items():
        p = folder / name
        if p.is_symlink() or not p.is_file():
            raise FormatError(f"{p}: listed in {MANIFEST_NAME} but missing or not a regular file")
        if sha256_file(p) != digest:
            raise FormatError(f"{p}: checksum mismatch (file changed or corrupted)")
    return manifest


def _manifest_or_none(folder: str | Path) -> dict[str, Any] | None:
    """A folder's manifest as a JSON object, or None when it has no readable one."""
    path = Path(folder) / MANIFEST_NAME
    try:
        obj = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None
