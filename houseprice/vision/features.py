"""Visual features for the price regressor, without train/test leakage: ``VisualFeaturizer``.

A siamese net that trained on a house has seen its price, so its feature for that house is
optimistic; for a test house it is not. A regressor fitted on such optimistic features
over-trusts them. ``VisualFeaturizer`` avoids the mismatch by K-fold *cross-fitting*: K nets,
each trained without one fold, give the out-of-fold (OOF) features of the training rows; new
rows get the mean over the K nets. Feature spaces of separately trained nets are arbitrary, so
every net's features are mapped onto net 0's space by a least-squares affine map fitted on
all training tiles (features only; prices are not used). ``n_folds=0`` is the naive way: one
net on all training rows, in-sample features for the training rows.

The featurizer is a scikit-learn-style transformer: keyword-only parameters stored as given
(``get_params`` / ``set_params`` / ``sklearn.base.clone`` work), ``fit`` returns ``self``,
learned state ends in ``_``.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import Tensor

from houseprice.runtime import resolve_device
from houseprice.vision.siamese.model import RankSiamese, SiameseConfig
from houseprice.vision.siamese.train import (
    FitResult,
    SiameseTrainConfig,
    check_configs,
    extract_features,
    fit_siamese,
)


class VisualFeaturizer(BaseEstimator):
    """K cross-fitted rank-siamese nets plus affine maps into a common feature space.

    Args:
        config: the nets' architecture.
        training: how each net is trained.
        n_folds: cross-fitting folds (>= 2), or 0 for one net on all rows (in-sample).
        seed: fold assignment and net ``k``'s training seed (``seed + k``).
        device: where the nets train (``cpu``, ``cuda[:N]`` or ``auto``).
        progress: show progress bars.
        weights: a local backbone weights file loaded into every net before training
            (:func:`~houseprice.vision.backbones.load_backbone_weights`); None = random init.

    Attributes (after :meth:`fit`):
        models_: the nets (on ``device``).
        align_: per net ``(A (d, d), b (d,))``, mapping its features onto net 0's.
        fits_: the per-net :class:`~houseprice.vision.siamese.train.FitResult`.
        oof_features_: ``(N, d)`` out-of-fold (``n_folds == 0``: in-sample) training features.
    """

    def __init__(
        self,
        *,
        config: SiameseConfig,
        training: SiameseTrainConfig,
        n_folds: int = 3,
        seed: int = 0,
        device: str = "cpu",
        progress: bool = False,
        weights: str | None = None,
    ) -> None:
        self.config = config
        self.training = training
        self.n_folds = n_folds
        self.seed = seed
        self.device = device
        self.progress = progress
        self.weights = weights

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def fit(
        self, tiles: np.ndarray, targets: np.ndarray, *, match: np.ndarray | None = None
    ) -> VisualFeaturizer:
        """Train the nets on ``tiles (N,H,W,3)`` uint8 and ``targets (N,)`` or ``(N, 2)``.

        ``match`` is an optional ``(N, k)`` attribute matrix for matched partners.
        """
        if self.n_folds == 1 or self.n_folds < 0:
            raise ValueError("n_folds must be 0 (naive) or >= 2 (cross-fitting)")
        check_configs(self.config, self.training)
        dev = resolve_device(self.device)
        if self.n_folds == 0:
            self._fit_naive(tiles, targets, match, dev)
        else:
            self._fit_cross(tiles, targets, match, dev)
        return self

    def fit_transform(
        self, tiles: np.ndarray, targets: np.ndarray, *, match: np.ndarray | None = None
    ) -> np.ndarray:
        """:meth:`fit`, then the training rows' features ``(N, d)`` (:attr:`oof_features_`).

        With ``n_folds >= 2`` these are out-of-fold features; with ``n_folds == 0`` in-sample.
        """
        return self.fit(tiles, targets, match=match).oof_features_

    def _fit_siamese(
        self,
        tiles: np.ndarray,
        targets: np.ndarray,
        match: np.ndarray | None,
        seed: int,
        device: torch.device,
        desc: str,
    ) -> FitResult:
        return fit_siamese(
            tiles,
            targets,
            config=self.config,
            training=self.training,
            match=match,
            seed=seed,
            device=device,
            progress=self.progress,
            desc=desc,
            weights=self.weights,
        )

    def _fit_naive(
        self, tiles: np.ndarray, targets: np.ndarray, match: np.ndarray | None, dev: torch.device
    ) -> None:
        fit = self._fit_siamese(tiles, targets, match, self.seed, dev, "siamese (all)")
        d = self.feature_dim
        self.fits_, self.models_ = [fit], [fit.model]
        self.align_ = [(np.eye(d, dtype=np.float32), np.zeros(d, dtype=np.float32))]
        self.oof_features_ = self.transform(tiles, device=dev)

    def _fit_cross(
        self, tiles: np.ndarray, targets: np.ndarray, match: np.ndarray | None, dev: torch.device
    ) -> None:
        n, n_folds = len(tiles), self.n_folds
        folds = np.random.default_rng(self.seed).permutation(n) % n_folds
        fits: list[FitResult] = []
        raw_all: list[np.ndarray] = []
        for k in range(n_folds):
            tr = np.flatnonzero(folds != k)
            part = None if match is None else match[tr]
            desc = f"siamese fold {k + 1}/{n_folds}"
            fit = self._fit_siamese(tiles[tr], targets[tr], part, self.seed + k, dev, desc)
            fits.append(fit)
            raw_all.append(_exported(fit.model, torch.from_numpy(tiles), dev))
        self.fits_, self.models_ = fits, [f.model for f in fits]
        self.align_ = [_affine_fit(raw, raw_all[0]) for raw in raw_all]
        oof = np.zeros((n, self.feature_dim), dtype=np.float32)
        for k in range(n_folds):
            rows = folds == k
            a, b = self.align_[k]
            oof[rows] = raw_all[k][rows] @ a + b
        self.oof_features_ = oof

    def transform(
        self,
        tiles: np.ndarray | Tensor,
        *,
        device: torch.device | str | None = None,
        batch_size: int = 256,
    ) -> np.ndarray:
        """Features of new tiles ``(N,H,W,3)`` uint8: mean over the aligned nets → ``(N,d)``.

        ``device`` is where the nets currently are (default: the ``device`` parameter); move
        them with :meth:`to`.
        """
        if not getattr(self, "models_", None):
            raise RuntimeError("VisualFeaturizer is not fitted")
        dev = resolve_device(self.device if device is None else device)
        t = torch.from_numpy(tiles) if isinstance(tiles, np.ndarray) else tiles
        acc = np.zeros((len(t), self.feature_dim), dtype=np.float64)
        for model, (a, b) in zip(self.models_, self.align_, strict=True):
            acc += _exported(model, t, dev, batch_size) @ a + b
        return (acc / len(self.models_)).astype(np.float32)

    # --- persistence: flat tensors for safetensors ------------------------------------
    def state_tensors(self) -> dict[str, Tensor]:
        """Every net's state (``net{k}.*``) and affine map (``align{k}.A`` / ``.b``)."""
        out: dict[str, Tensor] = {}
        for k, (model, (a, b)) in enumerate(zip(self.models_, self.align_, strict=True)):
            for name, v in model.state_dict().items():
                out[f"net{k}.{name}"] = v.detach().cpu().contiguous()
            out[f"align{k}.A"] = torch.from_numpy(np.ascontiguousarray(a))
            out[f"align{k}.b"] = torch.from_numpy(np.ascontiguousarray(b))
        return out

    @classmethod
    def from_state_tensors(
        cls,
        tensors: dict[str, Tensor],
        *,
        config: SiameseConfig,
        training: SiameseTrainConfig,
        n_models: int,
        n_folds: int,
    ) -> VisualFeaturizer:
        """A fitted featurizer (on CPU) from :meth:`state_tensors`; ``fits_`` is empty."""
        feat = cls(config=config, training=training, n_folds=n_folds)
        feat.models_, feat.align_, feat.fits_ = [], [], []
        for k in range(n_models):
            model = RankSiamese(config)
            prefix = f"net{k}."
            state = {n[len(prefix) :]: v for n, v in tensors.items() if n.startswith(prefix)}
            model.load_state_dict(state, strict=True)
            model.eval()
            feat.models_.append(model)
            feat.align_.append((tensors[f"align{k}.A"].numpy(), tensors[f"align{k}.b"].numpy()))
        return feat

    def to(self, device: torch.device | str) -> VisualFeaturizer:
        """Move the fitted nets to ``device`` (in place); returns ``self``."""
        for m in self.models_:
            m.to(resolve_device(device))
        return self


def _exported(
    model: RankSiamese, tiles: Tensor, device: torch.device | str, batch_size: int = 256
) -> np.ndarray:
    """The exported visual feature ``(N, d)``: the branch's first ``feature_dim`` columns (the
    auxiliary head's own columns, ``aux_dim > 0``, train the trunk and are never exported)."""
    raw = extract_features(model, tiles, device=device, batch_size=batch_size)
    return raw[:, : model.config.feature_dim]


def _affine_fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``dst ≈ src @ A + b``; returns ``(A (d,d), b (d,))`` float32."""
    x = np.hstack([src.astype(np.float64), np.ones((len(src), 1))])
    coef, *_ = np.linalg.lstsq(x, dst.astype(np.float64), rcond=None)
    return coef[:-1].astype(np.float32), coef[-1].astype(np.float32)
