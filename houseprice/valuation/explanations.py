"""Explaining valuations: siamese heatmaps by grad-weight transfer, scored and mapped.

Glue between the generic :mod:`houseprice.explain` package and the house-price domain
(Chen §4.2, last paragraph):

- at ``houseprice train`` time, grad-weights of every training house come from the rank-pair
  cross-entropy over ``N_s = 50`` sampled partner houses, averaged, top-50 channels kept
  (``SampledGradCAM`` + ``RankPairSampler``), and stored with a search key in the model
  folder (``gradweights.safetensors`` + ``gradweights.json``);
- any house, seen or new, gets its map by nearest-neighbour weight transfer: a forward pass
  to the explained layer and a database lookup, no backpropagation;
- on the synthetic city the maps are scored against the generator's evidence masks for
  transfer, direct sampled-loss Grad-CAM, EmbeddingCAM, L2-CAF and the uniform baseline;
- ``explain_table`` writes per-house overlay PNGs, a table and the offline folium map.

The explained network is the first of the model's cross-fitted siamese nets (its features are
the reference space the others are aligned to).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from houseprice.artifacts import atomic_write_json, atomic_write_text
from houseprice.data.houses.records import Dataset, load_any
from houseprice.data.houses.tiles import load_tiles, read_mask
from houseprice.explain import (
    L2CAF,
    EmbeddingCAM,
    GradWeightDatabase,
    L2CAFConfig,
    RankPairSampler,
    SampledGradCAM,
    UniformCAM,
    WeightTransferCAM,
    heatmap_ratio_in_mask,
)
from houseprice.valuation.model import HousePriceModel, resolve_device, tile_paths
from houseprice.vision.siamese.model import RankSiamese, extract_features

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
        raise ValueError("this model has no visual features to explain (trained without tiles)")
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


def _batches(
    tiles: np.ndarray, scores: np.ndarray | None, net: RankSiamese, bs: int, device: torch.device
):  # type: ignore[no-untyped-def]
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
        _batches(tiles, scores, net, cfg.batch_size, device),
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
    """Tiles ``(N,H,W,3)`` and log prices of the model's training houses that have a tile."""
    rec = ds.records.set_index(ds.records["house_id"].astype(str), drop=False)
    train = rec.loc[model.train_ids]
    tiles = load_tiles(tile_paths(ds.root, train), model.config.siamese.image_size, warn=False)
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
        raise ValueError(
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
    for x, _ in _batches(tiles, None, net, batch_size, device):
        with torch.no_grad():
            fmap = net.forward_features(x)
            q = net.forward_head(fmap) if key == "visual" else net.pool(fmap)
        e = cam.explain(x, q.float())
        maps.append(e.maps.cpu())
        neigh.append(e.extras["neighbour"].cpu())
    return torch.cat(maps), torch.cat(neigh)


def method_maps(
    method: str,
    net: RankSiamese,
    tiles: np.ndarray,
    scores: np.ndarray,
    *,
    ref_tiles: np.ndarray,
    ref_scores: np.ndarray,
    cfg: ExplainConfig,
    device: torch.device,
    batch_size: int = 64,
) -> Tensor:
    """Heatmaps ``(N,H,W)`` of a backprop/optimisation method, for scoring."""
    if method == "direct":
        explainer: Any = sampled_explainer(net, ref_tiles, ref_scores, cfg, device)
    elif method == "embeddingcam":
        explainer = EmbeddingCAM(net, net.target_layer)  # single-point proxy (Bachhawat eq. 11)
    elif method == "l2caf":
        explainer = L2CAF(
            net, net.target_layer, head=net.forward_head, config=L2CAFConfig(max_iter=300)
        )
    elif method == "uniform":
        explainer = UniformCAM(net, net.target_layer)
    else:
        raise ValueError(f"unknown method {method!r}")
    maps = []
    for x, target in _batches(tiles, scores, net, batch_size, device):
        t = target.to(device) if method == "direct" and target is not None else None
        maps.append(explainer.explain(x, t).maps.detach().cpu())
    return torch.cat(maps)


# σ of the centre-prior baseline as a fraction of the tile side (see centre_prior_maps).
CENTRE_PRIOR_SIGMA_FRAC = 0.1


def centre_prior_maps(n: int, size: int, sigma_frac: float = CENTRE_PRIOR_SIGMA_FRAC) -> np.ndarray:
    """An image-independent baseline: a Gaussian bump on the tile centre ``(n, size, size)``.

    Tiles are centred on the house (DESIGN §3), so "look at the middle" is a strong prior for
    where the price evidence is. A heatmap method is only informative beyond that prior if it
    beats this map; it is reported next to uniform for that reason. ``sigma_frac = 0.1`` was
    the strongest of 0.1–0.3 on the standard demo city (0.330 vs 0.167 at 0.3), i.e. the
    baseline is deliberately tuned in its own favour.
    """
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size]
    g = np.exp(-0.5 * ((yy - c) ** 2 + (xx - c) ** 2) / (sigma_frac * size) ** 2)
    return np.broadcast_to(g / g.max(), (n, size, size)).astype(np.float32)


