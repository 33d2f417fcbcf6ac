"""The rank-siamese network (Chen et al. 2020, §4.2): architecture config, radial gate, the net.

A branch CNN maps a tile to a d-dim visual feature f(x) (d = 4 in the paper); for a pair the
element-wise difference v_ij = f(x_i) − f(x_j) goes through an FC(d×2) layer whose two logits
say whether y_i > y_j. :class:`SiameseConfig` holds the *architecture* only (saved in
model.json); how the net is trained lives in :mod:`houseprice.vision.siamese.train`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from houseprice.vision.backbones import Backbone, BackboneConfig

POOLINGS: tuple[str, ...] = ("radial", "gap")
#: Layers an explainer can hook (:meth:`RankSiamese.explain_layer`): the gated last map
#: (8×8 on a 64-px tile with the compact backbone) or the output of the stage before it
#: (16×16; same trained weights, a finer map).
EXPLAIN_LAYERS: tuple[str, ...] = ("final", "penultimate")


#: Fields added after models were first saved: written to model.json only when not default.
_LATER_OPTIONS = ("aux_dim", "test_time_dihedral")


@dataclass
class SiameseConfig:
    """Architecture of the rank-siamese net (stored in model.json; the one source of defaults)."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    feature_dim: int = 4  # d, the visual feature size (Chen §4.2: 4)
    image_size: int = 64  # tile side the net is trained and applied at
    pooling: str = "radial"  # "radial" (centre-aware, see RadialGate) or "gap" (Chen §4.2)
    radial_knots: int = 5
    radial_prior_sigma: float | None = 0.5  # gate starts as a centre prior (None: flat)
    # A second pair head ``fc_aux`` for an auxiliary ranking target (multi-task); trained when
    # SiameseTrainConfig.aux_weight > 0 (the house-price model sets both, see
    # houseprice.valuation.model).
    aux_head: bool = False
    # 0: the auxiliary head reads the exported d-dim feature (one shared projection).
    # > 0: the branch emits d + aux_dim values; the main head ``fc`` reads the first d (the
    # exported visual feature), ``fc_aux`` its own aux_dim (trains the trunk, never exported).
    aux_dim: int = 0
    # Features are the mean of the branch over the 8 dihedral transforms of the tile (the
    # group the net is trained on), for training rows and new houses alike.
    test_time_dihedral: bool = False

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; choose 'radial' or 'gap'")
        if self.feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {self.feature_dim}")
        if self.aux_dim < 0 or (self.aux_dim > 0 and not self.aux_head):
            raise ValueError("aux_dim must be >= 0, and > 0 only with aux_head=True")

    @property
    def branch_dim(self) -> int:
        """Width of the branch output: the exported feature plus the auxiliary head's own."""
        return self.feature_dim + self.aux_dim

    def to_dict(self) -> dict[str, Any]:
        """Every field, except the later options (``aux_dim``, ``test_time_dihedral``) at their
        defaults, so the configs of models saved before them read the same."""
        d = asdict(self)
        d["backbone"] = self.backbone.to_dict()
        for name in _LATER_OPTIONS:
            if d[name] == self.__dataclass_fields__[name].default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SiameseConfig:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown siamese architecture keys {unknown}")
        d = dict(d)
        if "backbone" in d:
            d["backbone"] = BackboneConfig.from_dict(d["backbone"])
        return cls(**d)


