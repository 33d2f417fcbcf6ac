"""The house explanations' design choices, made on validation houses only.

Run on the output of ``houseprice demo --profile standard --seed 0``::

    python benchmarks/explain_choices.py --demo demo_out \\
        --out docs/results/demo_standard/explain_choices.json

Validation houses are the last 25% by sale date of the model's training houses
(:func:`houseprice.valuation.evaluate.validation_split`); their own grad-weight entries are
removed from every database, so transfer cannot find itself. The test houses are never read.
Compared, each with the criterion stated in :data:`CRITERIA`:

1. the explained layer (``final`` 8x8 vs ``penultimate`` 16x16) and the signed map's pair head
   (``main``: attributes-only residual, ``aux``: log price), each a rebuilt grad-weight database
   of the same trained net, scored by :func:`houseprice.valuation.evidence.evidence_scores`;
2. fusions of the two layers' transfer maps (sum / product of per-house max-normalised maps);
3. the transfer search key (4-d visual feature vs pooled backbone map), by the paired
   per-house difference of the evidence-mass share;
4. the centre prior's width sigma (as a fraction of the tile side).

``docs/explain.md`` ("Sharper maps?") is rendered from the JSON by ``python -m
houseprice.jobs.docs write``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from houseprice.artifacts import atomic_write_json
from houseprice.data.houses import Dataset, load_any
from houseprice.explain import heatmap_ratio_in_mask, pointing_game
from houseprice.valuation.drivers import (
    driver_effects,
    driver_scores,
    pointing_tolerance,
    read_label_masks,
    split_evidence,
)
from houseprice.valuation.evidence import (
    CENTRE_PRIOR_SIGMA_FRAC,
    centre_prior_maps,
    evidence_houses,
    evidence_scores,
)
from houseprice.valuation.gradweights import (
    ExplainConfig,
    database_ids,
    explained_net,
    load_database,
    rebuild_gradweights,
    rekeyed,
    training_tiles,
    transfer_maps,
    without_entries,
)
from houseprice.valuation.model import HousePriceModel

#: (layer, signed head) variants; the first is the model's own database.
VARIANTS = (("final", "main"), ("penultimate", "main"), ("final", "aux"), ("penultimate", "aux"))
SIGMAS = (0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3)
#: Methods besides transfer scored in each variant (L2-CAF left out: minutes per variant).
METHODS = ["sampled_gradcam", "embeddingcam_point"]
CRITERIA = {
    "layer": "higher validation evidence-mass share of the unsigned transfer map",
    "signed_head": "higher mean sign agreement over the object drivers (validation)",
    "key": (
        "pooled only if its paired per-house gain in evidence-mass share exceeds two standard "
        "errors; otherwise the 4-d visual key (one forward pass gives map and key)"
    ),
    "centre_prior_sigma": "highest validation evidence-mass share of the prior",
    "fusion": (
        "a fusion of the two layers replaces the final layer's map only if it beats it on both "
        "the evidence-mass share and the pointing game"
    ),
}


def _variant_model(demo: Path, tmp: Path, layer: str, head: str) -> HousePriceModel:
    """The demo model with a database for ``layer`` / ``head`` (and the default search key)."""
    model = HousePriceModel.load(demo / "model")
    _, cfg = load_database(model)
    if (cfg.layer, cfg.signed_head, cfg.key) == (layer, head, ExplainConfig.key):
        return model
    new = ExplainConfig(seed=model.config.seed, layer=layer, signed_head=head)  # type: ignore[arg-type]
    path = rebuild_gradweights(demo / "model", demo / "data", tmp / f"{layer}_{head}", config=new)
    return HousePriceModel.load(path)


def _summary(scores: dict[str, Any], seconds: float) -> dict[str, Any]:
    keep = ("layer", "n_houses", "evidence_mask_ratio", "evidence_pointing", "drivers", "signed")
    return {**{k: scores[k] for k in keep if k in scores}, "seconds": seconds}


def _score(maps: np.ndarray, masks: np.ndarray, drivers: dict[str, np.ndarray], tol: float):
    ratio = np.nan_to_num(heatmap_ratio_in_mask(maps, masks), nan=0.0)
    return ratio, {
        "ratio": float(ratio.mean()),
        "pointing": float(np.nanmean(pointing_game(maps, masks, tol))),
        "drivers": driver_scores(maps, drivers, tol),
    }


def _unit(maps: np.ndarray) -> np.ndarray:
    peak = np.abs(maps).reshape(len(maps), -1).max(axis=1)[:, None, None]
    return maps / np.maximum(peak, 1e-12)


def _maps(model: HousePriceModel, ds: Dataset, pix: np.ndarray, drop: set[str], key: str):
    """Unsigned and signed transfer maps of validation tiles, own entries removed."""
    net = explained_net(model)
    db, cfg = load_database(model)
    dev = torch.device("cpu")
    if key != cfg.key:
        db = rekeyed(db, net, training_tiles(model, ds)[0], key, dev)  # type: ignore[arg-type]
    db = without_entries(db, database_ids(model), drop)
    kw: dict[str, Any] = {"device": dev, "layer": cfg.layer}
    unsigned, _ = transfer_maps(net, db, pix, key, **kw)  # type: ignore[arg-type]
    signed, _ = transfer_maps(net, db, pix, key, signed=True, **kw)  # type: ignore[arg-type]
    return unsigned.numpy(), signed.numpy()


def fusions(
    models: dict[str, HousePriceModel], ds: Dataset, labels: Path
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Layer fusions, the search-key comparison and the centre-prior sweep on validation."""
    final = models["final"]
    size = final.config.siamese.image_size
    rows, pix, masks = evidence_houses(final, ds, size, None, split="validation")
    ids = rows["house_id"].astype(str).tolist()
    drivers = split_evidence(masks, read_label_masks(labels, ids, size), driver_effects(ds, ids))
    tol = pointing_tolerance(size)
    drop = set(ids)
    _, cfg = load_database(final)
    maps: dict[str, np.ndarray] = {}
    for layer, model in models.items():
        unsigned, signed = _maps(model, ds, pix, drop, cfg.key)
        maps[f"{layer}_relu"], maps[f"{layer}_abs"] = unsigned, np.abs(signed)
    f_relu, p_relu = _unit(maps["final_relu"]), _unit(maps["penultimate_relu"])
    f_abs, p_abs = _unit(maps["final_abs"]), _unit(maps["penultimate_abs"])
    maps |= {
        "sum_relu": (f_relu + p_relu) / 2,
        "product_relu": f_relu * p_relu,
        "sum_abs": (f_abs + p_abs) / 2,
        "product_abs": f_abs * p_abs,
    }
    fused = {name: _score(m, masks, drivers, tol)[1] for name, m in maps.items()}
    other = "pooled" if cfg.key == "visual" else "visual"
    per_key = {cfg.key: _score(maps["final_relu"], masks, drivers, tol)[0]}
    per_key[other] = _score(_maps(final, ds, pix, drop, other)[0], masks, drivers, tol)[0]
    diff = per_key["pooled"] - per_key["visual"]
    key = {
        "n_houses": len(diff),
        "ratio": {k: float(v.mean()) for k, v in per_key.items()},
        "pooled_minus_visual": float(diff.mean()),
        "standard_error": float(diff.std(ddof=1) / np.sqrt(len(diff))),
    }
    sweep = {
        f"{s:g}": float(heatmap_ratio_in_mask(centre_prior_maps(len(masks), size, s), masks).mean())
        for s in SIGMAS
    }
    return fused, key, sweep


