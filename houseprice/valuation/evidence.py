"""How well house explanations point at the evidence: scores against the generator's masks.

On the synthetic city every tile has an *evidence mask* (the objects that moved the price).
:func:`evidence_scores` compares, on unseen (test) houses whose mask is non-empty (or on
validation houses, where choices are made), the share of heatmap mass inside the mask and the
pointing game for weight transfer (for each search key), every registry method that can
explain the rank-siamese net (:func:`house_methods`), the image-independent centre prior and
uniform; per driver (:mod:`houseprice.valuation.drivers`) and, for signed maps, by sign.
:func:`evidence_markdown` renders the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from houseprice.data.houses import Dataset
from houseprice.data.houses.tiles import read_mask
from houseprice.errors import UserInputError
from houseprice.explain import (
    GradWeightDatabase,
    L2CAFConfig,
    get_method,
    heatmap_ratio_in_mask,
    make_explainer,
    methods_for,
    pointing_game,
    signed_maps,
)
from houseprice.runtime import resolve_device
from houseprice.valuation.drivers import (
    driver_effects,
    driver_scores,
    label_mask_dir,
    pointing_tolerance,
    read_label_masks,
    sign_agreement,
    split_evidence,
)
from houseprice.valuation.evidence_report import evidence_markdown
from houseprice.valuation.gradweights import (
    ExplainConfig,
    KeyKind,
    database_ids,
    explain_layer,
    explained_net,
    load_database,
    rekeyed,
    sampled_explainer,
    signed_explainer,
    tile_batches,
    training_tiles,
    transfer_maps,
    without_entries,
)
from houseprice.valuation.model import HousePriceModel
from houseprice.vision.siamese import RankSiamese

__all__ = [
    "centre_prior_maps",
    "evidence_houses",
    "evidence_markdown",
    "evidence_scores",
    "house_methods",
    "method_maps",
]

#: The registry tag of the methods compared on houses (``houseprice.explain.registry``).
HOUSE_TAG = "rank-pairs"
#: Report keys of the built-in house methods (registry name -> report.json key since v0.1);
#: any other tagged method is reported under its registry name.
REPORT_KEYS = {
    "sampled_gradcam": "direct",
    "embeddingcam_point": "embeddingcam",
    "l2caf": "l2caf",
    "uniform": "uniform",
}


def house_methods() -> list[str]:
    """Registry methods scored on houses: every entry tagged :data:`HOUSE_TAG` that explains
    an embedding net with the resources a house model has (a rank-pair sampler, the head).

    Weight transfer is scored separately, once per search key.
    """
    specs = methods_for("embedding", have={"sampler", "head"}, tag=HOUSE_TAG)
    return [s.name for s in specs]


def _house_explainer(
    method: str,
    net: RankSiamese,
    *,
    ref_tiles: np.ndarray,
    ref_scores: np.ndarray,
    cfg: ExplainConfig,
    device: torch.device,
) -> Any:
    """Build a registry method for the siamese net with the resources it asks for, at the
    database's layer (``cfg.layer``)."""
    spec = get_method(method)
    layer = explain_layer(net, cfg)
    if "sampler" in spec.needs:  # rank pairs of reference houses (Chen §4.2)
        explainer = sampled_explainer(net, ref_tiles, ref_scores, cfg, device)
        if spec.name == "sampled_gradcam":  # the grad-weight database's own explainer
            return explainer
        return make_explainer(method, net, layer, sampler=explainer.sampler)
    kwargs: dict[str, Any] = {}
    if "head" in spec.keywords:
        kwargs["head"] = net.head_from(cfg.layer)
    if spec.name == "l2caf":
        kwargs["config"] = L2CAFConfig(max_iter=300)
    return make_explainer(method, net, layer, **kwargs)  # e.g. EmbeddingCAM eq. 11


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
    explainer = _house_explainer(
        method, net, ref_tiles=ref_tiles, ref_scores=ref_scores, cfg=cfg, device=device
    )
    maps = []
    for x, target in tile_batches(tiles, scores, net, batch_size, device):
        t = target.to(device) if get_method(method).target == "anchors" else None
        maps.append(explainer.explain(x, t).maps.detach().cpu())
    return torch.cat(maps)


