"""L2-CAF (Taha eq. 1-3): fast = vanilla, batching, stopping rule, class-specific maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explain_nets import BOX, BOX_B, PlantedNet, TwoRegionNet, box_mask, images

from houseprice.explain import L2CAF, L2CAFConfig, heatmap_ratio_in_box

CONFIG = L2CAFConfig(max_iter=150, lr=0.1)


def explain_counting_trunk(net: PlantedNet, explainer: L2CAF, x: torch.Tensor):
    calls = []
    handle = net.features[0].register_forward_hook(lambda *args: calls.append(1))
    try:
        return explainer.explain(x), len(calls)
    finally:
        handle.remove()


def test_fast_equals_vanilla_and_skips_the_trunk(planted_net: PlantedNet) -> None:
    x = images(3, 0)
    fast_explainer = L2CAF(
        planted_net, planted_net.target_layer, head=planted_net.forward_head, config=CONFIG
    )
    fast, fast_calls = explain_counting_trunk(planted_net, fast_explainer, x)
    vanilla_explainer = L2CAF(planted_net, planted_net.target_layer, fast=False, config=CONFIG)
    vanilla, vanilla_calls = explain_counting_trunk(planted_net, vanilla_explainer, x)
    torch.testing.assert_close(fast.raw, vanilla.raw, rtol=1e-4, atol=1e-5)
    assert fast.extras["iterations"].tolist() == vanilla.extras["iterations"].tolist()
    assert fast_calls == 1  # one forward to cache the layer output, then the head only
    assert vanilla_calls == 1 + int(vanilla.extras["iterations"].max())


def test_filters_are_independent_across_the_batch(planted_net: PlantedNet) -> None:
    """Row 0 starts from the same filter in each call (the seeded draw begins with it), so its
    result must not depend on the other images in the batch."""
    x = images(3, 0)
    explainer = L2CAF(
        planted_net, planted_net.target_layer, head=planted_net.forward_head, config=CONFIG
    )
    alone = explainer.explain(x[:1])
    with_1 = explainer.explain(x[[0, 1]])
    with_2 = explainer.explain(x[[0, 2]])
    torch.testing.assert_close(with_1.raw[0], alone.raw[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(with_2.raw[0], alone.raw[0], rtol=1e-5, atol=1e-6)
    assert with_1.extras["iterations"][0] == alone.extras["iterations"][0]
    assert not torch.allclose(with_1.raw[1], with_2.raw[1])


def test_map_is_unit_norm_absolute_filter(planted_net: PlantedNet) -> None:
    result = L2CAF(
        planted_net, planted_net.target_layer, head=planted_net.forward_head, config=CONFIG
    ).explain(images(2, 0))
    assert float(result.raw.min()) >= 0.0
    torch.testing.assert_close(result.raw.flatten(1).norm(dim=1), torch.ones(2))
    assert result.weights is None


def test_stopping_rule(planted_net: PlantedNet) -> None:
    x = images(2, 0)
    head = planted_net.forward_head
    loose = L2CAFConfig(max_iter=200, patience=7, eps=1e9)  # any change is below eps
    result = L2CAF(planted_net, planted_net.target_layer, head=head, config=loose).explain(x)
    assert result.extras["iterations"].tolist() == [8, 8]  # first check at i = d
    assert result.extras["converged"].all()
    never = L2CAFConfig(max_iter=40, patience=5, eps=0.0)
    result = L2CAF(planted_net, planted_net.target_layer, head=head, config=never).explain(x)
    assert result.extras["iterations"].tolist() == [40, 40]
    assert not result.extras["converged"].any()
    default = L2CAF(planted_net, planted_net.target_layer, head=head).explain(x)
    iterations = default.extras["iterations"]
    assert default.extras["converged"].all() and (iterations > 50).all()
    assert (iterations < 1000).all()


def test_class_specific_filter_follows_the_class(two_region_net: TwoRegionNet) -> None:
    """Eq. 2 raises the chosen logit and lowers the others: the signed filter is positive on
    the chosen class's region and negative on the other's; |f| covers both."""
    x = images(3, 5)
    explainer = L2CAF(two_region_net, two_region_net.target_layer, head=two_region_net.forward_head)
    cells = {name: box_mask(box)[None, None] for name, box in (("a", BOX), ("b", BOX_B))}
    cells = {k: torch.nn.functional.avg_pool2d(v, 4)[0, 0] > 0.5 for k, v in cells.items()}
    both = (
        np.tile(np.array(BOX, dtype=float), (3, 1)),
        np.tile(np.array(BOX_B, dtype=float), (3, 1)),
    )
    for cls, mine, other in ((0, "a", "b"), (1, "b", "a")):
        result = explainer.explain(x, cls)
        signed = result.extras["filter"]
        assert (signed[:, cells[mine]].sum(dim=1) > 0).all()
        assert (signed[:, cells[other]].sum(dim=1) < 0).all()
        inside = sum(heatmap_ratio_in_box(result.maps, boxes) for boxes in both)
        assert inside.min() > 0.8


def test_fast_needs_a_head(planted_net: PlantedNet) -> None:
    with pytest.raises(ValueError, match="head="):
        L2CAF(planted_net, planted_net.target_layer, fast=True)
    with pytest.raises(ValueError, match="max_iter"):
        L2CAFConfig(max_iter=0)
