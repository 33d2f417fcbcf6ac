"""Hook lifecycle, batching and post-processing shared by every explainer."""

from __future__ import annotations

import pytest
import torch
from explain_nets import PlantedNet, images
from torch import Tensor, nn

from houseprice.explain import (
    L2CAF,
    METHODS,
    Explainer,
    GradCAM,
    GradWeightDatabase,
    L2CAFConfig,
    MethodSpec,
    TripletSampler,
    UniformCAM,
    class_proxies,
    make_explainer,
    method_specs,
    normalize_maps,
    upsample,
)


class Boom(RuntimeError):
    pass


class ExplodingHead(nn.Module):
    def forward(self, a: Tensor) -> Tensor:
        raise Boom("head failed")


def test_hooks_released_and_state_restored_after_errors(planted_net: PlantedNet) -> None:
    planted_net.head = ExplodingHead()
    planted_net.train()
    planted_net.features[0].eval()  # a mixed train/eval state must come back as it was
    layer = planted_net.target_layer
    for explainer in (GradCAM(planted_net, layer), L2CAF(planted_net, layer, fast=False)):
        with pytest.raises(Boom):
            explainer.explain(images(2, 0))
        assert len(layer._forward_hooks) == 0
        assert planted_net.training and not planted_net.features[0].training
        assert planted_net.features[1].training
        assert torch.is_grad_enabled()


def test_hook_released_after_bad_objective(planted_net: PlantedNet) -> None:
    layer = planted_net.target_layer
    with pytest.raises(ValueError, match="one scalar per sample"):
        GradCAM(planted_net, layer).explain(images(3, 0), lambda out: out)  # (B, D), not (B,)
    assert len(layer._forward_hooks) == 0
    with pytest.raises(ValueError, match="does not depend"):
        GradCAM(planted_net, layer).explain(images(3, 0), lambda out: torch.zeros(3))
    assert len(layer._forward_hooks) == 0


def test_capture_reraises_and_releases(planted_net: PlantedNet) -> None:
    explainer = GradCAM(planted_net, planted_net.target_layer)
    with pytest.raises(KeyError), explainer.capture() as cap:
        planted_net(images(1, 0))
        assert cap.activations is not None and cap.activations.shape == (1, 32, 16, 16)
        raise KeyError("inside the block")
    assert len(planted_net.target_layer._forward_hooks) == 0


def test_explainer_under_no_grad_and_grad_mode_restored(planted_net: PlantedNet) -> None:
    x = images(2, 0)
    expected = GradCAM(planted_net, planted_net.target_layer).explain(x).maps
    with torch.no_grad():
        got = GradCAM(planted_net, planted_net.target_layer).explain(x).maps
        assert not torch.is_grad_enabled()
    torch.testing.assert_close(got, expected)


def test_batch_equals_single_images(planted_net: PlantedNet) -> None:
    x = images(4, 0)
    explainer = GradCAM(planted_net, planted_net.target_layer)
    batch = explainer.explain(x, [0, 1, 2, 3])
    for i in range(4):
        single = explainer.explain(x[i : i + 1], [i])
        torch.testing.assert_close(single.maps[0], batch.maps[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(single.weights[0], batch.weights[i], atol=1e-6, rtol=1e-5)


def test_layer_called_twice_or_never_is_an_error(planted_net: PlantedNet) -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x: Tensor) -> Tensor:
            return self.conv(self.conv(x)).mean(dim=(2, 3))

    twice = Twice()
    with pytest.raises(RuntimeError, match="more than once"):
        GradCAM(twice, twice.conv).explain(images(1, 0))
    assert len(twice.conv._forward_hooks) == 0
    with pytest.raises(ValueError, match="not a submodule"):
        GradCAM(planted_net, nn.Conv2d(1, 1, 1))


def test_bad_inputs_raise_clear_errors(planted_net: PlantedNet) -> None:
    explainer = GradCAM(planted_net, planted_net.target_layer)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        explainer.explain(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="out of range"):
        explainer.explain(images(2, 0), [0, 99])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        explainer.explain(images(2, 0), [0, 1, 2])
    with pytest.raises(TypeError, match="integers"):
        explainer.explain(images(2, 0), torch.tensor([0.5, 1.0]))


def test_maps_are_in_unit_range_at_input_resolution(planted_net: PlantedNet) -> None:
    result = GradCAM(planted_net, planted_net.target_layer).explain(images(3, 0))
    assert result.maps.shape == (3, 64, 64)
    assert result.raw.shape == (3, 16, 16)
    assert result.weights is not None and result.weights.shape == (3, 32)
    assert float(result.maps.min()) >= 0.0
    torch.testing.assert_close(result.maps.flatten(1).amax(dim=1), torch.ones(3))
    # the maps are the normalised bilinear upsampling of the raw map
    up = upsample(result.raw, (64, 64))
    torch.testing.assert_close(result.maps, up / up.flatten(1).amax(dim=1)[:, None, None])


def test_normalize_modes() -> None:
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[0.0, 0.0], [0.0, 0.0]]])
    by_max = normalize_maps(maps, "max")
    torch.testing.assert_close(by_max[0], maps[0] / 5.0)
    assert float(by_max[1].abs().max()) == 0.0  # an all-zero map stays zero
    by_range = normalize_maps(maps, "minmax")
    torch.testing.assert_close(by_range[0], (maps[0] - 1.0) / 4.0)
    with pytest.raises(ValueError, match="normalize"):
        normalize_maps(maps, "sum")  # type: ignore[arg-type]


def test_uniform_is_ones_for_any_normalisation() -> None:
    maps = UniformCAM(normalize="minmax")(images(2, 0))
    torch.testing.assert_close(maps, torch.ones(2, 64, 64))


def registry_keywords(spec: MethodSpec, reference: Tensor) -> dict:
    """Keywords for what a registry entry says it needs (and may use)."""
    labels = torch.arange(len(reference)) % 2
    given = {
        "sampler": TripletSampler(reference, labels),
        "proxies": class_proxies(reference, labels),
        "database": GradWeightDatabase.build(reference, torch.rand(len(reference), 32)),
    }
    kw = {k: v for k, v in given.items() if k in spec.needs}
    return {**kw, "config": L2CAFConfig(max_iter=5)} if spec.name == "l2caf" else kw


def test_registry_builds_every_method(planted_net: PlantedNet) -> None:
    """Every registered method builds from what its entry declares it needs."""
    specs = method_specs()
    assert len(specs) == len(METHODS) == len(set(METHODS)) > 0
    assert [s.name for s in specs] == list(METHODS)
    layer = planted_net.target_layer
    with torch.no_grad():
        reference = planted_net(images(8, 1))
    for spec in specs:
        explainer = make_explainer(
            spec.name, planted_net, layer, **registry_keywords(spec, reference)
        )
        assert isinstance(explainer, Explainer), spec.name
        if spec.needs & {"sampler", "proxies", "database"}:
            with pytest.raises((TypeError, ValueError)):
                make_explainer(spec.name, planted_net, layer)  # a needed keyword is missing
    with pytest.raises(ValueError, match="unknown explainer"):
        make_explainer("gradcam++", planted_net, layer)
    with pytest.raises(ValueError, match="proxies"):
        make_explainer("embeddingcam_mean", planted_net, layer)
    with pytest.raises(TypeError, match="sampled_gradcam"):
        make_explainer("sampled_gradcam", planted_net, layer)
