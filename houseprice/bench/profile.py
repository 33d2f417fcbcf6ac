"""The explainer benchmark's run settings, built from THE profile table (houseprice.profiles).

:func:`bench_profile` turns ``PROFILES[...].bench`` (override mappings and plain values) and
``.birds`` (the synthetic-birds size generated for a ``--data`` folder that does not exist yet)
into a :class:`BenchProfile` holding real ``EmbeddingTrainConfig``, ``CUBAugConfig`` and
``L2CAFConfig`` objects. No profile values are defined here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from houseprice.data.cub import CUBAugConfig
from houseprice.errors import UserInputError
from houseprice.explain import L2CAFConfig
from houseprice.profiles import PROFILES, Profile
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.embedding import EmbeddingTrainConfig


@dataclass(frozen=True)
class BenchProfile:
    """Everything a benchmark run depends on besides the data, seed and device."""

    name: str
    # synthetic birds generated when --data names a folder that does not exist yet
    synth_classes: int
    synth_images_per_class: int
    synth_px: int
    train: EmbeddingTrainConfig
    train_aug: CUBAugConfig = field(default_factory=lambda: CUBAugConfig(scale=(0.5, 1.0)))
    n_samples: int = 50  # N_s, triplets per anchor (Chen §4.1)
    top_m: int = 50  # M, capped by the layer's channel count
    kmeans_k: int = 50  # database compressed to K centres (Chen §4.1 storage analysis)
    n_candidates: int = 1000  # candidate triplets drawn per anchor to find N_s valid ones
    eval_images: int | None = None  # test images explained (class-stratified); None = all
    db_images: int | None = None  # training images in the grad-weight database; None = all
    batch_size: int = 32
    l2caf: L2CAFConfig = field(default_factory=L2CAFConfig)
    m_grid: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 50, 64, 128, 256, 512, 1024)
    n_runs: int = 3  # sampler seeds for the run-to-run spread of sampled vs proxy methods
    # embedding nets trained with seeds seed, seed + 1, ... for the spread across retrained nets
    # (Bachhawat Table 1: 8 nets); 1 = only the benchmark's net (run_benchmark(retrain_runs=))
    retrain_runs: int = 1
    paper_fraction: float = 50 / 2048  # Chen §4.1: top-50 of ResNet-50's 2,048 channels
    n_qualitative: int = 4
    needs_weights: bool = False  # training needs a local backbone initialisation

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        d["train_aug"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in d["train_aug"].items()
        }
        d["m_grid"] = list(self.m_grid)
        return d

    def method_options(self, method: str) -> dict[str, Any]:
        """Profile-given keywords of a registry method (today: L2-CAF's optimisation)."""
        return {"config": self.l2caf} if method == "l2caf" else {}


def bench_profile(name: str | Profile) -> BenchProfile:
    """The benchmark settings of profile ``name``; an unknown name is a ``UserInputError``."""
    try:
        spec = PROFILES[Profile(name)]
    except ValueError:
        choices = ", ".join(p.value for p in Profile)
        raise UserInputError(f"unknown profile {name!r}; choose one of {choices}") from None
    bench, birds = spec.bench, spec.birds
    embedding = dict(bench.embedding)
    if bench.backbone is not None:
        embedding["backbone"] = BackboneConfig(name=bench.backbone)
    aug = CUBAugConfig() if bench.aug_scale is None else CUBAugConfig(scale=bench.aug_scale)
    return BenchProfile(
        name=spec.name,
        synth_classes=birds.classes,
        synth_images_per_class=birds.per_class,
        synth_px=birds.image_px,
        train=EmbeddingTrainConfig(**embedding),
        train_aug=aug,
        n_samples=bench.n_samples,
        top_m=bench.top_m,
        kmeans_k=bench.kmeans_k,
        n_candidates=bench.n_candidates,
        eval_images=bench.eval_images,
        db_images=bench.db_images,
        batch_size=bench.batch_size,
        l2caf=L2CAFConfig(**bench.l2caf),
        n_runs=bench.n_runs,
        n_qualitative=bench.n_qualitative,
        needs_weights=bench.needs_weights,
    )
