"""The explainer registry: entries, benchmark variants, capability queries, registration."""

from __future__ import annotations

import pytest
import torch
from explain_nets import PlantedNet, images
from torch import Tensor, nn

from houseprice.explain import (
    METHODS,
    Explainer,
    LowRes,
    UniformCAM,
    get_method,
    make_explainer,
    method_specs,
    methods_for,
    register,
    registered,
    report_order,
    unregister,
)
from houseprice.explain.base import Target

BUILTINS = (  # METHODS as in v0.1: the order is part of the API
    "gradcam",
    "gradcampp",
    "gradcam_vanilla",
    "gradcam_abs",
    "sampled_gradcam",
    "sampled_gradcampp",
    "embeddingcam_point",
    "embeddingcam_mean",
    "l2caf",
    "transfer",
    "uniform",
)


class HalfCAM(Explainer):
    """Toy: the left half of the image."""

    def __init__(self, model: nn.Module, target_layer: nn.Module | None) -> None:
        super().__init__(model, None)

    def _compute(self, x: Tensor, target: Target) -> LowRes:
        raw = torch.zeros(x.shape[0], 2, 2)
        raw[:, :, 0] = 1.0
        return LowRes(raw=raw)


def test_builtin_names_are_stable_and_entries_complete() -> None:
    assert tuple(METHODS) == BUILTINS
    assert METHODS == BUILTINS and len(METHODS) == len(set(METHODS))
    for spec in method_specs():
        assert spec.label and spec.paper and spec.outputs, spec.name
        assert spec.keywords <= {"sampler", "proxies", "database", "head"}
        keys = [v.key for v in spec.variants]
        assert len(keys) == len(set(keys)), spec.name


def test_embedding_methods_without_labels() -> None:
    """The question ``houseprice explain`` asks: an embedding net (siamese branch) with a
    pair/triplet sampler, no class labels."""
    names = [s.name for s in methods_for("embedding", have={"sampler"})]
    assert names == [
        "gradcam_vanilla",
        "gradcam_abs",
        "sampled_gradcam",
        "sampled_gradcampp",
        "embeddingcam_point",
        "l2caf",
        "uniform",
    ]
    with_db = [s.name for s in methods_for("embedding", have={"sampler", "database"})]
    assert "transfer" in with_db and "embeddingcam_mean" not in with_db
    labelled = [s.name for s in methods_for("embedding", have={"proxies"}, labels=True)]
    assert "embeddingcam_mean" in labelled and "sampled_gradcam" not in labelled
    forward_only = [s.name for s in methods_for("embedding", have={"database"}, gradients=False)]
    assert forward_only == ["transfer", "uniform"]
    assert [s.name for s in methods_for("logits")] == ["gradcam", "gradcampp", "l2caf", "uniform"]
    with pytest.raises(ValueError, match="unknown resources"):
        methods_for("embedding", have={"labels"})  # type: ignore[arg-type]


def test_benchmark_variants_of_the_builtins() -> None:
    specs = methods_for("embedding", have={"sampler", "proxies", "database"}, labels=True)
    keys = [v.report_key(top_m=50, kmeans_k=50) for s in report_order(specs) for v in s.variants]
    assert keys[:4] == [
        "uniform",
        "gradcam_single_triplet",
        "gradcam_all_channels",
        "gradcam_top50",
    ]
    assert "gradcampp_transfer_kmeans50" in keys and keys[-1] == "l2caf"
    assert [v.key for v in get_method("gradcam").variants] == ["gradcam"]
    sweeps = [v.key for s in method_specs() for v in s.variants if v.sweep]
    assert sweeps == ["gradcam_all_channels"]


def test_register_a_method_and_remove_it(planted_net: PlantedNet) -> None:
    spec = register("half", HalfCAM, label="Half", outputs=("embedding", "logits"))
    try:
        assert "half" in METHODS and METHODS[-1] == "half"
        assert report_order(method_specs())[-1] is spec  # default rank: after the built-ins
        assert [v.key for v in spec.variants] == ["half"]  # run once, under its name
        assert spec in methods_for("embedding")
        maps = make_explainer("half", planted_net, planted_net.target_layer)(images(2, 0))
        assert maps.shape == (2, 64, 64) and float(maps[:, :, :16].min()) == 1.0
        assert float(maps[:, :, 48:].max()) == 0.0
        with pytest.raises(ValueError, match="already registered"):
            register("half", HalfCAM, label="Half", outputs=("embedding",))
    finally:
        assert unregister("half") is spec
    assert "half" not in METHODS
    with pytest.raises(ValueError, match="unknown explainer"):
        unregister("half")


def test_registered_context_restores_a_replaced_entry() -> None:
    before = get_method("uniform")
    with registered("uniform", HalfCAM, label="replaced", outputs=("embedding",)) as spec:
        assert get_method("uniform") is spec
    assert get_method("uniform") is before
    assert tuple(METHODS) == BUILTINS  # the order is kept too
    with registered("toy_only", HalfCAM, label="Toy", outputs=("logits",), variants=()):
        assert get_method("toy_only").variants == ()
    assert "toy_only" not in METHODS


def test_bad_registrations() -> None:
    with pytest.raises(ValueError, match="identifier"):
        register("not a name", HalfCAM, label="x", outputs=("embedding",))
    with pytest.raises(ValueError, match="unknown outputs"):
        register("toy", HalfCAM, label="x", outputs=("pixels",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown needs"):
        register("toy", HalfCAM, label="x", outputs=("embedding",), needs=("gpu",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        register("toy", None, label="x", outputs=("embedding",))  # type: ignore[arg-type]
    assert "toy" not in METHODS
    assert isinstance(make_explainer("uniform", nn.Identity(), None), UniformCAM)