def choose(result: dict[str, Any]) -> dict[str, Any]:
    """The choices :data:`CRITERIA` make from the validation scores in ``result``."""
    v = result["variants"]
    layer = max(
        ("final", "penultimate"), key=lambda x: v[f"{x}_main"]["evidence_mask_ratio"]["transfer"]
    )

    def agreement(name: str) -> float:
        rates = [d["agree"] for d in v[name]["signed"]["transfer"].values() if d["n"]]
        return float(np.mean(rates))

    head = max(("main", "aux"), key=lambda h: agreement(f"{layer}_{h}"))
    k = result["key"]
    key = "pooled" if k["pooled_minus_visual"] > 2 * k["standard_error"] else "visual"
    sigma = max(result["centre_prior_sweep"], key=lambda s: result["centre_prior_sweep"][s])
    f = result["fusions"]
    own = f[f"{layer}_relu"]
    better = [
        n
        for n in ("sum_relu", "product_relu", "sum_abs", "product_abs")
        if f[n]["ratio"] > own["ratio"] and f[n]["pointing"] > own["pointing"]
    ]
    return {
        "layer": layer,
        "signed_head": head,
        "key": key,
        "centre_prior_sigma": float(sigma),
        "fusion": better[0] if better else "none",
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, required=True, help="houseprice demo output folder")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    ds = load_any(a.demo / "data" / "houses.csv", purpose="predict")
    labels = a.demo / "city" / "masks"
    result: dict[str, Any] = {"split": "validation", "criteria": CRITERIA, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        models: dict[str, HousePriceModel] = {}
        for layer, head in VARIANTS:
            model = _variant_model(a.demo, Path(tmp), layer, head)
            models.setdefault(layer, model)
            t0 = time.perf_counter()
            scores = evidence_scores(
                model, ds, split="validation", label_masks=labels, methods=METHODS
            )
            result["variants"][f"{layer}_{head}"] = _summary(scores, time.perf_counter() - t0)
            print(f"{layer}/{head}: transfer {scores['evidence_mask_ratio']['transfer']:.3f}")
        fused, key, sweep = fusions(models, ds, labels)
    result |= {"fusions": fused, "key": key, "centre_prior_sweep": sweep}
    result["chosen"] = choose(result)
    result["defaults"] = {
        "layer": ExplainConfig.layer,
        "signed_head": ExplainConfig.signed_head,
        "key": ExplainConfig.key,
        "centre_prior_sigma": CENTRE_PRIOR_SIGMA_FRAC,
        "fusion": "none",
    }
    atomic_write_json(a.out, result)
    print(result["chosen"], "defaults:", result["defaults"])
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
