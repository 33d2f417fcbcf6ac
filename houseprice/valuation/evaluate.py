"""The paper's Table 2 as a report: 10% accuracy per attribute set, with and without visual
features, the visual-feature lift, the comparison regressors and (synthetic city) the oracle.

All regressors are refitted here on the model's training rows with the *model's* visual
features: out-of-fold features for training rows (stored in the model), fresh features for
test rows. The report dict is rendered by :mod:`houseprice.valuation.report`. It also
carries the IAAO ratio study of the main model's valuations and, on the test split of a
calibrated model, the empirical coverage of its price ranges
(:mod:`houseprice.valuation.assessment`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from houseprice.data.houses import Dataset
from houseprice.errors import UserInputError
from houseprice.pricing.attributes import (
    FULL_SET,
    TABLE2_SETS,
    attribute_frame,
    set_name,
    time_split,
    with_visual,
)
from houseprice.pricing.metrics import mape, median_ape, within_pct_accuracy
from houseprice.pricing.regressor import comparison_regressors
from houseprice.valuation.assessment import coverage_report, ratio_study_report
from houseprice.valuation.model import HousePriceModel

TRUTH_EXCLUDE = ("house_id", "visual_log_premium")


class EvaluationError(UserInputError):
    """The model and the dataset do not fit together for an honest evaluation."""


#: The validation split: the last quarter (by sale date) of the training rows, i.e. 15% of a
#: dataset with the default 60/40 train/test split. Every choice is made on it (docs/pricing.md).
VALIDATION_FRACTION = 0.25
Split = Literal["test", "validation"]


def validation_split(
    records: pd.DataFrame, train_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(core, validation)`` row indices: the training rows cut by sale date (ties by id)."""
    sub = records.iloc[train_rows]
    order = np.lexsort(
        (sub["house_id"].astype(str).to_numpy(), pd.to_datetime(sub["sold_date"]).to_numpy())
    )
    n_val = max(1, round(len(train_rows) * VALIDATION_FRACTION))
    rows = np.asarray(train_rows)[order]
    return np.sort(rows[:-n_val]), np.sort(rows[-n_val:])


def split_features(
    model: HousePriceModel,
    dataset: Dataset,
    *,
    device: str = "cpu",
    progress: bool = False,
    split: Split = "test",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit/score row indices for ``split`` and the visual features of all rows (NaN elsewhere).

    ``"test"``: fit on the model's training rows (their out-of-fold features are stored in
    the model), score the unseen test rows (features computed now). ``"validation"``: fit on
    the first 75% of the training rows by date, score the last 25%, both with their stored
    out-of-fold features: the test rows are not even read, so choices made on it never see
    them.
    """
    rec = dataset.records
    if model.config.use_all_rows:
        raise EvaluationError(
            "this model was trained on every row (--all-data); it has no "
            "held-out rows to evaluate on. Retrain without --all-data."
        )
    tr, te = time_split(rec, model.config.train_fraction)
    ids = rec["house_id"].astype(str).to_numpy()
    trained = set(model.train_ids)
    if set(ids[tr]) != trained:
        raise EvaluationError(
            f"the model was trained on {len(trained)} rows that are not this dataset's "
            f"training split ({len(tr)} rows, first {model.config.train_fraction:.0%} by "
            "sold_date); train it on this dataset: houseprice train --data DIR --out MODEL"
        )
    d = model.config.siamese.feature_dim
    feats = np.full((len(rec), d), np.nan, dtype=np.float32)
    if model.featurizer is not None and model.train_features is not None:
        pos = {h: i for i, h in enumerate(model.train_ids)}
        feats[tr] = model.train_features[[pos[h] for h in ids[tr]]]
        if split == "test":
            feats[te], _ = model.visual_features(
                rec.iloc[te], dataset.tiles, device=device, progress=progress
            )
    if split == "validation":
        return (*validation_split(rec, tr), feats)
    return tr, te, feats


def _fit_score(
    reg: Any, x_tr: pd.DataFrame, y_tr: np.ndarray, x_te: pd.DataFrame, y_te: np.ndarray
) -> tuple[float, np.ndarray]:
    pred = reg.fit(x_tr, y_tr).predict(x_te)
    return within_pct_accuracy(y_te, pred), pred


def read_truth(dataset: Dataset) -> pd.DataFrame | None:
    """The generator's hidden drivers (evaluation only), or None for real datasets."""
    truth = dataset.meta.get("truth") or {}
    path = truth.get("drivers")
    if not path or not (dataset.root / path).exists():
        return None
    df = pd.read_csv(dataset.root / path, dtype={"house_id": str})
    return df


@dataclass
class _Split:
    """The evaluation's fixed inputs: records, train/test rows, prices, visual features."""

    rec: pd.DataFrame
    tr: np.ndarray
    te: np.ndarray
    y_tr: np.ndarray
    y_te: np.ndarray
    feats: np.ndarray
    has_visual: bool

    def score(self, model: HousePriceModel, x: pd.DataFrame) -> tuple[float, np.ndarray]:
        """10% accuracy of the model's regressor refitted on ``x``'s training rows."""
        reg = model.config.build_regressor()
        return _fit_score(reg, x.iloc[self.tr], self.y_tr, x.iloc[self.te], self.y_te)