def direct_signed_maps(
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
    """Signed maps ``(N,H,W)`` in [-1, 1] by backprop of the pair-logit margin (no database)."""
    explainer = signed_explainer(net, ref_tiles, ref_scores, cfg, device)
    maps = []
    for x, target in tile_batches(tiles, scores, net, batch_size, device):
        e = explainer.explain(x, target.to(device))
        assert e.linear is not None
        maps.append(signed_maps(e.linear.detach(), (x.shape[-2], x.shape[-1])).cpu())
    return torch.cat(maps)


# σ of the centre-prior baseline as a fraction of the tile side (see centre_prior_maps).
CENTRE_PRIOR_SIGMA_FRAC = 0.1


def centre_prior_maps(n: int, size: int, sigma_frac: float = CENTRE_PRIOR_SIGMA_FRAC) -> np.ndarray:
    """An image-independent baseline: a Gaussian bump on the tile centre ``(n, size, size)``.

    Tiles are centred on the house (data_specs/houses.md), so "look at the middle" is a strong
    prior for where the price evidence is. A heatmap method is only informative beyond that
    prior if it beats this map; it is reported next to uniform for that reason.
    ``sigma_frac = 0.1`` is the strongest of 0.05–0.3 on the standard demo city's *validation*
    houses (``benchmarks/explain_choices.py``), i.e. the baseline is tuned in its own favour.
    """
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size]
    g = np.exp(-0.5 * ((yy - c) ** 2 + (xx - c) ** 2) / (sigma_frac * size) ** 2)
    return np.broadcast_to(g / g.max(), (n, size, size)).astype(np.float32)


Split = Literal["test", "validation"]
#: Methods scored on every evidence house (forward pass or no model at all); the others
#: (backprop, optimisation) on the first ``max_houses`` plus every house with a rare driver.
CHEAP = ("transfer", "centre_prior", "uniform")
#: Drivers present in only a few percent of houses (data_specs/synth_city.md): the bounded
#: methods also score every house that has one, so their per-driver counts are not tiny.
RARE = ("water", "park", "highway")


