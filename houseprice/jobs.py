"""End-to-end jobs behind the CLI: train, predict, evaluate and the demo.

Each function takes paths and options, does the work through the library and returns plain
results (paths, dicts, frames) so the typer commands stay thin and notebooks can call the
same jobs.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from houseprice.artifacts import atomic_write_bytes, atomic_write_text
from houseprice.data.houses.records import load_any, load_dataset
from houseprice.pricing.attributes import FULL_SET, parse_attribute_set, set_name
from houseprice.valuation.evaluate import evaluate, write_report
from houseprice.valuation.model import HousePriceModel, TrainConfig, profile_config

PROFILES = ("quick", "standard", "paper")
#: Synthetic-city size per profile for the demo.
DEMO_HOUSES = {"quick": 400, "standard": 2000, "paper": 2000}


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
) -> tuple[Path, HousePriceModel]:
    """Train a model on a dataset folder (or table) and write the model folder.

    ``folds`` overrides the profile's cross-fitting folds for the training rows' visual
    features (0 = naive: one net on all training rows, in-sample features).
    """
    ds = load_any(data, purpose="train")
    extra = tuple(str(c) for c in ds.records.columns)
    cfg = config or profile_config(
        profile, attributes=parse_attribute_set(attributes, extra), backbone=backbone, seed=seed
    )
    if profile == "paper" and weights is None and config is None:
        raise ValueError(
            "--profile paper needs ImageNet weights from a local file: pass "
            "--weights PATH (a torchvision resnet50 state dict or .safetensors)"
        )
    cfg.weights = weights
    cfg.use_all_rows = all_data
    if folds is not None:
        if folds == 1 or folds < 0:
            raise ValueError(f"--folds must be 0 (naive, in-sample) or at least 2, got {folds}")
        cfg.n_folds = folds
    model = HousePriceModel.fit(ds, cfg, device=device, progress=progress)
    writer = None
    if model.featurizer is not None:
        from houseprice.valuation.explanations import build_gradweight_writer

        writer = build_gradweight_writer(model, ds, device=device, progress=progress)
    path = model.save(out, overwrite=overwrite, extra_writer=writer)
    return path, model


def predict(
    model_dir: str | Path,
    table: str | Path,
    out: str | Path,
    *,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[Path, pd.DataFrame, int]:
    """Price every row of a table; returns the output path, the frame and #fallback rows."""
    model = HousePriceModel.load(model_dir)
    ds = load_any(table, purpose="predict")
    frame = model.predict_frame(ds.root, ds.records, device=device, progress=progress)
    n_fallback = int((~frame["used_visual"]).sum())
    if model.featurizer is not None and n_fallback:
        warnings.warn(
            f"{n_fallback} of {len(frame)} rows had no usable tile and were priced by "
            "the no-visual fallback model (see columns used_visual, tile_problem)",
            stacklevel=2,
        )
    write_table(frame, out)
    return Path(out), frame, n_fallback


def write_table(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write a prediction table atomically as CSV or Parquet (by suffix)."""
    out = Path(out)
    if out.suffix.lower() == ".csv":
        atomic_write_text(out, frame.to_csv(index=False))
    elif out.suffix.lower() in (".parquet", ".pq"):
        import io

        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        atomic_write_bytes(out, buf.getvalue())
    else:
        raise ValueError(f"{out}: output must end in .csv or .parquet")
    return out


def evaluate_folder(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    device: str = "cpu",
    progress: bool = True,
    with_regressors: bool = True,
) -> dict[str, Any]:
    """Evaluate a trained model on its dataset and write report.json / report.md."""
    model = HousePriceModel.load(model_dir)
    ds = (
        load_dataset(data, purpose="train")
        if Path(data).is_dir()
        else load_any(data, purpose="train")
    )
    report, preds = evaluate(
        model, ds, device=device, progress=progress, with_regressors=with_regressors
    )
    write_report(report, preds, out)
    return report


def table2_text(report: dict[str, Any]) -> str:
    """A compact Table-2 summary for the terminal."""
    lines = [f"{'attributes':<18}{'w/o VF':>8}{'w VF':>8}{'lift':>8}"]
    for name, row in report["accuracy_within_10pct"].items():
        wo = f"{100 * row['without_visual']:.1f}" if row["without_visual"] is not None else "–"
        wv = f"{100 * row['with_visual']:.1f}" if row["with_visual"] is not None else "–"
        lift = f"{100 * row['lift']:+.1f}" if row["lift"] is not None else "–"
        label = name if name != "none" else "none (baseline)"
        lines.append(f"{label:<18}{wo:>8}{wv:>8}{lift:>8}")
    if "oracle" in report:
        o = report["oracle"]
        lines.append(
            f"{'oracle drivers':<18}{100 * o['without_visual']:>8.1f}"
            f"{100 * o['with_oracle']:>8.1f}{100 * o['lift']:>+8.1f}"
        )
    return "\n".join(lines)


@dataclass
class DemoResult:
    out: Path
    dataset: Path
    model: Path
    report_dir: Path
    report: dict[str, Any]
    map_html: Path | None
    seconds: dict[str, float]


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
    """Generate the synthetic city, train, evaluate, explain on a map."""
    from houseprice.synth.city.generate import generate_city

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    data = out / "city"
    generate_city(
        data,
        n_houses=n_houses or DEMO_HOUSES[profile],
        seed=seed,
        progress=progress,
        overwrite=overwrite,
    )
    t["generate"] = time.perf_counter() - t0
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
        with_regressors=profile != "quick",
    )
    t["evaluate"] = time.perf_counter() - t0
    from houseprice.valuation.explanations import explain_table

    t0 = time.perf_counter()
    res = explain_table(
        model_dir,
        data / "houses.csv",
        out / "explain",
        map_html=out / "map.html",
        device=device,
        progress=progress,
        test_only=True,
    )
    t["explain"] = time.perf_counter() - t0
    return DemoResult(
        out=out,
        dataset=data,
        model=model_dir,
        report_dir=out / "report",
        report=report,
        map_html=res.map_html,
        seconds=t,
    )


__all__ = [
    "PROFILES",
    "DemoResult",
    "evaluate_folder",
    "predict",
    "run_demo",
    "set_name",
    "table2_text",
    "train",
]
