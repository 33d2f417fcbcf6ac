"""The rank-siamese network (Chen et al. 2020, §4.2) and its importable training loop.

A branch CNN maps a tile to a d-dim visual feature f(x) (d = 4 in the paper); for a pair the
element-wise difference v_ij = f(x_i) − f(x_j) goes through an FC(d×2) layer and a
cross-entropy loss on the label [y_i > y_j]. Training forms pairs *inside* each mini-batch so
every tile is encoded once per step, yet each step sees O(B²) pairs:

- ``tie_margin``: pairs whose |Δ log target| is below the margin are skipped; their label is
  mostly price noise (the synthetic city has ~9% price noise), so they only add label noise.
- ``local_fraction``: part of each batch is filled with *matched partners* (nearest neighbours
  in a caller-given attribute space, e.g. location + size). Their price difference is mostly
  due to what the attributes miss — which is exactly what visual features are for.

Augmentation respects top-down imagery: random 90° rotations and flips (dihedral group).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from houseprice.vision.backbones import Backbone, BackboneConfig


@dataclass
class SiameseConfig:
    """Hyper-parameters of the rank-siamese training (all stored in model.json)."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    feature_dim: int = 4  # d, the visual feature size (paper: 4)
    image_size: int = 64
    epochs: int = 24
    batch_size: int = 32
    lr: float = 1e-2
    weight_decay: float = 1e-4
    tie_margin: float = 0.08  # skip pairs with |Δ log target| < margin
    local_fraction: float = 0.0  # share of each batch made of matched partners
    local_k: int = 8  # matched partner drawn among this many nearest neighbours
    patience: int = 10  # early stopping on held-out pair accuracy
    val_fraction: float = 0.15
    freeze_backbone: bool = False  # paper mode: only the FC (C×d) is trained
    augment: bool = True
    max_val_pairs: int = 20000
    pooling: str = "radial"  # "radial" (centre-aware, see RadialGate) or "gap" (paper)
    radial_knots: int = 5
    radial_prior_sigma: float | None = 0.5  # gate starts as a centre prior (None: flat)
    # Weight of an auxiliary rank loss on a second target column (pair head ``fc_aux``);
    # 0 = a plain rank siamese. The house-price model sets it (see houseprice.valuation.model).
    aux_weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["backbone"] = self.backbone.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SiameseConfig:
        d = dict(d)
        d["backbone"] = BackboneConfig.from_dict(d["backbone"])
        d.setdefault("pooling", "gap")  # models saved before the option existed used GAP
        d.setdefault("aux_weight", 0.0)  # ... and had no auxiliary head
        return cls(**d)


class RadialGate(nn.Module):
    """Centre-aware gate on the last conv map: a per-channel weight by distance to the centre.

    Tiles are centred on the house (DESIGN §3), so *where* an object lies matters: a pool in
    the house's own lot moves its price, the neighbour's pool does not. Global average pooling
    (the paper's head) alone throws that away. The gate multiplies ``F[c, h, w]`` by
    ``w_c(ρ_hw)``, with ``ρ`` the distance of cell ``(h, w)`` to the map centre divided by the
    largest such distance (0 … 1) and ``w_c`` piecewise linear over ``knots`` evenly spaced
    values of ``ρ``, parametrised as ``prior + δ``: the prior is a Gaussian in ``ρ`` with
    ``prior_sigma`` (the house and its lot are near the centre), or flat 1 (``None``: the gate
    starts as the identity, i.e. plain GAP); ``δ = 0`` at init and weight decay pulls back
    towards the prior. The weights depend on ``ρ`` only, so
    the branch stays invariant to the 90° rotations and flips used as augmentation, and it
    works for any map size.

    The gate is the *last* layer of ``forward_features``: the explained map is the gated one,
    so followed by GAP + linear the Grad-CAM map is exactly each cell's contribution (CAM),
    including where the cell is.
    """

    def __init__(self, channels: int, knots: int = 5, prior_sigma: float | None = None) -> None:
        super().__init__()
        if knots < 2:
            raise ValueError(f"RadialGate needs at least 2 knots, got {knots}")
        if prior_sigma is not None and prior_sigma <= 0:
            raise ValueError(f"prior_sigma must be positive, got {prior_sigma}")
        self.delta = nn.Parameter(torch.zeros(channels, knots))  # (C, K)
        rho = torch.linspace(0.0, 1.0, knots)
        prior = (
            torch.ones(knots) if prior_sigma is None else torch.exp(-0.5 * (rho / prior_sigma) ** 2)
        )
        self.register_buffer("prior", prior)  # (K,)

    def weights(self, h: int, w: int) -> Tensor:
        """Per-channel spatial weights ``(C, h, w)`` for an ``h × w`` map."""
        dev = self.delta.device
        ys = torch.arange(h, device=dev, dtype=torch.float32) - (h - 1) / 2
        xs = torch.arange(w, device=dev, dtype=torch.float32) - (w - 1) / 2
        rho = torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)  # (h, w)
        rho = rho / rho.max().clamp_min(1e-6)
        k = self.delta.shape[1]
        pos = rho * (k - 1)
        i0 = pos.floor().long().clamp(0, k - 2)
        t = (pos - i0).to(self.delta.dtype)  # (h, w)
        v = self.prior[None, :] + self.delta  # (C, K) knot values
        return v[:, i0] * (1 - t) + v[:, i0 + 1] * t  # (C, h, w)

    def forward(self, fmap: Tensor) -> Tensor:
        # (B, C, h, w) -> (B, C, h, w)
        return fmap * self.weights(*fmap.shape[-2:])


