"""Reference rows for the harness: non-learned and frozen-pretrained extractors with ridge.

Not the product (the product is a rank-siamese feature extractor feeding LightGBM); these
rows say how far a simple extractor gets on the same harness, so that a learned net that loses
to one is said to lose plainly.

- ``mosaiks``: random convolutional features (Rolf et al. 2021, *Nature Communications*,
  "MOSAIKS"): ``k`` 3×3 patches drawn from training tiles, each normalised, are the filters;
  ``ReLU(conv − 1)`` and ``ReLU(−conv − 1)`` are averaged over the whole tile and over its centre
  third (the house's lot), giving ``4k`` features.
- ``efficientnet``: the frozen ImageNet EfficientNet-Lite0 trunk (output stride 16, no head:
  320 channels on a 4×4 map at 64 px), averaged over the map and over its centre 2×2, and over
  the 8 dihedral transforms: 640 features.

Either set is turned into one feature by ridge regression (``RidgeCV``) on the product's pair
target (the out-of-fold residual of an attributes-only LightGBM), cross-fitted exactly as the
siamese nets are (3 folds; out-of-fold for fitting rows, the mean of the fold ridges for the
scored rows).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _float_tiles(tiles: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(tiles).permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W)


def _centre(fmap: torch.Tensor) -> torch.Tensor:
    h, w = fmap.shape[-2:]
    return fmap[..., h // 3 : h - h // 3, w // 3 : w - w // 3]


def mosaiks(tiles: np.ndarray, fit_rows: np.ndarray, k: int = 256, seed: int = 0) -> np.ndarray:
    """``(N, 4k)`` random-patch convolution features (filters drawn from ``fit_rows`` only)."""
    x = _float_tiles(tiles)
    rng = np.random.default_rng(seed)
    n, _, h, w = x.shape
    src = rng.choice(fit_rows, k)
    ys, xs = rng.integers(0, h - 2, k), rng.integers(0, w - 2, k)
    filt = torch.stack([x[i, :, y : y + 3, c : c + 3] for i, y, c in zip(src, ys, xs, strict=True)])
    filt = filt - filt.mean(dim=(1, 2, 3), keepdim=True)
    filt = filt / filt.flatten(1).norm(dim=1).clamp_min(1e-3)[:, None, None, None]
    out = []
    with torch.no_grad():
        for s in range(0, n, 256):
            xb = x[s : s + 256]
            xb = (xb - xb.mean(dim=(1, 2, 3), keepdim=True)) / xb.std(dim=(1, 2, 3), keepdim=True)
            conv = F.conv2d(xb, filt)  # (B, k, H-2, W-2)
            parts = []
            for act in (F.relu(conv - 1.0), F.relu(-conv - 1.0)):
                parts += [act.mean(dim=(2, 3)), _centre(act).mean(dim=(2, 3))]
            out.append(torch.cat(parts, dim=1))
    return torch.cat(out).numpy()


def efficientnet(tiles: np.ndarray) -> np.ndarray:
    """``(N, 640)`` frozen ImageNet EfficientNet-Lite0 features (dihedral mean)."""
    from houseprice.vision.backbones import IMAGENET_MEAN, IMAGENET_STD, Backbone, BackboneConfig

    net = Backbone(BackboneConfig(name="efficientnet_lite0", output_stride=16, head=False)).eval()
    mean = torch.tensor(IMAGENET_MEAN)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD)[None, :, None, None]
    x = (_float_tiles(tiles) - mean) / std
    out = []
    with torch.no_grad():
        for s in range(0, len(x), 128):
            xb = x[s : s + 128]
            acc = 0.0
            for flip in (False, True):
                for r in range(4):
                    fmap = net.forward_features(torch.rot90(xb.flip(3) if flip else xb, r, (2, 3)))
                    acc = acc + torch.cat(
                        [fmap.mean(dim=(2, 3)), _centre(fmap).mean(dim=(2, 3))], dim=1
                    )
            out.append(acc / 8.0)
    return torch.cat(out).numpy()


def cross_fitted_ridge(
    feats: np.ndarray, target: np.ndarray, fit_rows: np.ndarray, n_folds: int = 3, seed: int = 0
) -> np.ndarray:
    """``(N,)``: out-of-fold ridge predictions for ``fit_rows``, fold-mean for the others."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = np.zeros(len(feats))
    others = np.setdiff1d(np.arange(len(feats)), fit_rows)
    folds = np.random.default_rng(seed).permutation(len(fit_rows)) % n_folds
    for f in range(n_folds):
        tr, te = fit_rows[folds != f], fit_rows[folds == f]
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 5, 13)))
        model.fit(feats[tr], target[folds != f])
        out[te] = model.predict(feats[te])
        out[others] += model.predict(feats[others]) / n_folds
    return out
