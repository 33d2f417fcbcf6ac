"""CNN backbones built from torchvision's ResNet family, split into features and head.

Every backbone exposes ``forward_features(x) -> (B, C, h, w)`` (the last convolutional map,
the one explainers look at) and ``pool(fmap) -> (B, C)``; task heads live elsewhere
(siamese branch, embedding head). Options:

- ``compact`` (default): a narrow ResNet made of torchvision ``BasicBlock`` stages
  (widths 32/64/128, stride 8) sized for 2 CPU cores and 64-px tiles (8×8 final map).
- ``resnet18`` / ``resnet50``: torchvision's networks without avgpool/fc (stride 32).

Weights are ``None`` (train from scratch) or a local file: a torchvision state dict
(``.pth``/``.pt``, loaded with ``weights_only=True``) or ``.safetensors``. Nothing is ever
downloaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

BackboneName = Literal["compact", "resnet18", "resnet50"]
BACKBONES: tuple[str, ...] = ("compact", "resnet18", "resnet50")


@dataclass(frozen=True)
class BackboneConfig:
    """How to build a backbone; stored in model.json so a model can be rebuilt exactly."""

    name: str = "compact"
    widths: tuple[int, ...] = (32, 64, 128)  # compact only: channels per stage
    blocks: tuple[int, ...] = (1, 1, 1)  # compact only: BasicBlocks per stage

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["widths"], d["blocks"] = list(self.widths), list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> BackboneConfig:
        return cls(
            name=str(d["name"]),
            widths=tuple(int(x) for x in d.get("widths", (32, 64, 128))),  # type: ignore[union-attr]
            blocks=tuple(int(x) for x in d.get("blocks", (1, 1, 1))),  # type: ignore[union-attr]
        )


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    down = None
    if stride != 1 or inplanes != planes:
        down = nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
        )
    layers: list[nn.Module] = [BasicBlock(inplanes, planes, stride=stride, downsample=down)]
    layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class Backbone(nn.Module):
    """A ResNet trunk: ``stem`` then ``stages``; ``forward_features`` returns the last map."""

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
        elif name in ("resnet18", "resnet50"):
            net = getattr(torchvision.models, name)(weights=None)
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            self.stages = nn.Sequential(net.layer1, net.layer2, net.layer3, net.layer4)
            self.out_channels = net.fc.in_features
        else:
            raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")

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


def load_backbone_weights(backbone: Backbone, path: str | Path) -> list[str]:
    """Load a local torchvision (or own) state dict into ``backbone``; return ignored keys.

    Accepts ``.safetensors`` or a torch file read with ``weights_only=True`` (never unpickles
    arbitrary objects). torchvision key names (``conv1``, ``layer1`` …) are mapped onto ours;
    the classifier ``fc.*`` is ignored. Missing trunk keys are an error.
    """
    from houseprice.errors import UserInputError

    path = Path(path)
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
    mapped: dict[str, Tensor] = {}
    ignored: list[str] = []
    for k, v in state.items():
        head, _, rest = k.partition(".")
        if head in _TV_PREFIX:
            mapped[f"{_TV_PREFIX[head]}.{rest}"] = v
        elif head in ("stem", "stages"):
            mapped[k] = v
        else:
            ignored.append(k)
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
    config: BackboneConfig | str = "compact", weights: str | Path | None = None
) -> Backbone:
    """Build a backbone by name or config, optionally loading local weights."""
    cfg = BackboneConfig(name=config) if isinstance(config, str) else config
    net = Backbone(cfg)
    if weights is not None:
        load_backbone_weights(net, weights)
    return net