def _table2(
    model: HousePriceModel, s: _Split, baseline: float, progress: bool
) -> tuple[dict[str, dict[str, float | None]], np.ndarray]:
    """Chen Table 2: accuracy per attribute set with / without visual features, and the lift."""
    from tqdm.auto import tqdm

    table: dict[str, dict[str, float | None]] = {}
    main_pred = None
    for letters in tqdm(TABLE2_SETS, desc="attribute sets", disable=not progress, leave=False):
        x = attribute_frame(s.rec, letters)
        row: dict[str, float | None] = {}
        if letters:
            row["without_visual"], pred_nv = s.score(model, x)
        else:
            row["without_visual"], pred_nv = baseline, None  # mean (geometric) price
        if s.has_visual:
            row["with_visual"], pred = s.score(model, with_visual(x, s.feats))
            row["lift"] = row["with_visual"] - row["without_visual"]
        else:
            row["with_visual"], row["lift"], pred = None, None, pred_nv
        if letters == FULL_SET:
            main_pred = pred
        table[set_name(letters)] = row
    assert main_pred is not None
    return table, main_pred


def _oracle(
    model: HousePriceModel, dataset: Dataset, s: _Split, table: dict[str, Any]
) -> dict[str, Any] | None:
    """The full attribute set plus the generator's hidden drivers (synthetic city only)."""
    truth = read_truth(dataset)
    if truth is None:
        return None
    listed = (dataset.meta.get("truth") or {}).get("oracle_columns")
    cols = (
        list(listed)
        if listed
        else [
            c
            for c in truth.columns
            if c not in TRUTH_EXCLUDE and pd.api.types.is_numeric_dtype(truth[c])
        ]
    )
    drivers = s.rec[["house_id"]].merge(truth, on="house_id", how="left")[cols]
    x_full = attribute_frame(s.rec, FULL_SET)
    xo = pd.concat(
        [x_full.reset_index(drop=True), drivers.astype("float64").reset_index(drop=True)],
        axis=1,
    )
    acc_o, _ = s.score(model, xo)
    base = table[set_name(FULL_SET)]["without_visual"]
    oracle: dict[str, Any] = {
        "set": set_name(FULL_SET),
        "drivers": cols,
        "without_visual": base,
        "with_oracle": acc_o,
        "lift": acc_o - base,
    }
    vis_lift = table[set_name(FULL_SET)]["lift"]
    if vis_lift is not None and oracle["lift"] > 0:
        oracle["visual_share_of_oracle_lift"] = vis_lift / oracle["lift"]
    return oracle


def _own_predictions(
    model: HousePriceModel, scored: pd.DataFrame, feats: np.ndarray, used: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The saved regressors' prices of unseen rows, as ``predict`` gives them (visual where a
    tile was usable, else the fallback), and the attributes-only prices of every row."""
    x = attribute_frame(scored, model.config.attributes)
    pred_nv = model.regressor_no_visual.predict(x)
    pred = pred_nv.copy()
    if model.regressor is not None and used.any():
        pred[used] = model.regressor.predict(with_visual(x, feats)[used])
    return pred, pred_nv


def evaluate(
    model: HousePriceModel,
    dataset: Dataset,
    *,
    device: str = "cpu",
    progress: bool = False,
    with_regressors: bool = True,
    split: Split = "test",
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Compute the Table-2 report on ``split``; also returns the per-house predictions.

    ``split="validation"`` is for choosing (hyper-parameters, methods): it never reads the
    test rows. ``"test"`` is the sealed score, reported once.
    """
    from tqdm.auto import tqdm

    rec = dataset.records
    tr, te, feats = split_features(model, dataset, device=device, progress=progress, split=split)
    y = rec["price"].to_numpy(dtype=np.float64)
    s = _Split(rec, tr, te, y[tr], y[te], feats, model.featurizer is not None)
    baseline = within_pct_accuracy(s.y_te, np.full(len(te), np.exp(np.log(s.y_tr).mean())))
    table, main_pred = _table2(model, s, baseline, progress)
    x_full = attribute_frame(rec, FULL_SET)
    x_main = with_visual(x_full, feats) if s.has_visual else x_full
    regressors: dict[str, float] = {}
    if with_regressors:
        for name, reg in tqdm(
            comparison_regressors(model.config.seed).items(),
            desc="regressors",
            disable=not progress,
            leave=False,
        ):
            regressors[name], _ = _fit_score(reg, x_main.iloc[tr], s.y_tr, x_main.iloc[te], s.y_te)
    report: dict[str, Any] = {
        "dataset": dataset.meta.get("name", dataset.root.name),
        "split": split,
        "test_size": len(te),
        "train_size": len(tr),
        "visual_features": s.has_visual,
        "accuracy_within_10pct": table,
        "mean_price_baseline": baseline,
        "regressors": regressors,
        "mape": mape(s.y_te, main_pred),
        "median_ape": median_ape(s.y_te, main_pred),
        "main_model": set_name(FULL_SET) + (" + visual" if s.has_visual else ""),
    }
    oracle = _oracle(model, dataset, s, table)
    if oracle is not None:
        report["oracle"] = oracle
    used = ~np.isnan(feats[te]).any(axis=1) if s.has_visual else np.zeros(len(te), bool)
    scored = rec.iloc[te]
    report["ratio_study"] = ratio_study_report(
        model, scored, main_pred, used, seed=model.config.seed
    )
    if split == "test":
        pred, pred_nv = _own_predictions(model, scored, feats[te], used)
        ranges = coverage_report(model, s.y_te, pred, used, pred_nv)
        if ranges is not None:
            report["price_ranges"] = ranges
    preds = pd.DataFrame(
        {
            "house_id": rec["house_id"].iloc[te].to_numpy(),
            "price": s.y_te,
            "predicted_price": main_pred,
        }
    )
    return report, preds