class RadialGate(nn.Module):
    """Centre-aware gate on the last conv map: a per-channel weight by distance to the centre.

    Tiles are centred on the house (data_specs/dataset.md), so *where* an object lies
    matters: a pool in the house's own lot moves its price, the neighbour's pool does not.
    Global average pooling (the paper's head, Chen §4.2) alone throws that away. The gate
    multiplies ``F[c, h, w]`` by ``w_c(ρ_hw)``, with ``ρ`` the distance of cell ``(h, w)`` to
    the map centre divided by the largest such distance (0 … 1) and ``w_c`` piecewise linear
    over ``knots`` evenly spaced values of ``ρ``, parametrised as ``prior + δ``: the prior is a
    Gaussian in ``ρ`` with ``prior_sigma`` (the house and its lot are near the centre), or flat
    1 (``None``: the gate starts as the identity, i.e. plain GAP); ``δ = 0`` at init and weight
    decay pulls back towards the prior. The weights depend on ``ρ`` only, so the branch stays
    invariant to the 90° rotations and flips used as augmentation, and it works for any map
    size.

    The gate is the *last* layer of ``forward_features``: the explained map is the gated one,
    so followed by GAP + linear the Grad-CAM map is exactly each cell's contribution (CAM),
    including where the cell is.
    """

    def __init__(self, channels: int, knots: int = 5, prior_sigma: float | None = None) -> None:
        super().__init__()
        if knots < 2:
            raise ValueError(f"RadialGate needs at least 2 knots, got {knots}")
        if prior_sigma is not None and prior_sigma <= 0:
            raise ValueError(f"prior_sigma must be positive, got {prior_sigma}")
        self.delta = nn.Parameter(torch.zeros(channels, knots))  # (C, K)
        rho = torch.linspace(0.0, 1.0, knots)
        prior = (
            torch.ones(knots) if prior_sigma is None else torch.exp(-0.5 * (rho / prior_sigma) ** 2)
        )
        self.register_buffer("prior", prior)  # (K,)

    def weights(self, h: int, w: int) -> Tensor:
        """Per-channel spatial weights ``(C, h, w)`` for an ``h × w`` map."""
        dev = self.delta.device
        ys = torch.arange(h, device=dev, dtype=torch.float32) - (h - 1) / 2
        xs = torch.arange(w, device=dev, dtype=torch.float32) - (w - 1) / 2
        rho = torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)  # (h, w)
        rho = rho / rho.max().clamp_min(1e-6)
        k = self.delta.shape[1]
        pos = rho * (k - 1)
        i0 = pos.floor().long().clamp(0, k - 2)
        t = (pos - i0).to(self.delta.dtype)  # (h, w)
        v = self.prior[None, :] + self.delta  # (C, K) knot values
        return v[:, i0] * (1 - t) + v[:, i0 + 1] * t  # (C, h, w)

    def forward(self, fmap: Tensor) -> Tensor:
        # (B, C, h, w) -> (B, C, h, w)
        return fmap * self.weights(*fmap.shape[-2:])


class SliceLinear(nn.Linear):
    """A pair head that reads columns ``start:stop`` of the branch output (``aux_dim > 0``).

    Its state dict is an ``nn.Linear``'s (``weight``, ``bias``)."""

    def __init__(self, start: int, stop: int, out_features: int) -> None:
        super().__init__(stop - start, out_features)
        self.start, self.stop = start, stop

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x[..., self.start : self.stop])


def _pair_heads(cfg: SiameseConfig) -> tuple[nn.Linear, nn.Linear | None]:
    """The main pair head FC(d×2) and, with ``aux_head``, the auxiliary one."""
    d = cfg.feature_dim
    if cfg.aux_dim == 0:
        return nn.Linear(d, 2), (nn.Linear(d, 2) if cfg.aux_head else None)
    return SliceLinear(0, d, 2), SliceLinear(d, d + cfg.aux_dim, 2)


