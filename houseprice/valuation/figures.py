"""One figure per price driver for docs/explain.md: tile, driver evidence, signed map, prior.

``python -m houseprice.valuation.figures --model M --data D [--masks DIR] --out docs/img/``
writes ``drivers_<driver>.png`` for the six drivers of the synthetic city
(:data:`houseprice.valuation.drivers.DRIVERS`). Each shows one unseen (test) house where the
driver applies, the one with the most evidence pixels of that driver: its tile, the driver's
evidence pixels (:func:`~houseprice.valuation.drivers.split_evidence`) in yellow, our signed
transfer map (two colours, :func:`houseprice.maps.overlay.signed_overlay`) and the
image-independent centre prior. Pictures only: no score is computed here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from houseprice.artifacts import atomic_write_bytes
from houseprice.data.houses import load_any
from houseprice.runtime import resolve_device
from houseprice.valuation.drivers import DRIVERS
from houseprice.valuation.evidence import (
    _per_driver_masks,
    centre_prior_maps,
    evidence_houses,
)
from houseprice.valuation.gradweights import explained_net, load_database, transfer_maps
from houseprice.valuation.model import HousePriceModel

EVIDENCE_RGB = (255, 221, 0)


def _panel_png(panels: list[tuple[str, np.ndarray]], title: str) -> bytes:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from houseprice.maps.overlay import LOWERS_RGB, RAISES_RGB

    fig = Figure(figsize=(2.4 * len(panels), 2.9), dpi=100)
    FigureCanvasAgg(fig)
    for k, (name, img) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    handles = [
        Patch(color=np.array(RAISES_RGB) / 255, label="raises price"),
        Patch(color=np.array(LOWERS_RGB) / 255, label="lowers price"),
        Patch(color=np.array(EVIDENCE_RGB) / 255, label="driver evidence"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def driver_figures(
    model_dir: str | Path, data: str | Path, out: str | Path, *, masks: str | Path | None = None
) -> list[Path]:
    """Write ``drivers_<driver>.png`` into ``out``; returns the written paths."""
    from houseprice.maps.overlay import heatmap_overlay, signed_overlay

    model = HousePriceModel.load(model_dir)
    ds = load_any(data, purpose="predict")
    size = model.config.siamese.image_size
    rows, pix, ev = evidence_houses(model, ds, size, None)
    drivers, why = _per_driver_masks(ds, rows, ev, masks)
    if drivers is None:
        raise SystemExit(f"no per-driver evidence: {why}")
    db, cfg = load_database(model, need_signed=True)
    net = explained_net(model)
    ids = rows["house_id"].astype(str).to_numpy()
    written = []
    for d in DRIVERS:
        area = drivers[d].sum(axis=(1, 2))
        if not area.any():
            continue
        i = int(np.argmax(area))
        signed, _ = transfer_maps(
            net,
            db,
            pix[i : i + 1],
            cfg.key,
            device=resolve_device("cpu"),
            layer=cfg.layer,
            signed=True,
        )
        tile = pix[i]
        marked = tile.copy()
        marked[drivers[d][i]] = EVIDENCE_RGB
        prior = heatmap_overlay(tile, centre_prior_maps(1, size)[0])
        panels = [
            ("tile", tile),
            (f"{d} evidence", marked),
            ("our signed map (transfer)", signed_overlay(tile, signed[0].numpy())),
            ("centre prior", prior),
        ]
        path = Path(out) / f"drivers_{d}.png"
        atomic_write_bytes(path, _panel_png(panels, f"{d}: test house {ids[i]}"))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--masks", default=None, help="label masks folder (default DATA/masks)")
    p.add_argument("--out", default="docs/img")
    a = p.parse_args(argv)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    for path in driver_figures(a.model, a.data, a.out, masks=a.masks):
        print(path)


if __name__ == "__main__":
    main()
