"""Grad-CAM family: parity with the `grad-cam` package, retrieval variants, class specificity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from explain_nets import BOX, BOX_B, PlantedNet, TwoRegionNet, images

from houseprice.explain import (
    GradCAM,
    GradCAMAbs,
    GradCAMPlusPlus,
    RetrievalGradCAM,
    heatmap_ratio_in_box,
)

pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")  # test-only dependency (grad-cam)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

CLASSES = [1, 3, 5, 7]


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torchvision.models.resnet18(num_classes=10).eval()


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(4, 3, 128, 128, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        (GradCAM, pytorch_grad_cam.GradCAM, {}),
        # grad-cam adds 1e-6 to the Grad-CAM++ eq. 19 denominator; we default to the exact
        # formula (eps=0) and set the same eps here so both compute the same quantity.
        (GradCAMPlusPlus, pytorch_grad_cam.GradCAMPlusPlus, {"eps": 1e-6}),
    ],
)
def test_parity_with_grad_cam_package(
    resnet: torch.nn.Module, batch: torch.Tensor, ours: type, theirs: type, kwargs: dict
) -> None:
    """Compared where both libraries define the same quantity:

    1. the raw low-resolution CAM after ReLU (``Explanation.raw`` vs their weighted activation
       sum clipped at 0, before their per-image min-max scaling);
    2. the upsampled map: ours with ``normalize="minmax"`` (bilinear, half-pixel centres) vs
       their output (min-max, cv2.resize INTER_LINEAR, min-max again: the same up to their
       1e-7 guard).
    """
    layer = resnet.layer4
    result = ours(resnet, layer, normalize="minmax", **kwargs).explain(batch, CLASSES)
    targets = [ClassifierOutputTarget(c) for c in CLASSES]
    with theirs(resnet, [layer]) as cam:
        their_maps = cam(batch, targets)
        activations = cam.activations_and_grads.activations[0].numpy()
        gradients = cam.activations_and_grads.gradients[0].numpy()
        their_raw = np.maximum(
            cam.get_cam_image(batch, layer, targets, activations, gradients), 0.0
        )
    assert result.raw.shape == their_raw.shape == (4, 4, 4)
    assert float(result.raw.max()) > 0.0
    np.testing.assert_allclose(result.raw.numpy(), their_raw, atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.maps.numpy(), their_maps, atol=1e-5, rtol=0)
    assert len(layer._forward_hooks) == 0


def test_gradcampp_eps_matters_for_small_gradients(
    resnet: torch.nn.Module, batch: torch.Tensor
) -> None:
    exact = GradCAMPlusPlus(resnet, resnet.layer4).explain(batch, CLASSES).weights
    guarded = GradCAMPlusPlus(resnet, resnet.layer4, eps=1e-6).explain(batch, CLASSES).weights
    assert exact is not None and guarded is not None
    assert float((exact - guarded).abs().max()) > 1e-3 * float(exact.abs().max())


def test_abs_is_absolute_value_of_vanilla_before_relu(planted_net: PlantedNet) -> None:
    net = PlantedNet(sign=-1).eval()  # the evidence lowers the embedding sum
    x = images(4, 0)
    vanilla = RetrievalGradCAM(net, net.target_layer).explain(x)
    absolute = GradCAMAbs(net, net.target_layer).explain(x)
    assert vanilla.linear is not None and absolute.linear is not None
    torch.testing.assert_close(absolute.linear, vanilla.linear)
    torch.testing.assert_close(absolute.raw, vanilla.linear.abs())
    torch.testing.assert_close(vanilla.raw, vanilla.linear.clamp_min(0))
    assert float(absolute.raw.min()) >= 0.0 and float(absolute.maps.min()) >= 0.0
    # Taha §4.2: with negative gradients on the object the ReLU map is empty; abs recovers it.
    assert float(vanilla.raw.max()) == 0.0
    box = np.tile(np.array(BOX, dtype=float), (4, 1))
    assert heatmap_ratio_in_box(absolute.maps, box).min() > 0.8


def test_vanilla_objective_is_embedding_sum(planted_net: PlantedNet) -> None:
    x = images(3, 0)
    vanilla = RetrievalGradCAM(planted_net, planted_net.target_layer).explain(x)
    explicit = GradCAM(planted_net, planted_net.target_layer).explain(x, lambda out: out.sum(dim=1))
    torch.testing.assert_close(vanilla.weights, explicit.weights)
    linear = planted_net.head[-1].weight  # (D, C): conv -> GAP -> FC gives alpha = W^T 1 / Z
    torch.testing.assert_close(vanilla.weights[0], linear.sum(dim=0) / 256, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", [GradCAM, GradCAMPlusPlus])
def test_class_targets_pick_their_region(two_region_net: TwoRegionNet, method: type) -> None:
    x = images(3, 5)
    explainer = method(two_region_net, two_region_net.target_layer)
    for cls, box in ((0, BOX), (1, BOX_B)):
        maps = explainer(x, cls)
        boxes = np.tile(np.array(box, dtype=float), (3, 1))
        assert heatmap_ratio_in_box(maps, boxes).min() > 0.8
