"""Evidence scoring of house explanations: the centre prior and the registry-driven method list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from houseprice.explain import Explainer, LowRes, heatmap_ratio_in_mask, registered
from houseprice.explain.base import Target
from houseprice.jobs import explain_table
from houseprice.valuation.evidence import centre_prior_maps, house_methods


def test_centre_prior_peaks_on_the_centre_and_is_symmetric() -> None:
    maps = centre_prior_maps(2, 9)
    assert maps.shape == (2, 9, 9)
    assert maps[0, 4, 4] == 1.0 and maps[0].argmax() == 4 * 9 + 4
    np.testing.assert_allclose(maps[0], maps[0].T)
    np.testing.assert_allclose(maps[0], maps[0][::-1, ::-1])


def test_centre_prior_beats_uniform_only_on_central_evidence() -> None:
    size = 32
    central = np.zeros((1, size, size), bool)
    central[:, 12:20, 12:20] = True
    corner = np.zeros((1, size, size), bool)
    corner[:, :8, :8] = True
    prior = centre_prior_maps(1, size)
    for mask, better in ((central, True), (corner, False)):
        uniform = mask.mean()
        assert bool(heatmap_ratio_in_mask(prior, mask)[0] > uniform) is better


class CornerCAM(Explainer):
    """A toy explainer: all heat in the top-left corner, no model computation."""

    def __init__(self, model: nn.Module, target_layer: nn.Module | None, **kw: object) -> None:
        super().__init__(model, None)

    def _compute(self, x: Tensor, target: Target) -> LowRes:
        raw = torch.zeros(x.shape[0], 4, 4)
        raw[:, 0, 0] = 1.0
        return LowRes(raw=raw)


def test_a_registered_explainer_is_scored_by_houseprice_explain(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    """One registry entry (tag rank-pairs) puts a method into `houseprice explain`'s report."""
    with registered(
        "toy_corner", CornerCAM, label="Toy corner", outputs=("embedding",), tags=("rank-pairs",)
    ):
        assert "toy_corner" in house_methods()
        res = explain_table(city_model, tiny_city, tmp_path / "e", test_only=True, progress=False)
    assert "toy_corner" not in house_methods()  # unregistered again
    assert res.report is not None
    ratios = res.report["evidence_mask_ratio"]
    assert {"transfer", "direct", "embeddingcam", "l2caf", "centre_prior", "toy_corner"} <= set(
        ratios
    )
    # a corner map misses the house-centred evidence: below the centre prior and uniform
    assert ratios["toy_corner"] < ratios["centre_prior"]
    assert ratios["toy_corner"] < res.report["uniform"]
    md = (tmp_path / "e" / "report.md").read_text()
    assert "| toy_corner |" in md


def test_split_evidence_assigns_each_pixel_to_its_driver() -> None:
    import pandas as pd

    from houseprice.valuation.drivers import DRIVERS, split_evidence

    labels = np.zeros((1, 12, 12), np.uint8)
    labels[0, 0:2, 0:2] = 6  # pool
    labels[0, 3, 3] = 7  # a lot tree
    labels[0, 6:12, 6:12] = 9  # a park ...
    labels[0, 8, 8] = 7  # ... with a tree inside it
    labels[0, 11, 0:3] = 4  # highway
    evidence = np.ones((1, 12, 12), bool)
    effects = pd.DataFrame({f"effect_{d}": [0.1] for d in DRIVERS})
    effects["effect_highway"] = -0.15
    effects["effect_water"] = 0.01  # below the 0.05 threshold: does not apply
    d = split_evidence(evidence, labels, effects)
    assert d["pool"][0].sum() == 4 and d["pool"][0, 0, 0]
    assert d["trees"][0, 3, 3] and not d["trees"][0, 8, 8]  # the park's tree is the park's
    assert d["park"][0, 8, 8] and d["park"][0].sum() == 36
    assert d["highway"][0].sum() == 3
    assert not d["water"].any()
    claimed = d["pool"] | d["trees"] | d["park"] | d["highway"]
    np.testing.assert_array_equal(d["lot"], evidence & ~claimed)
    effects["effect_lot"] = 0.0
    assert not split_evidence(evidence, labels, effects)["lot"].any()


