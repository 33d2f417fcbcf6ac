"""``PriceRegressor``: a scikit-learn estimator over LightGBM fitted on log price.

Prices are positive and errors are judged relatively (±10%), so the booster fits log(price)
and predictions are exp(·). Missing attribute values are handled natively by LightGBM.
Comparison regressors of the paper (random forest, gradient boosting, SVR, MLP) are built by
``comparison_regressors`` with the same log-target convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class PriceRegressor(RegressorMixin, BaseEstimator):
    """Gradient-boosted trees (LightGBM) on log price; a regular scikit-learn regressor."""

    def __init__(
        self,
        *,
        n_estimators: int = 800,
        learning_rate: float = 0.03,
        num_leaves: int = 15,
        min_child_samples: int = 10,
        subsample: float = 0.8,
        colsample_bytree: float = 0.9,
        reg_lambda: float = 1.0,
        random_state: int = 0,
        n_jobs: int = 2,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _params(self) -> dict[str, Any]:
        return {
            "objective": "regression",
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "subsample": self.subsample,
            "subsample_freq": 1 if self.subsample < 1 else 0,
            "colsample_bytree": self.colsample_bytree,
            "reg_lambda": self.reg_lambda,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
            "verbose": -1,
            "deterministic": True,
            "force_col_wise": True,
        }

    def fit(self, X: Any, y: Any) -> PriceRegressor:
        import lightgbm as lgb

        X, y = validate_data(
            self, X, y, ensure_all_finite="allow-nan", y_numeric=True, dtype=np.float64
        )
        if np.any(y <= 0):
            raise ValueError("PriceRegressor fits log(price): every target must be > 0")
        self.model_ = lgb.LGBMRegressor(**self._params())
        self.model_.fit(X, np.log(y))
        self.booster_ = self.model_.booster_
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "booster_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return np.exp(self.booster_.predict(X))

    def save_model(self, path: str | Path) -> Path:
        """Write the booster as LightGBM's own text model (atomic)."""
        from houseprice.artifacts import atomic_write_text

        check_is_fitted(self, "booster_")
        return atomic_write_text(path, self.booster_.model_to_string())

    @classmethod
    def load_model(
        cls,
        path: str | Path,
        feature_names: list[str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> PriceRegressor:
        """Rebuild a fitted regressor from a LightGBM text model (no pickle involved).

        ``params`` are the ``get_params()`` of the regressor that was saved, so the loaded one
        reports the same parameters (they are not stored in LightGBM's text).
        """
        import lightgbm as lgb

        booster = lgb.Booster(model_str=Path(path).read_text())
        reg = cls(**(params or {}))
        reg.booster_ = booster
        reg.n_features_in_ = booster.num_feature()
        if feature_names is not None:
            reg.feature_names_in_ = np.asarray(feature_names, dtype=object)
        return reg

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.positive_only = True  # log(price) needs y > 0
        return tags


def comparison_regressors(seed: int = 0) -> dict[str, BaseEstimator]:
    """The paper's comparison models (Chen §4.2), each on log price with NaN imputation."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.svm import SVR

    def logged(model: BaseEstimator, scale: bool) -> TransformedTargetRegressor:
        steps: list[Any] = [SimpleImputer(strategy="median")]
        if scale:
            steps.append(StandardScaler())
        steps.append(model)
        # log price, standardised: SVR and MLP need a centred, unit-scale target
        target = make_pipeline(
            FunctionTransformer(np.log, np.exp, check_inverse=False), StandardScaler()
        )
        return TransformedTargetRegressor(
            regressor=make_pipeline(*steps), transformer=target, check_inverse=False
        )

    return {
        "lightgbm": PriceRegressor(random_state=seed),
        "random_forest": logged(
            RandomForestRegressor(
                n_estimators=300, min_samples_leaf=2, random_state=seed, n_jobs=2
            ),
            False,
        ),
        "gradient_boosting": logged(
            GradientBoostingRegressor(
                n_estimators=400, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=seed
            ),
            False,
        ),
        "svr": logged(SVR(C=3.0, epsilon=0.05, gamma="scale"), True),
        "mlp": logged(
            MLPRegressor(
                hidden_layer_sizes=(64, 32),
                alpha=1e-3,
                max_iter=800,
                early_stopping=True,
                random_state=seed,
            ),
            True,
        ),
    }
