"""The explain job: price and explain every house of a table; overlays, a table, a map, scores.

Heatmaps come from the model's grad-weight database by nearest-neighbour transfer (no
backpropagation, :mod:`houseprice.valuation.gradweights`); where the dataset has evidence masks
(the synthetic city) the maps are scored (:mod:`houseprice.valuation.evidence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from houseprice.artifacts import atomic_write_json, atomic_write_text
from houseprice.data.houses import Dataset, load_any
from houseprice.data.houses.source import FolderTiles
from houseprice.jobs.outputs import safe_name
from houseprice.runtime import resolve_device
from houseprice.valuation.evidence import evidence_markdown, evidence_scores
from houseprice.valuation.gradweights import (
    database_ids,
    explained_net,
    load_database,
    transfer_maps,
)
from houseprice.valuation.model import HousePriceModel


@dataclass
class ExplainResult:
    table: Path
    overlays: Path
    map_html: Path | None
    report: dict[str, Any] | None
    frame: pd.DataFrame


def _write_heatmaps(
    model: HousePriceModel,
    ds: Dataset,
    frame: pd.DataFrame,
    out: Path,
    *,
    device: str,
    progress: bool,
) -> None:
    """Transfer heatmaps for every row with a usable tile; overlay + heatmap PNG per house."""
    from PIL import Image
    from tqdm.auto import tqdm

    from houseprice.maps import heatmap_overlay, save_overlay_png

    dev = resolve_device(device)
    net = explained_net(model).to(dev)
    db, cfg = load_database(model)
    assert ds.tiles is not None  # a model with visual features was trained on tiles
    tiles = ds.tiles.read(ds.records, model.config.siamese.image_size, warn=False)
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
        hid = safe_name(ids[i])
        over = out / "overlays" / f"{hid}.png"
        save_overlay_png(tile, hm, over, colorbar=True, title=ids[i])
        heat = out / "heatmaps" / f"{hid}.png"
        Image.fromarray(heatmap_overlay(tile, hm)).save(heat)
        frame.loc[frame.index[i], "overlay"] = str(over)
        frame.loc[frame.index[i], "heatmap"] = str(heat)
        frame.loc[frame.index[i], "neighbour"] = db_ids[int(neigh[k])]


def _scorable(model: HousePriceModel, ds: Dataset) -> bool:
    """Evidence masks and prices for every row: the explanations can be scored."""
    return bool(
        model.featurizer is not None
        and (ds.meta.get("truth") or {}).get("evidence_dir")
        and "price" in ds.records.columns
        and ds.records["price"].notna().all()
    )


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
    from houseprice.maps import render_valuation_map

    model = HousePriceModel.load(model_dir)
    full = load_any(table, purpose="predict")
    rec = full.records
    if test_only:
        rec = rec[~rec["house_id"].astype(str).isin(set(model.train_ids))]
    ds = full.subset(rec)
    out = Path(out_dir)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    (out / "heatmaps").mkdir(parents=True, exist_ok=True)
    frame = model.predict_frame(ds.root, rec, device=device, progress=progress)
    paths = ds.tiles.paths(rec) if isinstance(ds.tiles, FolderTiles) else [None] * len(rec)
    frame["image"] = [str(p) if p is not None else None for p in paths]
    frame["heatmap"] = None
    frame["overlay"] = None
    frame["neighbour"] = None
    if model.featurizer is not None:
        _write_heatmaps(model, ds, frame, out, device=device, progress=progress)
    table_path = out / "explanations.csv"
    atomic_write_text(table_path, frame.drop(columns=model.visual_columns).to_csv(index=False))
    report = None
    if _scorable(model, full):
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
