"""Localisation metrics: heatmap ratio (box, mask), WSOL boxes, IoU, accuracy, sweep."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from houseprice.explain import (
    box_iou,
    box_masks,
    heatmap_ratio_in_box,
    heatmap_ratio_in_mask,
    threshold_sweep,
    wsol_accuracy,
    wsol_boxes,
)


def test_box_masks_use_pixel_centres() -> None:
    masks = box_masks(np.array([[1.0, 2.0, 3.0, 4.0], [0.6, 0.0, 1.4, 1.0]]), (5, 4))
    expected = np.zeros((5, 4), dtype=bool)
    expected[2:4, 1:3] = True  # columns 1, 2 (centres 1.5, 2.5), rows 2, 3
    np.testing.assert_array_equal(masks[0], expected)
    assert masks[1].sum() == 0  # column centres 0.5 and 1.5 both fall outside [0.6, 1.4]


def test_heatmap_ratio_in_box_and_mask() -> None:
    maps = np.zeros((2, 4, 6))
    maps[0, 1, 1] = 3.0
    maps[0, 3, 5] = 1.0
    maps[1] = 1.0
    boxes = np.array([[0, 0, 2, 2], [0, 0, 3, 2]], dtype=float)
    np.testing.assert_allclose(heatmap_ratio_in_box(maps, boxes), [0.75, 6 / 24])
    masks = np.zeros((2, 4, 6), dtype=bool)
    masks[:, 3, :] = True
    np.testing.assert_allclose(heatmap_ratio_in_mask(maps, masks), [0.25, 0.25])
    # torch input gives the same numbers
    np.testing.assert_allclose(heatmap_ratio_in_box(torch.from_numpy(maps), boxes), [0.75, 0.25])


def test_ratio_of_empty_map_is_nan_and_bad_inputs_raise() -> None:
    ratio = heatmap_ratio_in_box(np.zeros((1, 3, 3)), np.array([[0.0, 0.0, 1.0, 1.0]]))
    assert np.isnan(ratio[0])
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        heatmap_ratio_in_box(np.ones((2, 3, 3)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="x1 < x0"):
        heatmap_ratio_in_box(np.ones((1, 3, 3)), np.array([[2.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="non-negative"):
        heatmap_ratio_in_mask(-np.ones((1, 2, 2)), np.ones((1, 2, 2), dtype=bool))
    with pytest.raises(ValueError, match="masks must have"):
        heatmap_ratio_in_mask(np.ones((1, 2, 2)), np.ones((1, 3, 2), dtype=bool))


def test_wsol_box_is_largest_eight_connected_component() -> None:
    heat = np.zeros((1, 10, 10))
    heat[0, 1, 1] = 1.0  # the peak, a single pixel
    heat[0, 5, 5] = 0.5  # a diagonal chain of 3 pixels: one 8-connected component
    heat[0, 6, 6] = 0.5
    heat[0, 7, 7] = 0.5
    heat[0, 9, 0] = 0.1  # below 0.2 * max
    np.testing.assert_array_equal(wsol_boxes(heat, 0.2), [[5, 5, 8, 8]])
    np.testing.assert_array_equal(wsol_boxes(heat, 0.6), [[1, 1, 2, 2]])
    np.testing.assert_array_equal(wsol_boxes(heat, 0.05), [[5, 5, 8, 8]])
    np.testing.assert_array_equal(wsol_boxes(np.zeros((1, 4, 6))), [[0, 0, 6, 4]])


def test_box_iou_values() -> None:
    a = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1]], dtype=float)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 3, 3]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b), [1 / 7, 1.0, 0.0])


def test_wsol_accuracy_and_sweep() -> None:
    maps = np.zeros((2, 8, 8))
    maps[0, 2:6, 2:6] = 1.0  # matches its ground truth exactly
    maps[1, 0:2, 0:2] = 1.0  # wrong place
    maps[1, 4:8, 4:8] = 0.3  # right place but weaker: found only at thresholds <= 0.3
    boxes = np.array([[2, 2, 6, 6], [4, 4, 8, 8]], dtype=float)
    assert wsol_accuracy(maps, boxes, threshold=0.2) == 1.0
    assert wsol_accuracy(maps, boxes, threshold=0.5) == 0.5
    sweep = threshold_sweep(maps, boxes, thresholds=[0.1, 0.3, 0.5])
    np.testing.assert_allclose(sweep["accuracy"], [1.0, 1.0, 0.5])
    np.testing.assert_allclose(sweep["mean_iou"], [1.0, 1.0, 0.5])
    default = threshold_sweep(maps, boxes)
    np.testing.assert_allclose(default["thresholds"], np.arange(1, 11) * 0.05)