def test_sign_agreement_counts_the_expected_sign_per_driver() -> None:
    from houseprice.valuation.drivers import DRIVERS, sign_agreement

    masks = {d: np.zeros((2, 4, 4), bool) for d in DRIVERS}
    masks["highway"][:, 0, :] = True
    masks["water"][:, 3, :] = True
    signed = np.zeros((2, 4, 4))
    signed[0, 0, :] = -1.0  # house 0: highway lowers, water raises
    signed[0, 3, :] = 0.5
    signed[1, 0, :] = -0.2  # house 1: highway lowers, water the wrong way
    signed[1, 3, :] = -0.1
    signed[1, 0, 0] = 0.1  # some positive mass on the highway, less than the negative
    out = sign_agreement(signed, masks)
    assert out["highway"]["agree"] == 1.0 and out["highway"]["n"] == 2
    assert out["highway"]["net"] == pytest.approx((-1.0 + (0.1 - 0.6) / 0.7) / 2)
    assert out["water"]["agree"] == 0.5 and out["water"]["expected"] == 1
    assert out["pool"]["n"] == 0 and out["pool"]["agree"] is None


def test_per_driver_and_signed_report_on_the_tiny_city(city_model: Path, tiny_city: Path) -> None:
    from houseprice.data.houses import load_dataset
    from houseprice.explain import pointing_game
    from houseprice.valuation.drivers import pointing_tolerance
    from houseprice.valuation.evaluate import validation_split
    from houseprice.valuation.evidence import evidence_houses, evidence_scores
    from houseprice.valuation.model import HousePriceModel

    model = HousePriceModel.load(city_model)
    ds = load_dataset(tiny_city)
    rep = evidence_scores(model, ds, max_houses=5, methods=["sampled_gradcam"])
    assert rep["n_houses"] == 5 and rep["n_houses_all"] >= 5
    drv = rep["drivers"]
    assert drv["transfer"]["lot"]["n"] > 0
    n_all = {d: v["n"] for d, v in drv["centre_prior"].items()}
    assert {d: v["n"] for d, v in drv["transfer"].items()} == n_all  # every evidence house
    nbd = rep["n_houses_bounded"]  # bounded methods: the first 5 + every rare-driver house
    assert all(v["n"] <= min(nbd, n_all[d]) for d, v in drv["direct"].items())
    for d in ("water", "park", "highway"):
        assert drv["direct"][d]["n"] == n_all[d]
    size = model.config.siamese.image_size
    assert rep["pointing_tolerance_px"] == pytest.approx(15 * size / 224)
    # the uniform map's pointing game is the chance rate: share of pixels near the evidence
    _, _, masks = evidence_houses(model, ds, size, 5)
    chance = pointing_game(np.ones(masks.shape), masks, pointing_tolerance(size))
    assert rep["evidence_pointing"]["uniform"] == pytest.approx(float(chance.mean()))
    assert set(rep["signed"]["transfer"]) == {"pool", "trees", "water", "park", "highway"}
    from houseprice.valuation.evidence import evidence_markdown

    md = evidence_markdown(rep)
    assert "## Per driver" in md and "## Signed maps" in md
    lot = drv["transfer"]["lot"]
    assert f"{lot['ratio']:.3f} / {lot['pointing']:.2f} ({lot['n']})" in md
    # validation houses: the last quarter by date of the training houses, never test houses
    val = evidence_scores(model, ds, max_houses=3, methods=[], split="validation")
    rows, _, _ = evidence_houses(model, ds, size, None, split="validation")
    trained = np.flatnonzero(ds.records["house_id"].isin(model.train_ids).to_numpy())
    _, vrows = validation_split(ds.records, trained)
    assert set(rows["house_id"]) <= set(ds.records.iloc[vrows]["house_id"])
    assert val["split"] == "validation" and val["n_houses_all"] == len(rows)