def evidence_houses(
    model: HousePriceModel,
    ds: Dataset,
    size: int,
    max_houses: int | None,
    *,
    split: Split = "test",
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Houses of ``split`` with a non-empty evidence mask and a usable tile: rows, tiles, masks.

    ``"test"``: houses the model never saw; ``"validation"``: the last 25% by sale date of
    its training houses (:func:`~houseprice.valuation.evaluate.validation_split`), where
    choices are made. Returns ``(rows, pixels (N, S, S, 3) uint8, masks (N, S, S) bool)``, at
    most ``max_houses`` of them (``None``: all), in table order.
    """
    ev_dir = (ds.meta.get("truth") or {}).get("evidence_dir")
    if not ev_dir:
        raise UserInputError("this dataset has no evidence masks (only the synthetic city has)")
    rec = ds.records
    trained = rec["house_id"].astype(str).isin(set(model.train_ids)).to_numpy()
    if split == "validation":
        from houseprice.valuation.evaluate import validation_split

        _, val_rows = validation_split(rec, np.flatnonzero(trained))
        pool = rec.iloc[val_rows]
    else:
        pool = rec[~trained]
    ev = {}
    for hid in pool["house_id"].astype(str):
        p = ds.root / ev_dir / f"{hid}.png"
        if p.exists():
            m = read_mask(p, size) > 0
            if m.any():
                ev[hid] = m
        if max_houses is not None and len(ev) >= max_houses:
            break
    rows = pool[pool["house_id"].astype(str).isin(ev)]
    if ds.tiles is None or not len(rows):
        raise UserInputError(f"{ds.root}: no {split} house has both an evidence mask and a tile")
    tiles = ds.tiles.read(rows, size, warn=False)
    rows, pix = rows[tiles.ok], tiles.pixels[tiles.ok]
    masks = np.stack([ev[h] for h in rows["house_id"].astype(str)])
    return rows, pix, masks


def _per_driver_masks(
    ds: Dataset, rows: pd.DataFrame, masks: np.ndarray, label_masks: str | Path | None
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """Per-driver evidence of the scored houses, or ``(None, why not)``."""
    try:
        ids = rows["house_id"].astype(str).tolist()
        labels = read_label_masks(label_mask_dir(ds, label_masks), ids, masks.shape[1])
        return split_evidence(masks, labels, driver_effects(ds, ids)), None
    except UserInputError as err:
        return None, str(err)


def _mean_ratio(maps: np.ndarray, masks: np.ndarray) -> float:
    return float(np.nan_to_num(heatmap_ratio_in_mask(maps, masks), nan=0.0).mean())


def evidence_scores(
    model: HousePriceModel,
    ds: Dataset,
    *,
    max_houses: int = 200,
    device: str = "cpu",
    keys: tuple[KeyKind, ...] = ("pooled", "visual"),
    progress: bool = False,
    split: Split = "test",
    label_masks: str | Path | None = None,
    methods: list[str] | None = None,
) -> dict[str, Any]:
    """Heatmaps against the generator's evidence masks on ``split`` houses (default: test).

    ``evidence_mask_ratio``: mean heatmap share inside the whole evidence mask on the first
    ``max_houses`` evidence houses, for transfer (each search key), the registry's house
    methods (direct sampled-loss Grad-CAM, EmbeddingCAM, L2-CAF; ``methods`` to choose), the
    centre prior and uniform. ``drivers``: per driver, share + pointing game + count; the
    cheap methods (:data:`CHEAP`) on *every* evidence house, the others on the first
    ``max_houses`` and every later house with a :data:`RARE` driver. ``signed``: sign
    agreement of signed transfer and direct signed maps.
    Label masks come from ``label_masks`` or ``<dataset>/masks``; without them the per-driver
    parts are skipped (``drivers_skipped`` says why).
    """
    dev = resolve_device(device)
    net = explained_net(model).to(dev)
    db, cfg = load_database(model)
    size = model.config.siamese.image_size
    rows, pix, masks = evidence_houses(model, ds, size, None, split=split)
    nb = min(max_houses, len(rows))
    drivers, why = _per_driver_masks(ds, rows, masks, label_masks)
    sel = np.arange(nb)  # houses of the bounded methods: the first nb, then the rare drivers
    if drivers is not None:
        rare = np.logical_or.reduce([drivers[d].any(axis=(1, 2)) for d in RARE])
        sel = np.concatenate([sel, nb + np.flatnonzero(rare[nb:])])
    # validation houses must not find their own database entries
    drop = set(rows["house_id"].astype(str)) if split == "validation" else set()
    scores = np.log(rows["price"].to_numpy(np.float64))
    full, bounded, signed = _all_maps(
        net, db, cfg, model, ds, pix, scores, sel, drop, keys, methods, dev, progress
    )
    net.to("cpu")
    full["centre_prior"] = centre_prior_maps(len(masks), size)
    bounded.pop("uniform", None)  # a constant map: scored on every house instead
    full["uniform"] = np.ones_like(full["centre_prior"])
    tol = pointing_tolerance(size)
    both = {**full, **bounded}
    ratios = {k: _mean_ratio(v[:nb], masks[:nb]) for k, v in both.items()}
    u = ratios.pop("uniform")
    pointing = {
        k: float(np.nanmean(pointing_game(v[:nb], masks[:nb], tol))) for k, v in both.items()
    }
    result: dict[str, Any] = {
        "split": split,
        "n_houses": nb,
        "n_houses_bounded": len(sel),
        "n_houses_all": len(rows),
        "tile_px": size,
        "layer": cfg.layer,
        "evidence_mask_ratio": {"transfer": ratios[f"transfer_{cfg.key}"], **ratios},
        "uniform": u,
        "key": cfg.key,
        "evidence_pointing": {"transfer": pointing[f"transfer_{cfg.key}"], **pointing},
        "evidence_mask_ratio_all": {k: _mean_ratio(v, masks) for k, v in full.items()},
        "pointing_tolerance_px": tol,
        "centre_prior_sigma": CENTRE_PRIOR_SIGMA_FRAC,
    }
    if drivers is None:
        result["drivers_skipped"] = why
        return result
    first = {d: m[sel] for d, m in drivers.items()}
    per = {k: driver_scores(v, drivers, tol) for k, v in full.items()}
    per |= {k: driver_scores(v, first, tol) for k, v in bounded.items()}
    result["drivers"] = {"transfer": per.pop(f"transfer_{cfg.key}"), **per}
    if signed:
        result["signed"] = {
            "head": cfg.signed_head,
            "transfer": sign_agreement(signed["transfer"], drivers),
            "direct": sign_agreement(signed["direct"], first),
        }
    return result


def _all_maps(
    net: RankSiamese,
    db: GradWeightDatabase,
    cfg: ExplainConfig,
    model: HousePriceModel,
    ds: Dataset,
    pix: np.ndarray,
    scores: np.ndarray,
    sel: np.ndarray,
    drop: set[str],
    keys: tuple[KeyKind, ...],
    methods: list[str] | None,
    dev: Any,
    progress: bool,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Maps of every house (transfer per key, ``transfer_abs``), of the houses ``sel``
    (backprop/optimisation methods, ``direct_abs``) and the signed ones (if stored); the
    database entries of the houses ``drop`` are left out of every transfer."""
    from tqdm.auto import tqdm

    ref_tiles, ref_scores = training_tiles(model, ds)
    ids = database_ids(model)
    if len(ref_tiles) != len(ids):  # reference pairs and re-keyed entries need every tile
        raise UserInputError(
            f"{ds.root}: {len(ids) - len(ref_tiles)} of the model's {len(ids)} training houses "
            "with a tile at training time have no usable tile now; score on the dataset the "
            "model was trained on"
        )

    def reduced(d: GradWeightDatabase) -> GradWeightDatabase:
        return without_entries(d, ids, drop) if drop else d

    full: dict[str, np.ndarray] = {}
    for key in tqdm(keys, desc="transfer keys", disable=not progress, leave=False):
        kdb = db if key == cfg.key else rekeyed(db, net, ref_tiles, key, dev)
        maps, _ = transfer_maps(net, reduced(kdb), pix, key, device=dev, layer=cfg.layer)
        full[f"transfer_{key}"] = maps.numpy()
    bounded: dict[str, np.ndarray] = {}
    kw = {"ref_tiles": ref_tiles, "ref_scores": ref_scores, "cfg": cfg, "device": dev}
    todo = house_methods() if methods is None else methods
    for method in tqdm(todo, desc="methods", disable=not progress):
        maps = method_maps(method, net, pix[sel], scores[sel], **kw)
        bounded[REPORT_KEYS.get(method, method)] = maps.numpy()
    signed: dict[str, np.ndarray] = {}
    if db.signed is not None:  # |signed map|: where the image moved the price, either way
        sdb = reduced(db)
        maps, _ = transfer_maps(net, sdb, pix, cfg.key, device=dev, layer=cfg.layer, signed=True)
        signed["transfer"] = maps.numpy()
        signed["direct"] = direct_signed_maps(net, pix[sel], scores[sel], **kw).numpy()
        full["transfer_abs"] = np.abs(signed["transfer"])
        bounded["direct_abs"] = np.abs(signed["direct"])
    return full, bounded, signed