def evidence_scores(
    model: HousePriceModel,
    ds: Dataset,
    *,
    max_houses: int = 200,
    device: str = "cpu",
    keys: tuple[KeyKind, ...] = ("pooled", "visual"),
    progress: bool = False,
) -> dict[str, Any]:
    """Mean heatmap ratio inside the generator's evidence masks on unseen (test) houses.

    Compares transfer (for each search key), direct sampled-loss Grad-CAM, EmbeddingCAM,
    L2-CAF, the image-independent centre prior and uniform on test houses whose evidence mask
    is non-empty.
    """
    from tqdm.auto import tqdm

    truth = ds.meta.get("truth") or {}
    ev_dir = truth.get("evidence_dir")
    if not ev_dir:
        raise ValueError("this dataset has no evidence masks (only the synthetic city has)")
    dev = resolve_device(device)
    net = explained_net(model).to(dev)
    db, cfg = load_database(model)
    ref_tiles, ref_scores = training_tiles(model, ds)
    rec = ds.records
    test = rec[~rec["house_id"].astype(str).isin(set(model.train_ids))]
    size = model.config.siamese.image_size
    ev = {}
    for hid in test["house_id"].astype(str):
        p = ds.root / ev_dir / f"{hid}.png"
        if p.exists():
            m = read_mask(p, size) > 0
            if m.any():
                ev[hid] = m
        if len(ev) >= max_houses:
            break
    rows = test[test["house_id"].astype(str).isin(ev)]
    tiles = load_tiles(tile_paths(ds.root, rows), size, warn=False)
    rows, pix = rows[tiles.ok], tiles.pixels[tiles.ok]
    masks = np.stack([ev[h] for h in rows["house_id"].astype(str)])
    scores = np.log(rows["price"].to_numpy(np.float64))
    result: dict[str, Any] = {"n_houses": len(rows), "tile_px": size}
    ratios: dict[str, float] = {}
    for key in tqdm(keys, desc="transfer keys", disable=not progress, leave=False):
        kdb = db
        if key != cfg.key:  # same grad-weights, other search key
            kdb = GradWeightDatabase(
                search_keys(net, ref_tiles, key, device=dev),
                db.channels,
                db.weights,
                db.n_channels,
                normalize=key == "pooled",
            )
        maps, _ = transfer_maps(net, kdb, pix, key, device=dev)
        ratios[f"transfer_{key}"] = float(heatmap_ratio_in_mask(maps.numpy(), masks).mean())
    for method in tqdm(
        ("direct", "embeddingcam", "l2caf", "uniform"),
        desc="methods",
        disable=not progress,
        leave=False,
    ):
        maps = method_maps(
            method,
            net,
            pix,
            scores,
            ref_tiles=ref_tiles,
            ref_scores=ref_scores,
            cfg=cfg,
            device=dev,
        )
        ratios[method] = float(heatmap_ratio_in_mask(maps.numpy(), masks).mean())
    centre = centre_prior_maps(len(masks), size)
    ratios["centre_prior"] = float(heatmap_ratio_in_mask(centre, masks).mean())
    net.to("cpu")
    uniform = ratios.pop("uniform")
    result["evidence_mask_ratio"] = {"transfer": ratios[f"transfer_{cfg.key}"], **ratios}
    result["uniform"] = uniform
    result["key"] = cfg.key
    return result


@dataclass
class ExplainResult:
    table: Path
    overlays: Path
    map_html: Path | None
    report: dict[str, Any] | None
    frame: pd.DataFrame


