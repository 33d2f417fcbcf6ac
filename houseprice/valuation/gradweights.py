"""The grad-weight database of a house-price model: built at train time, transferred at test time.

Chen §4.2 (last paragraph), applied to the rank-siamese net:

- at ``houseprice train`` time, grad-weights of every training house come from the rank-pair
  cross-entropy over ``N_s = 50`` sampled partner houses, averaged, top-50 channels kept
  (``SampledGradCAM`` + ``RankPairSampler``), and stored with a search key in the model
  folder (``gradweights.safetensors`` + ``gradweights.json``);
- with them, *signed* weights of every channel (:class:`SignedPairGradCAM`): Grad-CAM of the
  pair-logit margin "this house ranks above its partners", so the map keeps the sign (positive
  = raises the price ranking, negative = lowers it);
- any house, seen or new, gets its map by nearest-neighbour weight transfer (Chen §3.3): a
  forward pass to the explained layer and a database lookup, no backpropagation.

The explained layer is ``ExplainConfig.layer`` (:meth:`RankSiamese.explain_layer`): the gated
last map or the finer stage before it; :func:`rebuild_gradweights` recomputes the database of
a trained model for another layer without retraining the net.

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
    SignedPairGradCAM,
    WeightTransferCAM,
    signed_maps,
)
from houseprice.runtime import resolve_device
from houseprice.valuation.model import HousePriceModel
from houseprice.vision.siamese import RankSiamese, extract_features

KeyKind = Literal["visual", "pooled"]
LayerKind = Literal["final", "penultimate"]
HeadKind = Literal["main", "aux"]
DB_NAME = "gradweights"
#: The command that writes a grad-weight database with signed weights (named in errors).
REBUILD_HINT = (
    "retrain with `houseprice train`, or rebuild the database without retraining: "
    "python -m houseprice.valuation.gradweights --model MODEL --data DATA --out NEW_MODEL"
)


@dataclass
class ExplainConfig:
    """Settings of the siamese explanations (stored in model.json under info.explain)."""

    n_samples: int = 50  # N_s sampled partner houses per training house (Chen §4.2)
    top_m: int = 50  # channels kept (Chen §4.2)
    # Search space for the nearest neighbour, chosen on validation houses: the pooled backbone
    # map unless it is not better than the 4-d visual feature by more than two standard errors
    # (benchmarks/explain_choices.py; docs/explain.md "Sharper maps?": +0.012 ± 0.005).
    key: KeyKind = "pooled"
    batch_size: int = 64
    seed: int = 0
    # Explained layer (RankSiamese.explain_layer). Models written before the option have the
    # final 8x8 map; the default for new databases is chosen on validation houses
    # (docs/explain.md, "Sharper maps").
    layer: LayerKind = "final"
    # Pair head of the signed target: "main" ranks the attributes-only residual, "aux" ranks
    # log price (chosen on validation by sign agreement, docs/explain.md "Signed maps").
    signed_head: HeadKind = "main"
    signed: bool = True  # also store signed weights of every channel


def explain_layer(net: RankSiamese, cfg: ExplainConfig) -> torch.nn.Module:
    """The module the database's weights belong to."""
    return net.explain_layer(cfg.layer)


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


class PooledKey(torch.nn.Module):
    """A view of the net whose output is the pooled backbone map ``(B, C)``: the "pooled"
    search key, computed in the forward pass that transfer hooks (no second pass)."""

    def __init__(self, net: RankSiamese) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.pool(self.net.forward_features(x))  # (B, 3, S, S) -> (B, C)