class RankSiamese(nn.Module):
    """Branch ``f`` (backbone [→ gate] → GAP → Linear(C, d)) plus the pair head FC(d×2).

    ``pooling="gap"`` (this class's default) is the paper's head; ``"radial"`` (the
    :class:`SiameseConfig` default) inserts a
    :class:`RadialGate` before GAP, so the branch can tell the house's own lot from the
    neighbours'.
    """

    def __init__(
        self,
        backbone: BackboneConfig | Backbone | None = None,
        feature_dim: int = 4,
        *,
        pooling: str = "gap",
        radial_knots: int = 5,
        radial_prior_sigma: float | None = None,
        aux_head: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone if isinstance(backbone, Backbone) else Backbone(backbone)
        if pooling == "radial":
            self.gate: RadialGate | None = RadialGate(
                self.backbone.out_channels, radial_knots, radial_prior_sigma
            )
        elif pooling == "gap":
            self.gate = None
        else:
            raise ValueError(f"unknown pooling {pooling!r}; choose 'radial' or 'gap'")
        self.embed = nn.Linear(self.backbone.out_channels, feature_dim)
        self.fc = nn.Linear(feature_dim, 2)
        # Optional second pair head FC(d×2) for an auxiliary ranking target (multi-task).
        self.fc_aux: nn.Linear | None = nn.Linear(feature_dim, 2) if aux_head else None
        # Input normalisation, fitted on training tiles and saved with the weights.
        self.register_buffer("pixel_mean", torch.full((3,), 0.5))
        self.register_buffer("pixel_std", torch.full((3,), 0.25))

    @property
    def target_layer(self) -> nn.Module:
        """The module whose output ``forward_features`` returns (the map explainers hook)."""
        return self.backbone.target_layer if self.gate is None else self.gate

    def preprocess(self, tiles: Tensor) -> Tensor:
        # tiles: (B, H, W, 3) uint8 -> (B, 3, H, W) float, normalised
        x = tiles.permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self.pixel_mean[None, :, None, None]) / self.pixel_std[None, :, None, None]

    def forward_features(self, x: Tensor) -> Tensor:
        fmap = self.backbone.forward_features(x)  # (B, C, h, w)
        return fmap if self.gate is None else self.gate(fmap)

    def pool(self, fmap: Tensor) -> Tensor:
        # (B, C, h, w) -> (B, C)
        return Backbone.pool(fmap)

    def forward_head(self, fmap: Tensor) -> Tensor:
        return self.embed(self.pool(fmap))  # (B, C, h, w) -> (B, d)

    @classmethod
    def from_config(cls, cfg: SiameseConfig) -> RankSiamese:
        return cls(
            cfg.backbone,
            cfg.feature_dim,
            pooling=cfg.pooling,
            radial_knots=cfg.radial_knots,
            radial_prior_sigma=cfg.radial_prior_sigma,
            aux_head=cfg.aux_weight > 0,
        )

    def branch(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))  # (B, d)

    def pair_logits(self, fi: Tensor, fj: Tensor, head: nn.Module | None = None) -> Tensor:
        # v_ij = f(x_i) − f(x_j) -> FC(d×2) (Chen §4.2); class 1 means y_i > y_j.
        # ``head`` picks another pair head (``fc_aux``); default: the main head ``fc``.
        return (self.fc if head is None else head)(fi - fj)  # (P, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.branch(x)


def fit_normalisation(model: RankSiamese, tiles: Tensor) -> None:
    """Set the model's pixel mean/std from training tiles ``(N, H, W, 3)`` uint8."""
    x = tiles.reshape(-1, 3).float() / 255.0
    model.pixel_mean.copy_(x.mean(0))
    model.pixel_std.copy_(x.std(0).clamp_min(1e-3))