class RankSiamese(nn.Module):
    """Branch ``f`` (backbone [→ gate] → GAP → Linear(C, d)) plus the pair head FC(d×2).

    Built from a :class:`SiameseConfig` (``RankSiamese(config)``; ``None`` = its defaults).
    ``pooling="gap"`` is the paper's head (Chen §4.2); ``"radial"`` inserts a
    :class:`RadialGate` before GAP, so the branch can tell the house's own lot from the
    neighbours'. ``backbone`` optionally passes an already built trunk (e.g. with loaded
    weights); it must match ``config.backbone``.
    """

    def __init__(self, config: SiameseConfig | None = None, *, backbone: Backbone | None = None):
        super().__init__()
        cfg = config if config is not None else SiameseConfig()
        if backbone is not None and backbone.config != cfg.backbone:
            raise ValueError("backbone does not match config.backbone")
        self.config = cfg
        self.backbone = backbone if backbone is not None else Backbone(cfg.backbone)
        if cfg.pooling == "radial":
            self.gate: RadialGate | None = RadialGate(
                self.backbone.out_channels, cfg.radial_knots, cfg.radial_prior_sigma
            )
        else:
            self.gate = None
        self.embed = nn.Linear(self.backbone.out_channels, cfg.branch_dim)
        # The pair head FC(d×2) and an optional second one for an auxiliary ranking target
        # (multi-task), reading the shared feature or (aux_dim > 0) its own columns.
        self.fc, self.fc_aux = _pair_heads(cfg)
        # Input normalisation, fitted on training tiles and saved with the weights.
        self.register_buffer("pixel_mean", torch.full((3,), 0.5))
        self.register_buffer("pixel_std", torch.full((3,), 0.25))

    @classmethod
    def from_config(cls, config: SiameseConfig) -> RankSiamese:
        """The same as ``RankSiamese(config)``."""
        return cls(config)

    @property
    def target_layer(self) -> nn.Module:
        """The module whose output ``forward_features`` returns (the map explainers hook)."""
        return self.backbone.target_layer if self.gate is None else self.gate

    def explain_layer(self, name: str = "final") -> nn.Module:
        """The module an explainer hooks: ``"final"`` (:attr:`target_layer`) or
        ``"penultimate"`` (the backbone stage before the last, twice the resolution)."""
        if name == "final":
            return self.target_layer
        if name == "penultimate":
            if len(self.backbone.stages) < 2:
                raise ValueError("the backbone has a single stage; explain layer 'final'")
            return self.backbone.stages[-2]
        raise ValueError(f"unknown explain layer {name!r}; choose one of {EXPLAIN_LAYERS}")

    def head_from(self, name: str = "final") -> Callable[[Tensor], Tensor]:
        """The rest of the branch after :meth:`explain_layer` ``name``: its output -> ``f``."""
        if name == "final":
            return self.forward_head
        self.explain_layer(name)  # validates the name

        def tail(a: Tensor) -> Tensor:
            fmap = self.backbone.stages[-1](a)
            return self.forward_head(fmap if self.gate is None else self.gate(fmap))

        return tail

    def preprocess(self, tiles: Tensor) -> Tensor:
        # tiles: (B, H, W, 3) uint8 -> (B, 3, H, W) float, normalised
        x = tiles.permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self.pixel_mean[None, :, None, None]) / self.pixel_std[None, :, None, None]

    def forward_features(self, x: Tensor) -> Tensor:
        fmap = self.backbone.forward_features(x)  # (B, C, h, w)
        return fmap if self.gate is None else self.gate(fmap)

    def pool(self, fmap: Tensor) -> Tensor:
        # (B, C, h, w) -> (B, C)
        return Backbone.pool(fmap)

    def forward_head(self, fmap: Tensor) -> Tensor:
        return self.embed(self.pool(fmap))  # (B, C, h, w) -> (B, d + aux_dim)

    def branch(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))  # (B, d)

    def pair_logits(self, fi: Tensor, fj: Tensor, head: nn.Module | None = None) -> Tensor:
        # v_ij = f(x_i) − f(x_j) -> FC(d×2) (Chen §4.2); class 1 means y_i > y_j.
        # ``head`` picks another pair head (``fc_aux``); default: the main head ``fc``.
        return (self.fc if head is None else head)(fi - fj)  # (P, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.branch(x)


def fit_normalisation(model: RankSiamese, tiles: Tensor) -> None:
    """Set the model's pixel mean/std from training tiles ``(N, H, W, 3)`` uint8."""
    x = tiles.reshape(-1, 3).float() / 255.0
    model.pixel_mean.copy_(x.mean(0))
    model.pixel_std.copy_(x.std(0).clamp_min(1e-3))