def tile_batches(
    tiles: np.ndarray, scores: np.ndarray | None, net: RankSiamese, bs: int, device: torch.device
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Preprocessed tile batches ``(B, 3, S, S)`` with their scores ``(B,)`` (or None)."""
    for s in range(0, len(tiles), bs):
        x = net.preprocess(torch.from_numpy(tiles[s : s + bs]).to(device))
        yield x, (None if scores is None else torch.from_numpy(scores[s : s + bs]).float())


def reference_sampler(
    net: RankSiamese,
    head: torch.nn.Module,
    ref_tiles: np.ndarray,
    ref_scores: np.ndarray,
    cfg: ExplainConfig,
    device: torch.device,
) -> RankPairSampler:
    """``cfg.n_samples`` rank-pair partners per house, drawn from the reference houses
    (their visual features and log prices), compared through the pair ``head`` (Chen §4.2)."""
    feats = torch.from_numpy(extract_features(net, torch.from_numpy(ref_tiles), device=device))
    return RankPairSampler(
        pair_head=head,
        features=feats.to(device),
        scores=torch.from_numpy(ref_scores).float(),
        n_samples=cfg.n_samples,
        seed=cfg.seed,
    )


def sampled_explainer(
    net: RankSiamese,
    ref_tiles: np.ndarray,
    ref_scores: np.ndarray,
    cfg: ExplainConfig,
    device: torch.device,
) -> SampledGradCAM:
    """Direct (backprop) sampled-loss Grad-CAM with rank-pair partners from reference houses."""
    # The pairs are labelled by log price, so the head must be the one that ranks log prices:
    # the auxiliary head when the net has one (the main head ranks attribute residuals).
    head = net.fc_aux if net.fc_aux is not None else net.fc
    sampler = reference_sampler(net, head, ref_tiles, ref_scores, cfg, device)
    # negate=True: weights of −L, i.e. the evidence that *supports* the learned ranking (the
    # literal eq. 5–6 gradient of L points at evidence that would raise the loss).
    return SampledGradCAM(net, explain_layer(net, cfg), sampler, top_m=cfg.top_m, negate=True)


def signed_explainer(
    net: RankSiamese,
    ref_tiles: np.ndarray,
    ref_scores: np.ndarray,
    cfg: ExplainConfig,
    device: torch.device,
) -> SignedPairGradCAM:
    """Signed Grad-CAM of the mean pair-logit margin "this house ranks above its partners".

    The partners are the same sampled reference houses as the direct explainer's; the head is
    ``cfg.signed_head`` (``"main"``: ``fc``, the residual ranking; ``"aux"``: ``fc_aux``, the
    log-price ranking, the main head when the net has no auxiliary one).
    """
    head = net.fc_aux if cfg.signed_head == "aux" and net.fc_aux is not None else net.fc
    sampler = reference_sampler(net, head, ref_tiles, ref_scores, cfg, device)
    return SignedPairGradCAM(net, explain_layer(net, cfg), sampler)


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
    signer = signed_explainer(net, tiles, scores, cfg, device) if cfg.signed else None
    dense, signed = [], []
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
        if signer is not None:
            w = signer.explain(x, target.to(device)).weights
            assert w is not None
            signed.append(w.detach().cpu())
    weights = torch.cat(dense)
    keys = search_keys(net, tiles, cfg.key, device=device)
    db = GradWeightDatabase.build(
        keys,
        weights,
        top_m=cfg.top_m,
        signed=torch.cat(signed) if signed else None,
        normalize=cfg.key == "pooled",
    )
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


def load_database(
    model: HousePriceModel, *, need_signed: bool = False
) -> tuple[GradWeightDatabase, ExplainConfig]:
    """The model's grad-weight database and the settings it was built with.

    Models written before the signed weights existed load (their config gets the defaults of
    the new fields except ``layer="final"`` and ``signed=False``); ``need_signed`` then raises
    a :class:`FormatError` naming the command that writes them.
    """
    folder = Path(model.info["folder"])
    if not (folder / f"{DB_NAME}.json").exists():
        raise FormatError(
            f"{folder}: the model has no grad-weight database (trained without "
            "tiles, or by an older houseprice); retrain with houseprice train"
        )
    db = GradWeightDatabase.load(folder, DB_NAME)
    known = set(ExplainConfig.__dataclass_fields__)
    stored = {k: v for k, v in model.info["explain"].items() if k in known}
    stored.setdefault("layer", "final")
    stored.setdefault("signed", db.signed is not None)
    cfg = ExplainConfig(**stored)
    if need_signed and db.signed is None:
        raise FormatError(
            f"{folder / (DB_NAME + '.json')}: the grad-weight database has no signed weights "
            f"(written by an older houseprice); {REBUILD_HINT}"
        )
    return db, cfg


def transfer_maps(
    net: RankSiamese,
    db: GradWeightDatabase,
    tiles: np.ndarray,
    key: KeyKind,
    *,
    device: torch.device,
    batch_size: int = 128,
    layer: LayerKind = "final",
    signed: bool = False,
) -> tuple[Tensor, Tensor]:
    """Weight-transfer heatmaps ``(N,H,W)`` and neighbour ids ``(N,)`` — forward pass only.

    ``signed``: transfer the signed weights; the maps are then signed, in ``[-1, 1]``
    (:func:`~houseprice.explain.signed_maps`), positive = raises the price ranking.
    """
    # the key comes out of the same forward pass: the net's output (visual) or its pooled map
    model = net if key == "visual" else PooledKey(net)
    cam = WeightTransferCAM(model, net.explain_layer(layer), db, signed=signed)
    maps, neigh = [], []
    for x, _ in tile_batches(tiles, None, net, batch_size, device):
        e = cam.explain(x)
        assert e.linear is not None
        maps.append((signed_maps(e.linear, (x.shape[-2], x.shape[-1])) if signed else e.maps).cpu())
        neigh.append(e.extras["neighbour"].cpu())
    return torch.cat(maps), torch.cat(neigh)


def without_entries(db: GradWeightDatabase, ids: list[str], drop: set[str]) -> GradWeightDatabase:
    """The database without the entries of ``drop`` (validation houses must not find
    themselves: their own weights would make transfer equal to backprop)."""
    keep = torch.tensor([h not in drop for h in ids])
    return GradWeightDatabase(
        db.embeddings[keep],
        db.channels[keep],
        db.weights[keep],
        db.n_channels,
        signed=None if db.signed is None else db.signed[keep],
        normalize=db.normalize,
    )


def rekeyed(
    db: GradWeightDatabase, net: RankSiamese, ref_tiles: np.ndarray, key: KeyKind, dev: torch.device
) -> GradWeightDatabase:
    """The same grad-weights under another search key."""
    return GradWeightDatabase(
        search_keys(net, ref_tiles, key, device=dev),
        db.channels,
        db.weights,
        db.n_channels,
        signed=db.signed,
        normalize=key == "pooled",
    )


def rebuild_gradweights(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    config: ExplainConfig | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a copy of a trained model folder with a new grad-weight database (no retraining).

    The nets, regressors and features are the model's own; only the database (for
    ``config.layer``, with signed weights) and ``info.explain`` change. ``data`` is the
    dataset the model was trained on (its training houses are the database's entries).
    """
    from houseprice.data.houses import load_any

    model = HousePriceModel.load(model_dir)
    ds = load_any(data, purpose="train")
    cfg = config or ExplainConfig(seed=model.config.seed)
    writer = build_gradweight_writer(model, ds, device=device, progress=progress, config=cfg)
    return model.save(out, overwrite=overwrite, extra_writer=writer, inputs=(model_dir, data))


def main(argv: list[str] | None = None) -> None:
    """``python -m houseprice.valuation.gradweights --model M --data D --out NEW [--layer L]``."""
    import argparse

    p = argparse.ArgumentParser(description=rebuild_gradweights.__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--layer", choices=["final", "penultimate"], default=ExplainConfig.layer)
    p.add_argument("--signed-head", choices=["main", "aux"], default=ExplainConfig.signed_head)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    seed = HousePriceModel.load(a.model).config.seed
    cfg = ExplainConfig(seed=seed, layer=a.layer, signed_head=a.signed_head)
    path = rebuild_gradweights(a.model, a.data, a.out, config=cfg, overwrite=a.overwrite)
    print(path)


if __name__ == "__main__":
    main()
