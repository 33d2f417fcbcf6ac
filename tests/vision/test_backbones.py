"""Backbones: feature maps, local weights files, torchvision state dicts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from houseprice.errors import UserInputError
from houseprice.vision.backbones import build_backbone


@pytest.mark.parametrize("name", ["compact", "resnet18"])
def test_backbone_features_and_weights_file(tmp_path: Path, name: str) -> None:
    from safetensors.torch import save_file

    net = build_backbone(name)
    fmap = net.forward_features(torch.zeros(2, 3, 64, 64))
    assert fmap.shape[1] == net.out_channels
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors")
    )
    again = build_backbone(name, weights=tmp_path / "w.safetensors")
    for (k, v), (_, w) in zip(net.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    with pytest.raises(UserInputError, match="never downloaded"):
        build_backbone(name, weights=tmp_path / "nope.pth")


def test_torchvision_state_dict_maps_onto_backbone(tmp_path: Path) -> None:
    import torchvision

    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "r18.pth")
    net = build_backbone("resnet18", weights=tmp_path / "r18.pth")
    assert torch.equal(net.stem[0].weight, tv.conv1.weight)
    assert torch.equal(net.stages[3][1].conv2.weight, tv.layer4[1].conv2.weight)
    with pytest.raises(ValueError, match="do not fit backbone 'compact'"):
        build_backbone("compact", weights=tmp_path / "r18.pth")