def explain_table(
    model_dir: str | Path,
    table: str | Path,
    out_dir: str | Path,
    *,
    map_html: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    test_only: bool = False,
    max_evidence: int = 200,
) -> ExplainResult:
    """Price and explain every house of a table: overlays, a table, a map, a score report."""
    from tqdm.auto import tqdm

    from houseprice.maps import heatmap_overlay, render_valuation_map, save_overlay_png

    model = HousePriceModel.load(model_dir)
    ds = load_any(table, purpose="predict")
    rec = ds.records
    if test_only:
        rec = rec[~rec["house_id"].astype(str).isin(set(model.train_ids))]
    out = Path(out_dir)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    (out / "heatmaps").mkdir(parents=True, exist_ok=True)
    frame = model.predict_frame(ds.root, rec, device=device, progress=progress)
    frame["image"] = [str(p) if p is not None else None for p in tile_paths(ds.root, rec)]
    frame["heatmap"] = None
    frame["overlay"] = None
    frame["neighbour"] = None
    if model.featurizer is not None:
        dev = resolve_device(device)
        net = explained_net(model).to(dev)
        db, cfg = load_database(model)
        tiles = load_tiles(tile_paths(ds.root, rec), model.config.siamese.image_size, warn=False)
        idx = np.flatnonzero(tiles.ok)
        maps, neigh = (
            transfer_maps(net, db, tiles.pixels[idx], cfg.key, device=dev)
            if len(idx)
            else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
        )
        net.to("cpu")
        db_ids = database_ids(model)
        ids = frame["house_id"].astype(str).to_numpy()
        for k, i in enumerate(tqdm(idx, desc="overlays", disable=not progress, leave=False)):
            tile, hm = tiles.pixels[i], maps[k].numpy()
            hid = _safe_name(ids[i])
            over = out / "overlays" / f"{hid}.png"
            save_overlay_png(tile, hm, over, colorbar=True, title=ids[i])
            heat = out / "heatmaps" / f"{hid}.png"
            from PIL import Image

            Image.fromarray(heatmap_overlay(tile, hm)).save(heat)
            frame.loc[frame.index[i], "overlay"] = str(over)
            frame.loc[frame.index[i], "heatmap"] = str(heat)
            frame.loc[frame.index[i], "neighbour"] = db_ids[int(neigh[k])]
    table_path = out / "explanations.csv"
    atomic_write_text(
        table_path,
        frame.drop(columns=model.visual_columns).to_csv(index=False),
    )
    report = None
    if (
        model.featurizer is not None
        and (ds.meta.get("truth") or {}).get("evidence_dir")
        and "price" in ds.records.columns
        and ds.records["price"].notna().all()
    ):
        full = Dataset(root=ds.root, meta=ds.meta, records=ds.records)
        report = evidence_scores(
            model, full, max_houses=max_evidence, device=device, progress=progress
        )
        atomic_write_json(out / "report.json", report)
        atomic_write_text(out / "report.md", evidence_markdown(report))
    html = None
    if map_html is not None:
        # The popup lists every column: leave out machine data (local file paths of the
        # overlays, the raw 4-d features) that means nothing to the reader of a shared map.
        shown = frame.drop(columns=["overlay", *model.visual_columns])
        html = render_valuation_map(
            shown,
            map_html,
            tile_meters=float(model.tile_meters or 70.0),
            title="houseprice valuations",
        )
    return ExplainResult(
        table=table_path, overlays=out / "overlays", map_html=html, report=report, frame=frame
    )


def evidence_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Explanations vs evidence masks",
        "",
        f"Mean heatmap mass inside the generator's evidence mask (objects that moved the "
        f"price), {report['n_houses']} unseen test houses, {report['tile_px']}-px tiles.",
        "",
        "| method | ratio | × uniform |",
        "|---|---:|---:|",
    ]
    u = report["uniform"]
    for k, v in report["evidence_mask_ratio"].items():
        lines.append(f"| {k} | {v:.3f} | {v / u:.2f} |")
    lines.append(f"| uniform | {u:.3f} | 1.00 |")
    lines += ["", f"`transfer` uses the `{report['key']}` search key."]
    if "centre_prior" in report["evidence_mask_ratio"]:
        lines.append(
            "`centre_prior` is an image-independent Gaussian on the tile centre "
            f"(σ = {CENTRE_PRIOR_SIGMA_FRAC} × tile): tiles are centred on the house, so a "
            "method shows image-specific evidence only where it beats this row."
        )
    return "\n".join(lines) + "\n"


def _safe_name(house_id: str) -> str:
    """A file name for a house id (ids are user text; never let them form a path)."""
    import hashlib
    import re

    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", house_id)[:80]
    if clean != house_id:
        clean += "-" + hashlib.sha1(house_id.encode()).hexdigest()[:8]
    return clean
