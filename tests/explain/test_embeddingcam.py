"""EmbeddingCAM (Bachhawat): reductions to Grad-CAM (one-hot proxies) and to W.p (eq. 18)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from explain_nets import PlantedNet, TwoRegionNet, images

from houseprice.explain import EmbeddingCAM, GradCAM, class_proxies


def test_one_hot_proxies_reduce_to_gradcam(two_region_net: TwoRegionNet) -> None:
    x = images(4, 2)
    classes = torch.tensor([0, 1, 1, 0])
    one_hot = F.one_hot(classes, 2).float()
    ecam = EmbeddingCAM(two_region_net, two_region_net.target_layer).explain(x, one_hot)
    gcam = GradCAM(two_region_net, two_region_net.target_layer).explain(x, classes)
    assert float(gcam.raw.max()) > 0
    torch.testing.assert_close(ecam.weights, gcam.weights)
    torch.testing.assert_close(ecam.maps, gcam.maps)


def test_point_proxy_weights_are_w_dot_p_over_z(planted_net: PlantedNet) -> None:
    """conv -> GAP -> FC: alpha = (1/Z) W^T p with p the normalised embedding (eq. 17-18)."""
    x = images(5, 3)
    result = EmbeddingCAM(planted_net, planted_net.target_layer).explain(x)
    with torch.no_grad():
        proxy = F.normalize(planted_net(x), dim=1)  # (B, D)
    w = planted_net.head[-1].weight  # (D, C)
    expected = proxy @ w / (16 * 16)  # (B, C)
    torch.testing.assert_close(result.weights, expected, rtol=1e-5, atol=1e-8)
    # the objective value is y . p = ||y|| for the single-point proxy
    with torch.no_grad():
        torch.testing.assert_close(result.extras["objective"], planted_net(x).norm(dim=1))


def test_mean_proxy_weights_are_w_dot_class_proxy(planted_net: PlantedNet) -> None:
    reference = images(12, 4)
    labels = torch.tensor([3, 7, 9] * 4)
    with torch.no_grad():
        embeddings = planted_net(reference)
    classes, proxies = class_proxies(embeddings, labels)
    assert classes.tolist() == [3, 7, 9]
    for k, c in enumerate(classes.tolist()):
        mean = F.normalize(embeddings[labels == c], dim=1).mean(dim=0)
        torch.testing.assert_close(proxies[k], mean / mean.norm())
    explainer = EmbeddingCAM(planted_net, planted_net.target_layer, proxies=(classes, proxies))
    x = images(3, 5)
    result = explainer.explain(x, torch.tensor([9, 3, 7]))
    expected = proxies[[2, 0, 1]] @ planted_net.head[-1].weight / 256
    torch.testing.assert_close(result.weights, expected, rtol=1e-5, atol=1e-8)


def test_bad_proxy_targets(planted_net: PlantedNet) -> None:
    explainer = EmbeddingCAM(planted_net, planted_net.target_layer)
    with pytest.raises(ValueError, match="has none"):
        explainer.explain(images(2, 0), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="proxy vectors"):
        explainer.explain(images(2, 0), torch.rand(2, 3))
    _, proxies = class_proxies(torch.rand(4, 8), torch.tensor([0, 0, 1, 1]))
    with_labels = EmbeddingCAM(
        planted_net, planted_net.target_layer, proxies=(torch.tensor([4, 6]), proxies)
    )
    with pytest.raises(ValueError, match=r"no proxy for labels \[5\]"):
        with_labels.explain(images(2, 0), torch.tensor([4, 5]))
