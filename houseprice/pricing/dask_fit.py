"""Fitting a ``PriceRegressor`` on a Dask cluster with ``lightgbm.dask.DaskLGBMRegressor``.

:func:`fit_on_dask` is the distributed counterpart of ``PriceRegressor.fit``: same input
checks, same log-price target, same parameters (:func:`dask_params` derives them from
``PriceRegressor._params``, the single source of truth), and the result is an ordinary fitted
``PriceRegressor`` whose booster is local, so it saves as LightGBM text and predicts exactly as
a locally trained one (docs/scaling.md, "Training on Dask").

The training matrix is dealt to ``partitions`` parts by a seeded row permutation (so every
part is a random sample of the training rows, not a time slice), each part is placed on a
worker round-robin, and the parts form a ``dask.array`` that LightGBM trains on with
``tree_learner="data"``: every worker builds histograms of its own rows and the histograms are
summed over LightGBM's socket network. What distributed training changes:

- ``tree_learner`` becomes ``data`` (data-parallel); ``n_jobs`` is ignored: each worker uses
  as many threads as it has Dask threads.
- Feature binning is per worker: the features are divided among the LightGBM ranks and each
  feature's bin boundaries (and its ``feature_infos`` range) come from the rows of the one
  worker that owns it, not from all rows. Hence the row permutation above.
- Bagging (``subsample``) draws rows per worker with the same seed; ``min_child_samples`` and
  the split gains use the summed (global) histograms.
- Determinism: which worker becomes LightGBM rank 0 follows the order in which
  ``lightgbm.dask`` lists the workers holding data, which comes from a set of fresh Dask task
  keys and so can change from run to run. The ranks' feature shares then see other rows, the
  bin boundaries move a little and the trees differ. Given the seed, the model is one of a
  few (one per rank order), not one; ``benchmarks/train_engines.py`` measures the spread.

The network settings of the run (``machines``, ``local_listen_port``) are blanked in the saved
text (:func:`network_free`): they describe the cluster of one run, not the model. LightGBM's
network set-up prints ``[LightGBM] [Info]`` lines on the workers whatever ``verbose`` says (they
come before the parameters are read, from the worker's task thread).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
from sklearn.utils.validation import validate_data

from houseprice.pricing.regressor import PriceRegressor

# LightGBM parameters the Dask path sets on top of PriceRegressor's (and why): see module doc.
DASK_OVERRIDES: dict[str, Any] = {"tree_learner": "data"}
DASK_DROPPED = ("n_jobs",)  # num_threads comes from each Dask worker's thread count
MIN_ROWS_PER_PART = 32  # fewer rows cannot bin a feature share meaningfully


def dask_params(regressor: PriceRegressor) -> dict[str, Any]:
    """The LightGBM parameters of ``regressor`` for ``DaskLGBMRegressor``."""
    params = {k: v for k, v in regressor._params().items() if k not in DASK_DROPPED}
    return {**params, **DASK_OVERRIDES}


def row_parts(n_rows: int, partitions: int, seed: int) -> list[np.ndarray]:
    """Row indices of each part: a seeded permutation cut into ``partitions`` near-equal parts.

    Each part's rows are sorted so a part keeps the training frame's order inside it.
    """
    perm = np.random.default_rng(seed).permutation(n_rows)
    return [np.sort(p) for p in np.array_split(perm, partitions)]


def n_parts(n_rows: int, n_workers: int, partitions: int | None) -> int:
    """How many parts: ``partitions`` (default one per worker), at most one per 32 rows."""
    want = partitions if partitions is not None else n_workers
    if want < 1:
        raise ValueError(f"partitions must be at least 1, got {want}")
    return max(1, min(want, n_rows // MIN_ROWS_PER_PART))


def network_free(model_text: str) -> str:
    """The model text with the run's network settings blanked (they are not the model's)."""
    text = re.sub(r"^\[machines: [^\]\n]*\]$", "[machines: ]", model_text, flags=re.M)
    return re.sub(r"^\[local_listen_port: \d+\]$", "[local_listen_port: 12400]", text, flags=re.M)


def _scatter_parts(
    client: Any, x: np.ndarray, y: np.ndarray, parts: list[np.ndarray]
) -> tuple[Any, Any]:
    """The parts as one ``dask.array`` pair, part ``i`` placed on worker ``i mod W``."""
    import dask.array as da

    workers = sorted(client.nthreads())
    xs, ys = [], []
    for i, rows in enumerate(parts):
        where = [workers[i % len(workers)]]
        fx = client.scatter(x[rows], workers=where, hash=False)
        fy = client.scatter(y[rows], workers=where, hash=False)
        xs.append(da.from_delayed(fx, shape=(len(rows), x.shape[1]), dtype=x.dtype))
        ys.append(da.from_delayed(fy, shape=(len(rows),), dtype=y.dtype))
    return da.concatenate(xs), da.concatenate(ys)


def fit_on_dask(
    regressor: PriceRegressor,
    X: Any,
    y: Any,
    *,
    client: Any,
    partitions: int | None = None,
) -> PriceRegressor:
    """Fit ``regressor`` (in place, like ``fit``) with ``DaskLGBMRegressor`` on ``client``.

    ``partitions`` defaults to one per worker of the cluster. Returns the regressor, fitted,
    with a local booster (``to_local()``), so saving and predicting are unchanged.
    """
    import lightgbm as lgb

    x, target = validate_data(
        regressor, X, y, ensure_all_finite="allow-nan", y_numeric=True, dtype=np.float64
    )
    if np.any(target <= 0):
        raise ValueError("PriceRegressor fits log(price): every target must be > 0")
    n_workers = len(client.nthreads())
    if n_workers == 0:
        raise ValueError("the Dask cluster has no workers")
    parts = row_parts(len(x), n_parts(len(x), n_workers, partitions), regressor.random_state)
    dx, dy = _scatter_parts(client, x, np.log(target), parts)
    est = lgb.DaskLGBMRegressor(client=client, **dask_params(regressor))
    with warnings.catch_warnings():
        # lightgbm.dask warns that n_jobs (None: not ours, we dropped it) is ignored
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        est.fit(dx, dy)
    local = est.to_local()
    regressor.model_ = local
    regressor.booster_ = lgb.Booster(model_str=network_free(local.booster_.model_to_string()))
    regressor.dask_partitions_ = len(parts)
    return regressor


__all__ = [
    "DASK_DROPPED",
    "DASK_OVERRIDES",
    "dask_params",
    "fit_on_dask",
    "n_parts",
    "network_free",
    "row_parts",
]
