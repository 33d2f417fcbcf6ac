"""The model jobs: train a model folder, price a table, evaluate on the held-out split.

Each job takes paths and options, does the work through the library and returns plain results
(paths, dicts, frames), so the typer commands stay thin and notebooks can call the same jobs.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from houseprice.artifacts import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_output_folder,
)
from houseprice.data.houses import load_any, load_dataset
from houseprice.errors import UserInputError
from houseprice.jobs.launch import finish_ranks, init_ranks
from houseprice.jobs.outputs import write_csv
from houseprice.jobs.stream import DEFAULT_CHUNK
from houseprice.pricing.attributes import FULL_SET, parse_attribute_set
from houseprice.pricing.dask_fit import fit_on_dask
from houseprice.profiles import get_profile
from houseprice.valuation.config import TrainConfig, profile_config
from houseprice.valuation.evaluate import evaluate
from houseprice.valuation.folder import kernel_note
from houseprice.valuation.model import HousePriceModel, fit_local
from houseprice.valuation.report import plot_predictions, report_markdown

TRAIN_ENGINES = ("local", "dask")  # where the tabular stage is fitted


def train(
    data: str | Path,
    out: str | Path,
    *,
    profile: str = "standard",
    attributes: str = ",".join(FULL_SET),
    backbone: str | None = None,
    weights: str | None = None,
    all_data: bool = False,
    folds: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    config: TrainConfig | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
) -> tuple[Path, HousePriceModel]:
    """Train a model on a dataset folder (or table) and write the model folder.

    ``folds`` overrides the profile's cross-fitting folds for the training rows' visual
    features (0 = naive: one net on all training rows, in-sample features). ``engine="dask"``
    fits the price regressors with ``lightgbm.dask`` on the cluster at ``scheduler`` (or a
    LocalCluster of ``workers`` processes); the model folder has the same format either way
    (docs/scaling.md, "Training on Dask").
    """
    from houseprice.valuation.gradweights import build_gradweight_writer

    if engine not in TRAIN_ENGINES:
        raise UserInputError(f"--engine must be one of {', '.join(TRAIN_ENGINES)}, got {engine!r}")
    if engine == "local" and (scheduler is not None or workers is not None):
        raise UserInputError("--scheduler and --workers need --engine dask")
    spec = get_profile(profile)
    check_output_folder(out, overwrite=overwrite, inputs=(data,))  # before hours of training
    ds = load_any(data, purpose="train")
    extra = tuple(str(c) for c in ds.records.columns)
    letters = parse_attribute_set(attributes, extra)
    if not letters and config is None:
        raise UserInputError(
            f"--attributes {attributes!r} names no attribute; a model needs at least one (its "
            "no-visual fallback prices houses without a tile): e.g. G,Bed,Bath,T,A"
        )
    cfg = config or profile_config(profile, attributes=letters, backbone=backbone, seed=seed)
    if spec.train.needs_weights and weights is None and config is None:
        raise UserInputError(
            f"--profile {spec.name} needs ImageNet weights from a local file: pass "
            "--weights PATH (a torchvision resnet50 state dict or .safetensors)"
        )
    check_weights(weights, cfg)  # before any training: missing or misfit is exit 2
    cfg.weights = weights
    cfg.use_all_rows = all_data
    if folds is not None:
        if folds == 1 or folds < 0:
            raise UserInputError(f"--folds must be 0 (naive, in-sample) or at least 2, got {folds}")
        cfg.n_folds = folds
    with contextlib.ExitStack() as stack:
        # under torchrun (``--nproc``): join the process group; the siamese nets train
        # data-parallel (houseprice.vision.siamese.distributed), rank 0 alone writes --out
        rank, world = init_ranks(device)
        stack.callback(finish_ranks)
        fit_regressor = fit_local
        if engine == "dask":
            client = stack.enter_context(train_client(scheduler, workers))
            fit_regressor = functools.partial(fit_on_dask, client=client)
        model = HousePriceModel.fit(
            ds, cfg, device=device, progress=progress and rank == 0, fit_regressor=fit_regressor
        )
        if engine == "dask":
            model.info["tabular_engine"] = dask_info(client, model)
        if world > 1:
            model.info["siamese_processes"] = world
    if rank != 0:
        return Path(out), model
    writer = None
    if model.featurizer is not None:
        writer = build_gradweight_writer(model, ds, device=device, progress=progress)
    path = model.save(out, overwrite=overwrite, extra_writer=writer, inputs=(data,))
    return path, model


@contextlib.contextmanager
def train_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A Dask client for training (:func:`houseprice.jobs.engines.dask_client`: a scheduler
    that cannot be reached, or a malformed address, is a ``UserInputError``)."""
    from houseprice.jobs.engines import dask_client

    if workers is not None and workers < 1:
        raise UserInputError(f"--workers must be at least 1, got {workers}")
    with dask_client(scheduler, workers) as client:
        yield client


def dask_info(client: Any, model: HousePriceModel) -> dict[str, Any]:
    """What model.json records of a Dask-trained tabular stage (not the cluster's addresses)."""
    regs = [r for r in (model.regressor_no_visual, model.regressor) if r is not None]
    return {
        "engine": "dask",
        "workers": len(client.nthreads()),
        "partitions": [int(getattr(r, "dask_partitions_", 0)) for r in regs],
        "tree_learner": "data",
    }


