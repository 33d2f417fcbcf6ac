"""The grad-weight database of a house-price model: built at train time, transferred at test time.

Chen §4.2 (last paragraph), applied to the rank-siamese net:

- at ``houseprice train`` time, grad-weights of every training house come from the rank-pair
  cross-entropy over ``N_s = 50`` sampled partner houses, averaged, top-50 channels kept
  (``SampledGradCAM`` + ``RankPairSampler``), and stored with a search key in the model
  folder (``gradweights.safetensors`` + ``gradweights.json``);
- any house, seen or new, gets its map by nearest-neighbour weight transfer (Chen §3.3): a
  forward pass to the explained layer and a database lookup, no backpropagation.

The explained network is the first of the model's cross-fitted siamese nets (its features are
the reference space the others are aligned to).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from houseprice.data.houses import Dataset
from houseprice.errors import FormatError, UserInputError
from houseprice.explain import (
    GradWeightDatabase,
    RankPairSampler,
    SampledGradCAM,
    WeightTransferCAM,
)
from houseprice.runtime import resolve_device
from houseprice.valuation.model import HousePriceModel
from houseprice.vision.siamese import RankSiamese, extract_features

KeyKind = Literal["visual", "pooled"]
DB_NAME = "gradweights"


@dataclass
class ExplainConfig:
    """Settings of the siamese explanations (stored in model.json under info.explain)."""

    n_samples: int = 50  # N_s sampled partner houses per training house (Chen §4.2)
    top_m: int = 50  # channels kept (Chen §4.2)
    # Search space for the nearest neighbour, a measured choice (standard demo city, 200 unseen
    # houses, evidence-mask ratio): 4-d visual feature 0.207 vs pooled backbone map 0.194.
    key: KeyKind = "visual"
    batch_size: int = 64
    seed: int = 0


def explained_net(model: HousePriceModel) -> RankSiamese:
    if model.featurizer is None or not model.featurizer.models_:
        raise UserInputError(
            "this model has no visual features to explain (it was trained without tiles)"
        )
    net = model.featurizer.models_[0]
    net.eval()
    return net


@torch.no_grad()
def search_keys(
    net: RankSiamese,
    tiles: np.ndarray,
    key: KeyKind,
    *,
    device: torch.device,
    batch_size: int = 256,
) -> Tensor:
    """Nearest-neighbour keys of tiles ``(N,H,W,3)`` uint8: visual feature or pooled map."""
    out = []
    for s in range(0, len(tiles), batch_size):
        x = net.preprocess(torch.from_numpy(tiles[s : s + batch_size]).to(device))
        fmap = net.forward_features(x)  # (B, C, h, w)
        out.append((net.forward_head(fmap) if key == "visual" else net.pool(fmap)).cpu())
    return torch.cat(out)


def tile_batches(
    tiles: np.ndarray, scores: np.ndarray | None, net: RankSiamese, bs: int, device: torch.device
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Preprocessed tile batches ``(B, 3, S, S)`` with their scores ``(B,)`` (or None)."""
    for s in range(0, len(tiles), bs):
        x = net.preprocess(torch.from_numpy(tiles[s : s + bs]).to(device))
        yield x, (None if scores is None else torch.from_numpy(scores[s : s + bs]).float())


def sampled_explainer(
    net: RankSiamese,
    ref_tiles: np.ndarray,
    ref_scores: np.ndarray,
    cfg: ExplainConfig,
    device: torch.device,
) -> SampledGradCAM:
    """Direct (backprop) sampled-loss Grad-CAM with rank-pair partners from reference houses."""
    feats = torch.from_numpy(extract_features(net, torch.from_numpy(ref_tiles), device=device))
    # The pairs are labelled by log price, so the head must be the one that ranks log prices:
    # the auxiliary head when the net has one (the main head ranks attribute residuals).
    head = net.fc_aux if net.fc_aux is not None else net.fc
    sampler = RankPairSampler(
        pair_head=head,
        features=feats.to(device),
        scores=torch.from_numpy(ref_scores).float(),
        n_samples=cfg.n_samples,
        seed=cfg.seed,
    )
    # negate=True: weights of −L, i.e. the evidence that *supports* the learned ranking (the
    # literal eq. 5–6 gradient of L points at evidence that would raise the loss).
    return SampledGradCAM(net, net.target_layer, sampler, top_m=cfg.top_m, negate=True)


