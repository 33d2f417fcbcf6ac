"""The benchmark profiles built from houseprice.profiles equal the values the bench used to
define itself (copied literally from the former ``houseprice/bench/explainers.py``; the standard
training settings changed in issue 17, see ``docs/bench_explainers.md``)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from houseprice.bench.profile import BenchProfile, bench_profile
from houseprice.data.cub import CUBAugConfig
from houseprice.explain import L2CAFConfig
from houseprice.profiles import PROFILES
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.embedding import EmbeddingTrainConfig

FORMER: dict[str, BenchProfile] = {
    "quick": BenchProfile(
        name="quick",
        synth_classes=20,
        synth_images_per_class=6,
        synth_px=64,
        train=EmbeddingTrainConfig(
            image_size=64,
            epochs=2,
            classes_per_batch=5,
            images_per_class=3,
            batches_per_epoch=3,
            lr=1e-3,
        ),
        n_samples=10,
        n_candidates=200,
        eval_images=12,
        db_images=None,
        batch_size=12,
        l2caf=L2CAFConfig(max_iter=60, patience=10),
        n_runs=2,
        n_qualitative=2,
    ),
    "standard": BenchProfile(
        name="standard",
        synth_classes=200,
        synth_images_per_class=30,
        synth_px=64,
        # issue 17: normalised softmax, warmup, lr 2e-3, chosen on held-out training classes
        # (houseprice/bench/tuning.py); before: triplet, lr 5e-4, no warmup
        train=EmbeddingTrainConfig(
            image_size=64,
            epochs=15,
            classes_per_batch=16,
            images_per_class=4,
            loss="normsoftmax",
            temperature=0.1,
            lr=2e-3,
            warmup_epochs=1.0,
        ),
        eval_images=500,
        db_images=1500,
        batch_size=50,
        l2caf=L2CAFConfig(max_iter=300, patience=25),
    ),
    "paper": BenchProfile(
        name="paper",
        synth_classes=200,
        synth_images_per_class=60,
        synth_px=256,
        train=EmbeddingTrainConfig(
            backbone=BackboneConfig(name="resnet50"),
            image_size=224,
            epochs=40,
            classes_per_batch=32,
            images_per_class=4,
            lr=1e-4,
            eval_batch_size=64,
        ),
        train_aug=CUBAugConfig(),
        batch_size=32,
        needs_weights=True,
    ),
}


@pytest.mark.parametrize("name", ["quick", "standard", "paper"])
def test_profiles_equal_the_former_bench_table(name: str) -> None:
    built, former = bench_profile(name), FORMER[name]
    for f in fields(BenchProfile):
        assert getattr(built, f.name) == getattr(former, f.name), (name, f.name)
    assert built == former
    assert built.to_dict() == former.to_dict()


def test_standard_profile_literals() -> None:
    std = bench_profile("standard")
    assert (std.synth_classes, std.synth_images_per_class, std.synth_px) == (200, 30, 64)
    assert (std.train.epochs, std.train.lr, std.train.image_size) == (15, 2e-3, 64)
    assert (std.train.loss, std.train.temperature, std.train.warmup_epochs) == (
        "normsoftmax",
        0.1,
        1.0,
    )
    assert std.retrain_runs == 1  # 3 nets do not fit 30 min: run_benchmark(retrain_runs=3)
    assert (std.train.classes_per_batch, std.train.images_per_class) == (16, 4)
    assert (std.eval_images, std.db_images, std.batch_size) == (500, 1500, 50)
    assert (std.l2caf.max_iter, std.l2caf.patience) == (300, 25)
    assert std.train_aug.scale == (0.5, 1.0)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_override_key_is_a_config_field(profile: object) -> None:
    bench = PROFILES[profile].bench  # type: ignore[index]
    embedding_fields = {f.name for f in fields(EmbeddingTrainConfig)}
    l2caf_fields = {f.name for f in fields(L2CAFConfig)}
    assert set(bench.embedding) <= embedding_fields, set(bench.embedding) - embedding_fields
    assert set(bench.l2caf) <= l2caf_fields, set(bench.l2caf) - l2caf_fields


def test_unknown_profile_is_a_user_error() -> None:
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        bench_profile("huge")