def predict(
    model_dir: str | Path,
    table: str | Path,
    out: str | Path,
    *,
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = False,
    imagery: list[Path] | None = None,
    contributions: bool = False,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    partitions: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    resume: bool = False,
    collect: bool = True,
    interval: float | None = None,
) -> tuple[Path, pd.DataFrame | None, int]:
    """Price every row of a table; returns the output path, the frame and #fallback rows.

    With ``imagery`` (GeoTIFF/COG orthophotos) the table may be any importable file (CSV,
    Parquet, GeoParquet, GeoPackage, any CRS) and tiles are cut on the fly; rows that cannot
    be read are written to ``<out>.rejected.csv``, never dropped silently. ``contributions``
    adds each house's price split in money (``base_price``, ``contrib_*``).

    Rows are scored ``chunk_size`` at a time into partition files (docs/scaling.md): ``out``
    ``.csv`` is one CSV (the same bytes whatever the chunking); ``.parquet`` is a folder of
    partitions with ``manifest.json`` written last (read it with
    :func:`houseprice.jobs.stream.read_predictions`). ``resume`` keeps the partitions an
    interrupted run of the same job finished; ``engine="dask"`` scores partitions on a Dask
    cluster (``scheduler`` address, or a LocalCluster of ``workers`` processes). ``collect``
    returns the whole frame (None otherwise: memory then stays flat in the table's size).
    """
    from houseprice.jobs.engines import score_table

    res = score_table(
        model_dir,
        table,
        out,
        device=device,
        progress=progress,
        overwrite=overwrite,
        imagery=imagery,
        contributions=contributions,
        engine=engine,
        scheduler=scheduler,
        workers=workers,
        partitions=partitions,
        chunk_size=chunk_size,
        resume=resume,
        collect=collect,
        interval=interval,
    )
    return res.path, res.frame, res.n_fallback


def calibrate_folder(
    model_dir: str | Path, data: str | Path, *, overwrite: bool = False
) -> tuple[Path, HousePriceModel]:
    """Add the price-range calibration to a model folder saved without one (or, with
    ``overwrite``, replace it), from the dataset it was trained on; no net is retrained.

    The folder is rewritten only if houseprice wrote it and nothing in it changed since.
    """
    from houseprice.artifacts import check_replaceable
    from houseprice.errors import OutputExistsError
    from houseprice.valuation.calibration import add_calibration, calibrate_rows
    from houseprice.valuation.evaluate import EvaluationError

    model = HousePriceModel.load(model_dir)
    if model.calibration is not None and not overwrite:
        raise OutputExistsError(
            f"{model_dir} already has a price-range calibration; pass --overwrite to replace it"
        )
    check_replaceable(model_dir, inputs=(data,))
    rec = load_any(data, purpose="train").records
    pos = {h: i for i, h in enumerate(rec["house_id"].astype(str))}
    missing = [h for h in model.train_ids if h not in pos]
    if missing:
        raise EvaluationError(
            f"{len(missing)} of the model's {len(model.train_ids)} training houses are not in "
            f"{data} (e.g. {missing[0]!r}); pass the dataset the model was trained on"
        )
    train_rows = rec.iloc[[pos[h] for h in model.train_ids]]
    model.calibration = calibrate_rows(model.config, train_rows, model.train_features)
    return add_calibration(model_dir, model.calibration), model


def check_weights(weights: str | None, config: TrainConfig) -> None:
    """Refuse a --weights file that is missing or does not fit the configured backbone."""
    from houseprice.vision.backbones import build_backbone, load_backbone_weights

    if weights is not None:
        load_backbone_weights(build_backbone(config.siamese.backbone), weights)


def write_report(report: dict[str, Any], preds: pd.DataFrame, out_dir: str | Path) -> Path:
    """Write report.json, report.md, predictions.csv and the plot into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "predictions.png", plot_predictions(preds))
    ratio_plot = None
    if "ratio_study" in report:
        from houseprice.valuation.assessment_report import plot_ratio_study

        ratio_plot = "ratio_study.png"
        png = plot_ratio_study(preds["price"], preds["predicted_price"], report["ratio_study"])
        atomic_write_bytes(out / ratio_plot, png)
    write_csv(preds, out / "predictions.csv")
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", report_markdown(report, "predictions.png", ratio_plot))
    return out


def evaluate_folder(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    device: str = "cpu",
    progress: bool = True,
    with_regressors: bool = True,
    overwrite: bool = False,
    split: str = "test",
) -> dict[str, Any]:
    """Evaluate a trained model on its dataset and write report.json / report.md.

    ``out`` is written atomically; an existing one is replaced only with ``overwrite`` and only
    if houseprice wrote it.
    """
    model = HousePriceModel.load(model_dir)
    if note := kernel_note(model_dir):
        warnings.warn(note, stacklevel=2)
    ds = (
        load_dataset(data, purpose="train")
        if Path(data).is_dir()
        else load_any(data, purpose="train")
    )
    if split not in ("test", "validation"):
        raise UserInputError(f"--split must be test or validation, got {split!r}")
    report, preds = evaluate(
        model,
        ds,
        device=device,
        progress=progress,
        with_regressors=with_regressors,
        split=split,  # type: ignore[arg-type]
    )
    with atomic_directory(
        out, overwrite=overwrite, kind="houseprice-report", inputs=(model_dir, data)
    ) as tmp:
        write_report(report, preds, tmp)
    return report
