"""The embedding net: normalised / raw outputs, feature map, explainer target layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from embedding_data import TINY

from houseprice.vision.backbones import build_backbone
from houseprice.vision.embedding import EmbeddingNet


def test_embedding_net_outputs() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(build_backbone(TINY), dim=5).eval()
    x = torch.randn(3, 3, 16, 16)
    out = net(x)
    raw = net.forward_raw(x)
    assert out.shape == (3, 5)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)
    assert torch.allclose(out, F.normalize(raw, dim=1), atol=1e-6)
    assert torch.allclose(net.raw()(x), raw)
    assert net.forward_features(x).shape == (3, 8, 2, 2)  # compact: stride 8
    assert any(m is net.target_layer for m in net.raw().modules())
