"""Evidence scoring of house explanations: the centre prior and the registry-driven method list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