def dihedral_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random 90° rotation and horizontal flip per sample (top-down imagery has no 'up')."""
    # x: (B, C, H, W)
    b = x.shape[0]
    k = torch.randint(0, 4, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    out = x.clone()
    for r in range(1, 4):
        idx = (k == r).nonzero().flatten().to(x.device)
        if len(idx):
            out[idx] = torch.rot90(x[idx], r, dims=(2, 3))
    fidx = flip.nonzero().flatten().to(x.device)
    if len(fidx):
        out[fidx] = out[fidx].flip(3)
    return out


def batch_pairs(targets: Tensor, tie_margin: float) -> tuple[Tensor, Tensor, Tensor]:
    """All i<j pairs of a batch whose targets differ by more than ``tie_margin``.

    Returns index tensors ``(i, j)`` and labels ``[t_i > t_j]`` (long).
    """
    n = targets.shape[0]
    i, j = torch.triu_indices(n, n, offset=1, device=targets.device)
    diff = targets[i] - targets[j]
    keep = diff.abs() > tie_margin
    return i[keep], j[keep], (diff[keep] > 0).long()


def pair_loss(
    model: RankSiamese,
    feats: Tensor,
    targets: Tensor,
    tie_margin: float,
    head: nn.Module | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean rank cross-entropy over the batch's pairs; also returns #correct.

    ``head`` is the pair head FC(d×2) to use (default: the model's main head ``fc``).
    """
    i, j, y = batch_pairs(targets, tie_margin)
    if len(y) == 0:
        zero = feats.sum() * 0.0
        return zero, torch.zeros((), device=feats.device)
    logits = model.pair_logits(feats[i], feats[j], head)  # (P, 2)
    loss = F.cross_entropy(logits, y)
    correct = (logits.argmax(1) == y).float().sum()
    return loss, correct / len(y)


def make_batches(
    n_train: int, cfg: SiameseConfig, generator: torch.Generator, neighbours: np.ndarray | None
) -> list[np.ndarray]:
    """Index batches for one epoch: random anchors plus (optionally) matched partners."""
    perm = torch.randperm(n_train, generator=generator).numpy()
    n_local = round(cfg.batch_size * cfg.local_fraction) if neighbours is not None else 0
    n_anchor = max(2, cfg.batch_size - n_local)
    batches = []
    for s in range(0, n_train, n_anchor):
        anchors = perm[s : s + n_anchor]
        if n_local and len(anchors) > 0:
            pick = torch.randint(0, neighbours.shape[1], (len(anchors),), generator=generator)
            partners = neighbours[anchors, pick.numpy()][:n_local]
            anchors = np.unique(np.concatenate([anchors, partners]))
        if len(anchors) >= 2:
            batches.append(anchors)
    return batches


def train_one_epoch(
    model: RankSiamese,
    tiles: Tensor,
    targets: Tensor,
    optimizer: torch.optim.Optimizer,
    cfg: SiameseConfig,
    *,
    generator: torch.Generator,
    neighbours: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, float]:
    """One pass over the training tiles; returns mean loss and in-batch pair accuracy."""
    from tqdm.auto import tqdm

    model.train()
    if cfg.freeze_backbone:
        model.backbone.eval()  # frozen BN statistics in paper mode
    losses, accs = [], []
    batches = make_batches(len(tiles), cfg, generator, neighbours)
    for idx in tqdm(batches, desc="siamese", disable=not progress, leave=False):
        x = model.preprocess(tiles[idx].to(device))  # (B, 3, H, W)
        if cfg.augment:
            x = dihedral_augment(x, generator)
        feats = model.branch(x)  # (B, d)
        t = targets[idx].to(device)  # (B,) or (B, 2): main [, auxiliary] target
        loss, acc = pair_loss(model, feats, t if t.ndim == 1 else t[:, 0], cfg.tie_margin)
        if t.ndim == 2 and model.fc_aux is not None:
            aux, _ = pair_loss(model, feats, t[:, 1], cfg.tie_margin, head=model.fc_aux)
            loss = loss + cfg.aux_weight * aux
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        accs.append(float(acc))
    return {
        "loss": float(np.mean(losses)) if losses else math.nan,
        "pair_accuracy": float(np.mean(accs)) if accs else math.nan,
    }


