"""Domain-side explanation helpers that need no trained model."""

from __future__ import annotations

import numpy as np

from houseprice.explain import heatmap_ratio_in_mask
from houseprice.valuation.evidence import centre_prior_maps


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
