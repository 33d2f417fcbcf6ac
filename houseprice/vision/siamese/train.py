"""Training the rank-siamese net (Chen §4.2): training config, batches, epochs, evaluation.

Training forms pairs *inside* each mini-batch so every tile is encoded once per step, yet each
step sees O(B²) pairs, with a cross-entropy loss on the label [y_i > y_j] (Chen §4.2):

- ``tie_margin``: pairs whose |Δ log target| is below the margin are skipped; their label is
  mostly price noise (the synthetic city has ~9% price noise), so they only add label noise.
- ``local_fraction``: part of each batch is filled with *matched partners* (nearest neighbours
  in a caller-given attribute space, e.g. location + size). Their price difference is mostly
  due to what the attributes miss — which is exactly what visual features are for.

Augmentation (dihedral group), in-batch pairs and the loss: :mod:`houseprice.vision.siamese.pairs`.
Under an initialised ``torch.distributed`` process group (world size > 1) the same training
runs data-parallel, with the one-process update on the same global batch
(:mod:`houseprice.vision.siamese.distributed`); without one nothing changes.
:class:`SiameseTrainConfig` holds these training settings; the architecture is the
:class:`~houseprice.vision.siamese.model.SiameseConfig`.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from houseprice.vision.backbones import load_backbone_weights
from houseprice.vision.siamese.distributed import Ranks, current, sync_batchnorm
from houseprice.vision.siamese.model import RankSiamese, SiameseConfig, fit_normalisation
from houseprice.vision.siamese.pairs import (
    apply_dihedral,
    dihedral_augment,
    dihedral_draws,
    pair_loss,
)


@dataclass
class SiameseTrainConfig:
    """How the rank-siamese net is trained (stored in model.json next to the architecture)."""

    epochs: int = 24
    batch_size: int = 32
    lr: float = 1e-2
    weight_decay: float = 1e-4
    tie_margin: float = 0.08  # skip pairs with |Δ log target| < margin
    local_fraction: float = 0.0  # share of each batch made of matched partners
    local_k: int = 8  # matched partner drawn among this many nearest neighbours
    patience: int = 10  # early stopping on held-out pair accuracy
    val_fraction: float = 0.15
    freeze_backbone: bool = False  # paper mode (Chen §4.2): only the FC (C×d) is trained
    augment: bool = True
    max_val_pairs: int = 20000
    # Weight of the auxiliary rank loss on a second target column (pair head ``fc_aux``, so
    # SiameseConfig.aux_head must be set); 0 = a plain rank siamese.
    aux_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 2 or self.lr <= 0 or self.aux_weight < 0:
            raise ValueError("need epochs >= 0, batch_size >= 2, lr > 0 and aux_weight >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SiameseTrainConfig:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown siamese training keys {unknown}")
        return cls(**d)


def check_configs(config: SiameseConfig, training: SiameseTrainConfig) -> None:
    """The auxiliary head exists exactly when it is trained: ``aux_head`` iff ``aux_weight > 0``."""
    if config.aux_head != (training.aux_weight > 0):
        raise ValueError(
            f"SiameseConfig.aux_head={config.aux_head} does not match "
            f"SiameseTrainConfig.aux_weight={training.aux_weight}: the auxiliary pair head must "
            "be built (aux_head=True) exactly when its loss has a positive weight"
        )


def make_batches(
    n_train: int,
    cfg: SiameseTrainConfig,
    generator: torch.Generator,
    neighbours: np.ndarray | None,
) -> list[np.ndarray]:
    """Index batches for one epoch: random anchors plus (optionally) matched partners."""
    perm = torch.randperm(n_train, generator=generator).numpy()
    n_local = round(cfg.batch_size * cfg.local_fraction) if neighbours is not None else 0
    n_anchor = max(2, cfg.batch_size - n_local)
    batches = []
    for s in range(0, n_train, n_anchor):
        anchors = perm[s : s + n_anchor]
        if n_local and len(anchors) > 0:
            assert neighbours is not None
            pick = torch.randint(0, neighbours.shape[1], (len(anchors),), generator=generator)
            partners = neighbours[anchors, pick.numpy()][:n_local]
            anchors = np.unique(np.concatenate([anchors, partners]))
        if len(anchors) >= 2:
            batches.append(anchors)
    return batches


def encode_batch(
    model: RankSiamese,
    tiles: Tensor,
    idx: np.ndarray,
    cfg: SiameseTrainConfig,
    generator: torch.Generator,
    device: torch.device | str,
    ranks: Ranks | None = None,
) -> Tensor:
    """Features ``(B, d)`` of the (augmented) batch ``idx``, each tile encoded once.

    With ``ranks`` every rank draws the augmentation of the whole batch (the same draws as one
    process), encodes its shard and gathers the others' (gradients flow back to every shard).
    """
    if ranks is None:
        x = model.preprocess(tiles[idx].to(device))  # (B, 3, H, W)
        if cfg.augment:
            x = dihedral_augment(x, generator)
        return model.branch(x)  # (B, d)
    start, stop, _ = ranks.shard(len(idx))
    x = model.preprocess(tiles[idx[start:stop]].to(device))  # (b, 3, H, W), this rank's shard
    if cfg.augment:
        k, flip = dihedral_draws(len(idx), generator)
        x = apply_dihedral(x, k[start:stop], flip[start:stop])
    return ranks.gather_rows(model.branch(x), len(idx), grad=True)  # (B, d)


def train_one_epoch(
    model: RankSiamese,
    tiles: Tensor,
    targets: Tensor,
    optimizer: torch.optim.Optimizer,
    cfg: SiameseTrainConfig,
    *,
    generator: torch.Generator,
    neighbours: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    ranks: Ranks | None = None,
) -> dict[str, float]:
    """One pass over the training tiles; returns mean loss and in-batch pair accuracy.

    ``ranks`` (data-parallel, see :mod:`~houseprice.vision.siamese.distributed`): the model's
    BatchNorms must be synchronised (:func:`~houseprice.vision.siamese.distributed.sync_batchnorm`);
    gradients are averaged over the ranks before each step.
    """
    from tqdm.auto import tqdm

    model.train()
    if cfg.freeze_backbone:
        model.backbone.eval()  # frozen BN statistics in paper mode
    losses, accs = [], []
    params = [p for p in model.parameters() if p.requires_grad]
    batches = make_batches(len(tiles), cfg, generator, neighbours)
    for idx in tqdm(batches, desc="siamese", disable=not progress, leave=False):
        feats = encode_batch(model, tiles, idx, cfg, generator, device, ranks)  # (B, d)
        t = targets[idx].to(device)  # (B,) or (B, 2): main [, auxiliary] target
        loss, acc = pair_loss(model, feats, t if t.ndim == 1 else t[:, 0], cfg.tie_margin)
        if t.ndim == 2 and model.fc_aux is not None:
            aux, _ = pair_loss(model, feats, t[:, 1], cfg.tie_margin, head=model.fc_aux)
            loss = loss + cfg.aux_weight * aux
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if ranks is not None:
            ranks.average_gradients(params)
        optimizer.step()
        losses.append(float(loss.detach()))
        accs.append(float(acc))
    return {
        "loss": float(np.mean(losses)) if losses else math.nan,
        "pair_accuracy": float(np.mean(accs)) if accs else math.nan,
    }


def dihedral_mean(model: RankSiamese, x: Tensor) -> Tensor:
    """The branch averaged over the 8 dihedral transforms of ``x (B, 3, H, W)`` → ``(B, D)``.

    The net is trained on the whole group (``pairs.dihedral_augment``), so its mean over the
    group is the invariant feature of the tile; one transform is one noisy sample of it."""
    acc = model.branch(x)
    for flip in (False, True):
        xf = x.flip(3) if flip else x
        for k in range(4):
            if k or flip:
                acc = acc + model.branch(torch.rot90(xf, k, dims=(2, 3)))
    return acc / 8.0


@torch.no_grad()
def extract_features(
    model: RankSiamese, tiles: Tensor, *, batch_size: int = 256, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Branch outputs for tiles ``(N, H, W, 3)`` uint8 → ``(N, d + aux_dim)`` float32.

    The exported visual feature f(x) is the first ``config.feature_dim`` columns. With
    ``config.test_time_dihedral`` each is the mean over the 8 dihedral transforms."""
    model.eval()
    tta = model.config.test_time_dihedral
    out = []
    for s in range(0, len(tiles), batch_size):
        x = model.preprocess(tiles[s : s + batch_size].to(device))
        out.append((dihedral_mean(model, x) if tta else model.branch(x)).float().cpu())
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
    ranks: Ranks | None = None,
) -> dict[str, float]:
    """Held-out pair accuracy and loss: does the model order each pair by target?

    With ``ranks`` each rank encodes a shard of ``tiles`` and all get every feature.
    """
    if len(pairs) == 0:
        return {"pair_accuracy": math.nan, "loss": math.nan}
    if ranks is None:
        feats = torch.from_numpy(extract_features(model, tiles, device=device)).to(device)
    else:
        start, stop, _ = ranks.shard(len(tiles))
        own = extract_features(model, tiles[start:stop], device=device)
        feats = ranks.gather_rows(torch.from_numpy(own).to(device), len(tiles), grad=False)
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


