"""Typed targets behave like the plain target forms they name; top-M in the Grad-CAM family."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from explain_nets import PlantedNet, TwoRegionNet, images

from houseprice.explain import (
    L2CAF,
    ClassTarget,
    EmbeddingCAM,
    EmbeddingSumTarget,
    EmbeddingTarget,
    GradCAM,
    GradCAMAbs,
    GradCAMPlusPlus,
    L2CAFConfig,
    RetrievalGradCAM,
    SimilarityTarget,
    class_proxies,
    top_m_weights,
)


def test_class_target_equals_class_indices(two_region_net: TwoRegionNet) -> None:
    x, classes = images(4, 2), torch.tensor([0, 1, 1, 0])
    for method in (GradCAM, GradCAMPlusPlus):
        explainer = method(two_region_net, two_region_net.target_layer)
        plain = explainer.explain(x, classes)
        typed = explainer.explain(x, ClassTarget(classes))
        torch.testing.assert_close(typed.weights, plain.weights)
        torch.testing.assert_close(typed.maps, plain.maps)
    one = GradCAM(two_region_net, two_region_net.target_layer)
    torch.testing.assert_close(one(x, ClassTarget(1)), one(x, 1))
    with pytest.raises(TypeError):
        ClassTarget(torch.tensor([0.5]))


def test_embedding_sum_target_is_the_vanilla_default(planted_net: PlantedNet) -> None:
    x = images(3, 1)
    for method in (RetrievalGradCAM, GradCAMAbs):
        explainer = method(planted_net, planted_net.target_layer)
        torch.testing.assert_close(explainer(x, EmbeddingSumTarget()), explainer(x))


def test_embedding_target_is_the_proxy_objective(planted_net: PlantedNet) -> None:
    x = images(4, 3)
    ref = images(12, 4)
    labels = torch.arange(12) % 3
    with torch.no_grad():
        classes, proxies = class_proxies(planted_net(ref), labels)
    ecam = EmbeddingCAM(planted_net, planted_net.target_layer, proxies=(classes, proxies))
    anchors = torch.tensor([0, 2, 1, 1])
    by_label = ecam.explain(x, anchors)
    torch.testing.assert_close(ecam.explain(x, ClassTarget(anchors)).maps, by_label.maps)
    by_vector = ecam.explain(x, EmbeddingTarget(proxies[anchors]))
    torch.testing.assert_close(by_vector.weights, by_label.weights)
    # the same objective through plain Grad-CAM
    gcam = GradCAM(planted_net, planted_net.target_layer)
    torch.testing.assert_close(gcam(x, EmbeddingTarget(proxies[anchors])), by_label.maps)
    with pytest.raises(TypeError, match="not other callables"):
        ecam.explain(x, SimilarityTarget(proxies[0]))


def test_similarity_target(planted_net: PlantedNet) -> None:
    x = images(2, 5)
    with torch.no_grad():
        out = planted_net(x)
    target = SimilarityTarget(out[0])
    values = target(out)
    torch.testing.assert_close(values, F.cosine_similarity(out, out[0:1].expand_as(out)))
    assert float(values[0]) == pytest.approx(1.0)
    maps = GradCAM(planted_net, planted_net.target_layer)(x, target)
    assert maps.shape == (2, 64, 64)
    with pytest.raises(ValueError, match="anchor vectors"):
        SimilarityTarget(torch.ones(3))(out)


def test_l2caf_reads_class_targets(two_region_net: TwoRegionNet) -> None:
    cfg = L2CAFConfig(max_iter=20)
    explainer = L2CAF(two_region_net, two_region_net.target_layer, fast=False, config=cfg)
    x = images(2, 1)
    torch.testing.assert_close(explainer(x, ClassTarget([0, 1])), explainer(x, [0, 1]))


@pytest.mark.parametrize("method", [GradCAM, GradCAMPlusPlus, EmbeddingCAM, RetrievalGradCAM])
def test_top_m_keeps_the_largest_weights(planted_net: PlantedNet, method: type) -> None:
    x = images(3, 2)
    layer = planted_net.target_layer
    target = torch.tensor([0, 1, 2]) if method in (GradCAM, GradCAMPlusPlus) else None
    full = method(planted_net, layer).explain(x, target)
    top = method(planted_net, layer, top_m=4).explain(x, target)
    torch.testing.assert_close(top.weights, top_m_weights(full.weights, 4))
    assert int((top.weights != 0).sum(dim=1).max()) <= 4
    with pytest.raises(ValueError, match="top_m"):
        method(planted_net, layer, top_m=0)
