"""Visual features for the price regressor, without train/test leakage.

A siamese net that trained on a house has seen its price, so its feature for that house is
optimistic; for a test house it is not. A regressor fitted on such optimistic features
over-trusts them. ``VisualFeaturizer`` avoids the mismatch by K-fold *cross-fitting*: K nets,
each trained without one fold, give the out-of-fold (OOF) features of the training rows; new
rows get the mean over the K nets. Feature spaces of separately trained nets are arbitrary, so
every net's features are mapped onto net 0's space by a least-squares affine map fitted on
all training tiles (features only; prices are not used). ``n_folds=0`` is the naive way: one
net on all training rows, in-sample features for the training rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from houseprice.vision.siamese.model import (
    FitResult,
    RankSiamese,
    SiameseConfig,
    extract_features,
    fit_siamese,
)


@dataclass
class VisualFeaturizer:
    """K cross-fitted rank-siamese nets plus affine maps into a common feature space."""

    config: SiameseConfig
    n_folds: int = 3
    models_: list[RankSiamese] = field(default_factory=list)
    align_: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (A (d,d), b (d,))
    fits_: list[FitResult] = field(default_factory=list)

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def fit_transform(
        self,
        tiles: np.ndarray,
        targets: np.ndarray,
        *,
        match: np.ndarray | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        progress: bool = False,
    ) -> np.ndarray:
        """Train the nets on ``tiles (N,H,W,3)``; return the training rows' features ``(N,d)``.

        With ``n_folds >= 2`` these are out-of-fold features; with ``n_folds == 0`` in-sample.
        """
        n = len(tiles)
        self.models_, self.align_, self.fits_ = [], [], []
        if self.n_folds == 0:
            fit = fit_siamese(
                tiles,
                targets,
                config=self.config,
                match=match,
                seed=seed,
                device=device,
                progress=progress,
                desc="siamese (all)",
            )
            self.fits_, self.models_ = [fit], [fit.model]
            d = self.feature_dim
            self.align_ = [(np.eye(d, dtype=np.float32), np.zeros(d, dtype=np.float32))]
            return self.transform(tiles, device=device)
        if self.n_folds < 2:
            raise ValueError("n_folds must be 0 (naive) or >= 2 (cross-fitting)")
        folds = np.random.default_rng(seed).permutation(n) % self.n_folds
        raw_all: list[np.ndarray] = []
        for k in range(self.n_folds):
            tr = np.flatnonzero(folds != k)
            fit = fit_siamese(
                tiles[tr],
                targets[tr],
                config=self.config,
                match=None if match is None else match[tr],
                seed=seed + k,
                device=device,
                progress=progress,
                desc=f"siamese fold {k + 1}/{self.n_folds}",
            )
            self.fits_.append(fit)
            self.models_.append(fit.model)
            raw_all.append(extract_features(fit.model, torch.from_numpy(tiles), device=device))
        self.align_ = [_affine_fit(raw, raw_all[0]) for raw in raw_all]
        oof = np.zeros((n, self.feature_dim), dtype=np.float32)
        for k in range(self.n_folds):
            rows = folds == k
            a, b = self.align_[k]
            oof[rows] = raw_all[k][rows] @ a + b
        return oof

    def transform(
        self,
        tiles: np.ndarray | Tensor,
        *,
        device: torch.device | str = "cpu",
        batch_size: int = 256,
    ) -> np.ndarray:
        """Features of new tiles ``(N,H,W,3)`` uint8: mean over the aligned nets → ``(N,d)``."""
        if not self.models_:
            raise RuntimeError("VisualFeaturizer is not fitted")
        t = torch.from_numpy(tiles) if isinstance(tiles, np.ndarray) else tiles
        acc = np.zeros((len(t), self.feature_dim), dtype=np.float64)
        for model, (a, b) in zip(self.models_, self.align_, strict=True):
            acc += extract_features(model, t, device=device, batch_size=batch_size) @ a + b
        return (acc / len(self.models_)).astype(np.float32)

    # --- persistence: flat tensors for safetensors ------------------------------------
    def state_tensors(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for k, (model, (a, b)) in enumerate(zip(self.models_, self.align_, strict=True)):
            for name, v in model.state_dict().items():
                out[f"net{k}.{name}"] = v.detach().cpu().contiguous()
            out[f"align{k}.A"] = torch.from_numpy(np.ascontiguousarray(a))
            out[f"align{k}.b"] = torch.from_numpy(np.ascontiguousarray(b))
        return out

    @classmethod
    def from_state_tensors(
        cls, config: SiameseConfig, n_models: int, n_folds: int, tensors: dict[str, Tensor]
    ) -> VisualFeaturizer:
        feat = cls(config=config, n_folds=n_folds)
        for k in range(n_models):
            model = RankSiamese.from_config(config)
            prefix = f"net{k}."
            state = {n[len(prefix) :]: v for n, v in tensors.items() if n.startswith(prefix)}
            model.load_state_dict(state, strict=True)
            model.eval()
            feat.models_.append(model)
            feat.align_.append((tensors[f"align{k}.A"].numpy(), tensors[f"align{k}.b"].numpy()))
        return feat

    def to(self, device: torch.device | str) -> VisualFeaturizer:
        for m in self.models_:
            m.to(device)
        return self


def _affine_fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``dst ≈ src @ A + b``; returns ``(A (d,d), b (d,))`` float32."""
    x = np.hstack([src.astype(np.float64), np.ones((len(src), 1))])
    coef, *_ = np.linalg.lstsq(x, dst.astype(np.float64), rcond=None)
    return coef[:-1].astype(np.float32), coef[-1].astype(np.float32)