def build_database(
    net: RankSiamese,
    tiles: np.ndarray,
    scores: np.ndarray,
    cfg: ExplainConfig,
    *,
    device: torch.device,
    progress: bool = False,
) -> tuple[GradWeightDatabase, Tensor]:
    """Grad-weight database over training tiles; also returns the dense weights ``(N, C)``."""
    from tqdm.auto import tqdm

    explainer = sampled_explainer(net, tiles, scores, cfg, device)
    dense = []
    for x, target in tqdm(
        tile_batches(tiles, scores, net, cfg.batch_size, device),
        total=-(-len(tiles) // cfg.batch_size),
        desc="grad-weights",
        disable=not progress,
        leave=False,
    ):
        e = explainer.explain(x, target.to(device))
        assert e.weights is not None
        dense.append(e.weights.detach().cpu())
    weights = torch.cat(dense)
    keys = search_keys(net, tiles, cfg.key, device=device)
    db = GradWeightDatabase.build(keys, weights, top_m=cfg.top_m, normalize=cfg.key == "pooled")
    return db, weights


def training_tiles(model: HousePriceModel, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Tiles ``(N,H,W,3)`` and log prices of the model's training houses that have a tile.

    The training houses are looked up by id in ``ds``; a dataset that holds none of them (a
    different or partial table) is a :class:`UserInputError` naming what is needed.
    """
    rec = ds.records.set_index(ds.records["house_id"].astype(str), drop=False)
    present = [h for h in model.train_ids if h in rec.index]
    if not present:
        raise UserInputError(
            f"{ds.root}: none of the model's {len(model.train_ids)} training houses is in "
            "this table; reference houses come from the dataset the model was trained on"
        )
    train = rec.loc[present]
    if ds.tiles is None:
        raise UserInputError(f"{ds.root}: the dataset has no tiles")
    tiles = ds.tiles.read(train, model.config.siamese.image_size, warn=False)
    return tiles.pixels[tiles.ok], np.log(train["price"].to_numpy(np.float64))[tiles.ok]


def database_ids(model: HousePriceModel) -> list[str]:
    """House ids of the grad-weight database rows: training houses that had a usable tile."""
    if model.train_features is None:
        return []
    has_tile = np.isfinite(model.train_features).all(axis=1)
    return [hid for hid, ok in zip(model.train_ids, has_tile, strict=True) if ok]


def build_gradweight_writer(
    model: HousePriceModel,
    ds: Dataset,
    *,
    device: str = "cpu",
    progress: bool = False,
    config: ExplainConfig | None = None,
) -> Callable[[Path], list[str]]:
    """Compute the database now; return a writer that saves it into the model folder."""
    cfg = config or ExplainConfig(seed=model.config.seed)
    dev = resolve_device(device)
    net = explained_net(model).to(dev)
    tiles, scores = training_tiles(model, ds)
    db, _ = build_database(net, tiles, scores, cfg, device=dev, progress=progress)
    net.to("cpu")
    model.info["explain"] = asdict(cfg)

    def write(folder: Path) -> list[str]:
        db.save(folder, DB_NAME)
        return [f"{DB_NAME}.safetensors", f"{DB_NAME}.json"]

    return write


def load_database(model: HousePriceModel) -> tuple[GradWeightDatabase, ExplainConfig]:
    folder = Path(model.info["folder"])
    if not (folder / f"{DB_NAME}.json").exists():
        raise FormatError(
            f"{folder}: the model has no grad-weight database (trained without "
            "tiles, or by an older houseprice); retrain with houseprice train"
        )
    return GradWeightDatabase.load(folder, DB_NAME), ExplainConfig(**model.info["explain"])


def transfer_maps(
    net: RankSiamese,
    db: GradWeightDatabase,
    tiles: np.ndarray,
    key: KeyKind,
    *,
    device: torch.device,
    batch_size: int = 128,
) -> tuple[Tensor, Tensor]:
    """Weight-transfer heatmaps ``(N,H,W)`` and neighbour ids ``(N,)`` — forward pass only."""
    cam = WeightTransferCAM(net, net.target_layer, db)
    maps, neigh = [], []
    for x, _ in tile_batches(tiles, None, net, batch_size, device):
        with torch.no_grad():
            fmap = net.forward_features(x)
            q = net.forward_head(fmap) if key == "visual" else net.pool(fmap)
        e = cam.explain(x, q.float())
        maps.append(e.maps.cpu())
        neigh.append(e.extras["neighbour"].cpu())
    return torch.cat(maps), torch.cat(neigh)
