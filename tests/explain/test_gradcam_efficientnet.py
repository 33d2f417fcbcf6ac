"""Grad-CAM / Grad-CAM++ parity with the `grad-cam` package on the EfficientNet-Lite0 backbone
(its ImageNet classifier, explained at the backbone's last map: the 1x1 head conv's output)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from houseprice.explain import GradCAM, GradCAMPlusPlus
from houseprice.vision.backbones import BackboneConfig, build_backbone
from houseprice.vision.efficientnet import packaged_efficientnet_lite0_weights

pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")  # test-only dependency (grad-cam)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

CLASSES = [281, 504, 967, 1]


class Lite0Classifier(nn.Module):
    """The backbone, global average pooling and the packaged ImageNet classifier."""

    def __init__(self, output_stride: int) -> None:
        super().__init__()
        cfg = BackboneConfig(name="efficientnet_lite0", output_stride=output_stride)
        self.backbone = build_backbone(cfg)
        state = torch.load(packaged_efficientnet_lite0_weights(), weights_only=True)
        self.fc = nn.Linear(1280, 1000)
        self.fc.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))  # (B, 3, S, S) -> (B, 1000)


@pytest.mark.parametrize(("output_stride", "side"), [(32, 4), (8, 16)])
@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        (GradCAM, pytorch_grad_cam.GradCAM, {}),
        (GradCAMPlusPlus, pytorch_grad_cam.GradCAMPlusPlus, {"eps": 1e-6}),
    ],
)
def test_parity_on_efficientnet_lite0(
    ours: type, theirs: type, kwargs: dict, output_stride: int, side: int
) -> None:
    """Raw CAM (after ReLU) and the min-max upsampled map agree with the package on 128-px
    images: a 4x4 map at stride 32, 16x16 at stride 8 (as test_gradcam's ResNet parity)."""
    net = Lite0Classifier(output_stride).eval()
    batch = torch.randn(4, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    layer = net.backbone.target_layer
    result = ours(net, layer, normalize="minmax", **kwargs).explain(batch, CLASSES)
    targets = [ClassifierOutputTarget(c) for c in CLASSES]
    with theirs(net, [layer]) as cam:
        their_maps = cam(batch, targets)
        activations = cam.activations_and_grads.activations[0].numpy()
        gradients = cam.activations_and_grads.gradients[0].numpy()
        their_raw = np.maximum(
            cam.get_cam_image(batch, layer, targets, activations, gradients), 0.0
        )
    assert result.raw.shape == their_raw.shape == (4, side, side)
    assert float(result.raw.max()) > 0.0
    scale = float(np.abs(their_raw).max())
    np.testing.assert_allclose(result.raw.numpy(), their_raw, atol=1e-5 * scale, rtol=0)
    np.testing.assert_allclose(result.maps.numpy(), their_maps, atol=1e-4, rtol=0)
    assert len(layer._forward_hooks) == 0
