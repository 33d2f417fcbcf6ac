"""The demo job: generate the synthetic city, import it as user data, train, evaluate, explain.

The demo goes through the user-data path (docs/import.md): the city's GeoParquet records
(``city/houses.parquet``) and its one georeferenced orthophoto (``city/orthophoto.tif``) are
imported with ``houseprice data import`` into ``data/``, which cuts every tile from the
orthophoto; the city's evaluation truth is then attached to ``data/``
(:func:`houseprice.synth.city.orthophoto.attach_truth`) so the oracle row and the evidence scores
still work. Training, evaluation and the map all read ``data/``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from houseprice.artifacts import check_output_folder, tree_files, write_manifest
from houseprice.errors import UserInputError
from houseprice.jobs.explain import explain_table
from houseprice.jobs.model import evaluate_folder, train
from houseprice.profiles import get_profile


@dataclass
class DemoResult:
    out: Path
    dataset: Path
    model: Path
    report_dir: Path
    report: dict[str, Any]
    map_html: Path | None
    seconds: dict[str, float]


def import_city(city: Path, data: Path, *, overwrite: bool, progress: bool) -> Path:
    """Import a synthetic city's GeoParquet records and orthophoto into ``data``, with its truth.

    The tiles are cut from ``orthophoto.tif`` at the city's ``tile_meters`` / ``tile_px``
    (``houseprice data import``), then ``truth/`` is copied in (``attach_truth``).
    """
    from houseprice.data.houses.folder import read_dataset_meta
    from houseprice.data.houses.importer import import_records
    from houseprice.synth.city import orthophoto

    meta = read_dataset_meta(city)
    import_records(
        city / orthophoto.GEOPARQUET_NAME,
        out=data,
        imagery=[city / orthophoto.ORTHOPHOTO_NAME],
        tile_meters=float(meta["tile_meters"]),
        tile_px=int(meta["tile_px"]),
        overwrite=overwrite,
        progress=progress,
        name=str(meta["name"]),
    )
    return orthophoto.attach_truth(data, city)


def run_demo(
    out: str | Path,
    *,
    profile: str = "standard",
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = True,
    n_houses: int | None = None,
) -> DemoResult:
    """Generate the synthetic city, import it as user data, train, evaluate, explain on a map.

    ``out`` must be new, empty, or a previous demo's output that nothing was added to or
    changed in (its ``manifest.json`` lists every file); anything else is refused, never
    deleted. With ``overwrite=False`` even a previous demo's output is refused.
    """
    from houseprice.synth.city import generate_city

    spec = get_profile(profile)
    if n_houses is not None and n_houses < 1:
        raise UserInputError(f"--houses must be at least 1, got {n_houses}")
    out = Path(os.path.abspath(out))
    check_output_folder(out, overwrite=overwrite)
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)  # houseprice's own previous demo, checked just above
    out.mkdir(parents=True, exist_ok=True)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    city = out / "city"
    generate_city(
        city,
        n_houses=spec.city.houses if n_houses is None else n_houses,
        seed=seed,
        progress=progress,
        overwrite=overwrite,
    )
    t["generate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = import_city(city, out / "data", overwrite=overwrite, progress=progress)
    t["import"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model_dir, _ = train(
        data,
        out / "model",
        profile=profile,
        seed=seed,
        device=device,
        overwrite=overwrite,
        progress=progress,
    )
    t["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = evaluate_folder(
        model_dir,
        data,
        out / "report",
        device=device,
        progress=progress,
        with_regressors=spec.train.with_regressors,
    )
    t["evaluate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    from houseprice.synth.city.orthophoto import ORTHOPHOTO_NAME

    res = explain_table(
        model_dir,
        data / "houses.csv",
        out / "explain",
        map_html=out / "map.html",
        device=device,
        progress=progress,
        test_only=True,
        label_masks=city / "masks",  # per-driver scores (the import keeps only the evidence)
        map_imagery=[city / ORTHOPHOTO_NAME],  # the orthophoto under the map
    )
    t["explain"] = time.perf_counter() - t0
    write_manifest(out, kind="houseprice-demo", version=1, files=tree_files(out))
    return DemoResult(
        out=out,
        dataset=data,
        model=model_dir,
        report_dir=out / "report",
        report=report,
        map_html=res.map_html,
        seconds=t,
    )
