"""The paper's Table 2 as a report: 10% accuracy per attribute set, with and without visual
features, the visual-feature lift, the comparison regressors and (synthetic city) the oracle.

All regressors are refitted here on the model's training rows with the *model's* visual
features: out-of-fold features for training rows (stored in the model), fresh features for
test rows. The report dict is rendered by :mod:`houseprice.valuation.report`.
"""

from __future__ import annotations

from typing import Any

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
from houseprice.valuation.model import HousePriceModel

TRUTH_EXCLUDE = ("house_id", "visual_log_premium")


class EvaluationError(UserInputError):
    """The model and the dataset do not fit together for an honest evaluation."""


def split_features(
    model: HousePriceModel, dataset: Dataset, *, device: str = "cpu", progress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/test row indices of the dataset's time split and the visual features of all rows.

    Training rows must be exactly the model's training rows (their out-of-fold features are
    stored in the model); test rows must be unseen by the model.
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
        feats[te], _ = model.visual_features(
            rec.iloc[te], dataset.tiles, device=device, progress=progress
        )
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


def evaluate(
    model: HousePriceModel,
    dataset: Dataset,
    *,
    device: str = "cpu",
    progress: bool = False,
    with_regressors: bool = True,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Compute the Table-2 report; also returns the per-house test predictions."""
    from tqdm.auto import tqdm

    rec = dataset.records
    tr, te, feats = split_features(model, dataset, device=device, progress=progress)
    y = rec["price"].to_numpy(dtype=np.float64)
    y_tr, y_te = y[tr], y[te]
    has_visual = model.featurizer is not None
    seed = model.config.seed
    table: dict[str, dict[str, float | None]] = {}
    baseline = within_pct_accuracy(y_te, np.full(len(te), np.exp(np.log(y_tr).mean())))
    main_pred = None
    for letters in tqdm(TABLE2_SETS, desc="attribute sets", disable=not progress, leave=False):
        x = attribute_frame(rec, letters)
        row: dict[str, float | None] = {}
        if letters:
            row["without_visual"], pred_nv = _fit_score(
                model.config.build_regressor(), x.iloc[tr], y_tr, x.iloc[te], y_te
            )
        else:
            row["without_visual"], pred_nv = baseline, None  # mean (geometric) price
        if has_visual:
            xv = with_visual(x, feats)
            row["with_visual"], pred = _fit_score(
                model.config.build_regressor(), xv.iloc[tr], y_tr, xv.iloc[te], y_te
            )
            row["lift"] = row["with_visual"] - row["without_visual"]
            if letters == FULL_SET:
                main_pred = pred
        else:
            row["with_visual"], row["lift"] = None, None
            if letters == FULL_SET:
                main_pred = pred_nv
        table[set_name(letters)] = row
    x_full = attribute_frame(rec, FULL_SET)
    x_main = with_visual(x_full, feats) if has_visual else x_full
    regressors: dict[str, float] = {}
    if with_regressors:
        for name, reg in tqdm(
            comparison_regressors(seed).items(),
            desc="regressors",
            disable=not progress,
            leave=False,
        ):
            regressors[name], _ = _fit_score(reg, x_main.iloc[tr], y_tr, x_main.iloc[te], y_te)
    assert main_pred is not None
    report: dict[str, Any] = {
        "dataset": dataset.meta.get("name", dataset.root.name),
        "test_size": len(te),
        "train_size": len(tr),
        "visual_features": has_visual,
        "accuracy_within_10pct": table,
        "mean_price_baseline": baseline,
        "regressors": regressors,
        "mape": mape(y_te, main_pred),
        "median_ape": median_ape(y_te, main_pred),
        "main_model": set_name(FULL_SET) + (" + visual" if has_visual else ""),
    }
    truth = read_truth(dataset)
    if truth is not None:
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
        drivers = rec[["house_id"]].merge(truth, on="house_id", how="left")[cols]
        xo = pd.concat(
            [x_full.reset_index(drop=True), drivers.astype("float64").reset_index(drop=True)],
            axis=1,
        )
        acc_o, _ = _fit_score(model.config.build_regressor(), xo.iloc[tr], y_tr, xo.iloc[te], y_te)
        base = table[set_name(FULL_SET)]["without_visual"]
        assert base is not None
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
        report["oracle"] = oracle
    preds = pd.DataFrame(
        {
            "house_id": rec["house_id"].iloc[te].to_numpy(),
            "price": y_te,
            "predicted_price": main_pred,
        }
    )
    return report, preds