@torch.no_grad()
def extract_features(
    model: RankSiamese, tiles: Tensor, *, batch_size: int = 256, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Visual features f(x) for tiles ``(N, H, W, 3)`` uint8 → ``(N, d)`` float32."""
    model.eval()
    out = []
    for s in range(0, len(tiles), batch_size):
        x = model.preprocess(tiles[s : s + batch_size].to(device))
        out.append(model.branch(x).float().cpu())
    if not out:
        return np.zeros((0, model.embed.out_features), dtype=np.float32)
    return torch.cat(out).numpy()


def held_out_pairs(targets: np.ndarray, tie_margin: float, max_pairs: int, seed: int) -> np.ndarray:
    """Deterministic evaluation pairs ``(P, 2)`` among the given rows, near-ties excluded."""
    n = len(targets)
    i, j = np.triu_indices(n, k=1)
    keep = np.abs(targets[i] - targets[j]) > tie_margin
    pairs = np.stack([i[keep], j[keep]], axis=1)
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = pairs[np.sort(rng.choice(len(pairs), max_pairs, replace=False))]
    return pairs


@torch.no_grad()
def evaluate(
    model: RankSiamese,
    tiles: Tensor,
    targets: np.ndarray,
    pairs: np.ndarray,
    *,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Held-out pair accuracy and loss: does the model order each pair by target?"""
    if len(pairs) == 0:
        return {"pair_accuracy": math.nan, "loss": math.nan}
    feats = torch.from_numpy(extract_features(model, tiles, device=device)).to(device)
    fi, fj = feats[pairs[:, 0]], feats[pairs[:, 1]]
    y = torch.from_numpy((targets[pairs[:, 0]] > targets[pairs[:, 1]]).astype(np.int64))
    logits = model.pair_logits(fi, fj).cpu()
    return {
        "pair_accuracy": float((logits.argmax(1) == y).float().mean()),
        "loss": float(F.cross_entropy(logits, y)),
    }


@dataclass
class FitResult:
    model: RankSiamese
    history: list[dict[str, float]]
    best_epoch: int
    val_pair_accuracy: float


def _neighbours(match: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    z = (match - match.mean(0)) / (match.std(0) + 1e-9)
    k = min(k + 1, len(z))
    _, idx = NearestNeighbors(n_neighbors=k).fit(z).kneighbors(z)
    return idx[:, 1:] if k > 1 else idx


def fit_siamese(
    tiles: np.ndarray,
    targets: np.ndarray,
    *,
    config: SiameseConfig,
    match: np.ndarray | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "siamese",
) -> FitResult:
    """Train a rank-siamese model on tiles ``(N, H, W, 3)`` uint8 and targets ``(N,)``.

    ``targets`` are compared pairwise (log price, or any score to rank by). ``match`` is an
    optional ``(N, k)`` attribute matrix for matched partners (NaN-free). A random
    ``val_fraction`` of rows is held out for early stopping on pair accuracy.
    """
    from tqdm.auto import tqdm

    cfg = config
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(tiles)
    if n < 4:
        raise ValueError(f"need at least 4 tiles to train the siamese network, got {n}")
    perm = rng.permutation(n)
    n_val = max(2, round(n * cfg.val_fraction))
    val, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    tiles_t = torch.from_numpy(np.ascontiguousarray(tiles))
    targets = np.asarray(targets, dtype=np.float64)
    if cfg.aux_weight > 0 and (targets.ndim != 2 or targets.shape[1] != 2):
        raise ValueError(
            f"aux_weight={cfg.aux_weight} needs targets of shape (N, 2) (main, auxiliary), "
            f"got {targets.shape}"
        )
    main = targets if targets.ndim == 1 else targets[:, 0]
    model = RankSiamese.from_config(cfg).to(device)
    fit_normalisation(model, tiles_t[tr])
    if cfg.freeze_backbone:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    neigh = (
        _neighbours(match[tr], cfg.local_k) if match is not None and cfg.local_fraction else None
    )
    val_pairs = held_out_pairs(main[val], cfg.tie_margin, cfg.max_val_pairs, seed)
    tr_tiles, tr_targets = tiles_t[tr], torch.from_numpy(targets[tr]).float()
    best_acc, best_state, best_epoch, stale = -1.0, None, -1, 0
    history: list[dict[str, float]] = []
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        stats = train_one_epoch(
            model, tr_tiles, tr_targets, opt, cfg, generator=gen, neighbours=neigh, device=device
        )
        sched.step()
        ev = evaluate(model, tiles_t[val], main[val], val_pairs, device=device)
        history.append(
            {
                "epoch": epoch,
                "train_loss": stats["loss"],
                "train_pair_accuracy": stats["pair_accuracy"],
                "val_pair_accuracy": ev["pair_accuracy"],
                "val_loss": ev["loss"],
            }
        )
        bar.set_postfix(val_acc=f"{ev['pair_accuracy']:.3f}")
        if ev["pair_accuracy"] > best_acc:
            best_acc, best_epoch, stale = ev["pair_accuracy"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(
        model=model, history=history, best_epoch=best_epoch, val_pair_accuracy=best_acc
    )