def _check_targets(targets: np.ndarray, training: SiameseTrainConfig) -> np.ndarray:
    targets = np.asarray(targets, dtype=np.float64)
    if training.aux_weight > 0 and (targets.ndim != 2 or targets.shape[1] != 2):
        raise ValueError(
            f"aux_weight={training.aux_weight} needs targets of shape (N, 2) (main, auxiliary), "
            f"got {targets.shape}"
        )
    return targets


def _optimiser(
    model: RankSiamese, cfg: SiameseTrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW over the trainable parameters (the FC layers only when the backbone is frozen)."""
    if cfg.freeze_backbone:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))


def _run_epochs(
    model: RankSiamese,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    cfg: SiameseTrainConfig,
    train: tuple[Tensor, Tensor],
    held_out: tuple[Tensor, np.ndarray, np.ndarray],
    *,
    generator: torch.Generator,
    neighbours: np.ndarray | None,
    device: torch.device | str,
    ranks: Ranks | None,
    bar: Any,
) -> tuple[list[dict[str, float]], dict[str, Tensor] | None, int, float]:
    """The epochs with early stopping: history, best state, its epoch and val accuracy."""
    tr_tiles, tr_targets = train
    val_tiles, val_main, val_pairs = held_out
    best_acc, best_state, best_epoch, stale = -1.0, None, -1, 0
    history: list[dict[str, float]] = []
    for epoch in bar:
        stats = train_one_epoch(
            model, tr_tiles, tr_targets, opt, cfg, generator=generator, neighbours=neighbours,
            device=device, ranks=ranks,
        )  # fmt: skip
        sched.step()
        ev = evaluate(model, val_tiles, val_main, val_pairs, device=device, ranks=ranks)
        if ranks is not None:  # rank 0's numbers decide early stopping on every rank
            acc, loss = ranks.broadcast_floats([ev["pair_accuracy"], ev["loss"]])
            ev = {"pair_accuracy": acc, "loss": loss}
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
    return history, best_state, best_epoch, best_acc


def fit_siamese(
    tiles: np.ndarray,
    targets: np.ndarray,
    *,
    config: SiameseConfig,
    training: SiameseTrainConfig,
    match: np.ndarray | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "siamese",
    weights: str | Path | None = None,
) -> FitResult:
    """Train a rank-siamese model on tiles ``(N, H, W, 3)`` uint8 and targets ``(N,)``.

    ``targets`` are compared pairwise (log price, or any score to rank by); ``(N, 2)`` adds
    the auxiliary head's target (``training.aux_weight > 0``). ``match`` is an optional
    ``(N, k)`` attribute matrix for matched partners (NaN-free). A random ``val_fraction`` of
    rows is held out for early stopping on pair accuracy. ``weights`` is a local backbone
    weights file loaded before training (after the random initialisation, which it replaces).

    Inside an initialised ``torch.distributed`` process group of W > 1 ranks (e.g. under
    ``torchrun``), every rank calls this with the same arguments and the training runs
    data-parallel: each rank encodes 1/W of each global batch of ``batch_size`` tiles, the
    loss is over every pair of the global batch, and every rank returns the same model
    (:mod:`houseprice.vision.siamese.distributed`). On CUDA, rank r uses ``cuda:LOCAL_RANK``.
    """
    from tqdm.auto import tqdm

    check_configs(config, training)
    cfg = training
    ranks = current(device)
    if ranks is not None:
        device, progress = ranks.device, progress and ranks.is_main
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
    targets = _check_targets(targets, cfg)
    main = targets if targets.ndim == 1 else targets[:, 0]
    model = RankSiamese(config)
    if weights is not None:
        load_backbone_weights(model.backbone, weights)
    model = model.to(device)
    fit_normalisation(model, tiles_t[tr])
    if ranks is not None:
        ranks.broadcast_module(model)  # every rank starts from rank 0's weights
    opt, sched = _optimiser(model, cfg)
    neigh = (
        _neighbours(match[tr], cfg.local_k) if match is not None and cfg.local_fraction else None
    )
    val_pairs = held_out_pairs(main[val], cfg.tie_margin, cfg.max_val_pairs, seed)
    tr_tiles, tr_targets = tiles_t[tr], torch.from_numpy(targets[tr]).float()
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False)
    synced = contextlib.nullcontext() if ranks is None else sync_batchnorm(model)
    with synced:
        history, best_state, best_epoch, best_acc = _run_epochs(
            model, opt, sched, cfg, (tr_tiles, tr_targets), (tiles_t[val], main[val], val_pairs),
            generator=gen, neighbours=neigh, device=device, ranks=ranks, bar=bar,
        )  # fmt: skip
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(
        model=model, history=history, best_epoch=best_epoch, val_pair_accuracy=best_acc
    )
