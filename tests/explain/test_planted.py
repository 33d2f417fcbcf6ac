"""Every method finds a planted signal; maps change when the weights are randomised."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from explain_nets import BOX, PlantedNet, box_mask, images, trunk
from scipy.stats import spearmanr
from torch import Tensor, nn

from houseprice.explain import (
    METHODS,
    GradWeightDatabase,
    L2CAFConfig,
    RankPairSampler,
    SampledGradCAM,
    TripletSampler,
    class_proxies,
    heatmap_ratio_in_box,
    heatmap_ratio_in_mask,
    make_explainer,
)

N = 6


def method_setup(net: nn.Module, name: str, layer: nn.Module, head) -> tuple[dict, Tensor | None]:
    """Keyword arguments and per-image target for ``name`` on an 8-d output network."""
    reference = images(40, 2)
    labels = torch.arange(40) % 4
    anchors = torch.arange(N) % 4
    with torch.no_grad():
        embeddings = net(reference)
    if name.startswith("sampled"):
        return {"sampler": TripletSampler(embeddings, labels, n_samples=10), "top_m": 8}, anchors
    if name == "embeddingcam_mean":
        return {"proxies": class_proxies(embeddings, labels)}, anchors
    if name == "l2caf":
        return {"head": head, "config": L2CAFConfig(max_iter=300)}, None
    if name == "transfer":
        sampler = TripletSampler(embeddings, labels, n_samples=10)
        explainer = SampledGradCAM(net, layer, sampler, top_m=8)
        batches = [(reference[:20], labels[:20]), (reference[20:], labels[20:])]
        db = GradWeightDatabase.from_explainer(explainer, batches, top_m=8, progress=False)
        return {"database": db}, None
    return {}, None


def planted_ratios(net: PlantedNet, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Box and mask ratios of ``name``'s maps of ``N`` images on the planted net."""
    kwargs, target = method_setup(net, name, net.target_layer, net.forward_head)
    explainer = make_explainer(name, net, net.target_layer, **kwargs)
    maps = explainer(images(N, 1), target)
    boxes = np.tile(np.array(BOX, dtype=float), (N, 1))
    masks = box_mask(BOX).bool().expand(N, -1, -1)
    return heatmap_ratio_in_box(maps, boxes), heatmap_ratio_in_mask(maps, masks)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_finds_the_planted_region(planted_net: PlantedNet, name: str) -> None:
    ratio, mask_ratio = planted_ratios(planted_net, name)
    area = (BOX[2] - BOX[0]) * (BOX[3] - BOX[1]) / 64**2
    if name == "uniform":
        np.testing.assert_allclose(ratio, area, rtol=1e-6)
    else:
        assert ratio.min() > 0.8, f"{name}: {ratio}"
        np.testing.assert_allclose(mask_ratio, ratio, rtol=1e-6)


def test_distractors_fire_outside_the_box_and_do_not_drive_the_output(
    planted_net: PlantedNet,
) -> None:
    """The planted net's explained map has as much activation outside the box as inside."""
    x = images(N, 1)
    with torch.no_grad():
        a = planted_net.forward_features(x)  # (N, 32, 16, 16)
        signal, distractor = a[:, : planted_net.n_signal], a[:, planted_net.n_signal :]
        inside = box_mask(BOX)[::4, ::4].bool()
        assert float(signal[..., ~inside].abs().max()) == 0.0
        assert float(distractor[..., inside].abs().max()) == 0.0
        assert float(distractor.mean()) > 0.5 * float(signal.mean())
        noisy = a.clone()
        noisy[:, planted_net.n_signal :] += torch.rand_like(distractor)
        torch.testing.assert_close(planted_net.forward_head(noisy), planted_net.forward_head(a))


#: Every method whose map is sum_k w_k A^k with gradient channel weights (the CAM family).
WEIGHTED = [m for m in METHODS if m not in ("uniform", "l2caf")]
WEIGHT_FUNCTIONS = (
    "houseprice.explain.gradcam.gradcam_weights",
    "houseprice.explain.gradcam.gradcampp_weights",
    "houseprice.explain.sampled.gradcam_weights",
    "houseprice.explain.sampled.gradcampp_weights",
)


@pytest.mark.parametrize("name", WEIGHTED)
def test_random_channel_weights_fail_the_planted_check(
    planted_net: PlantedNet, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can catch wrong channel weights: with the weight functions replaced by
    random numbers the distractors light up outside the box and the ratio drops below 0.8."""
    generator = torch.Generator().manual_seed(0)

    def random_weights(activations: Tensor, gradients: Tensor, *args: object) -> Tensor:
        return torch.randn(activations.shape[:2], generator=generator).to(activations)

    for target in WEIGHT_FUNCTIONS:
        monkeypatch.setattr(target, random_weights)
    ratio, _ = planted_ratios(planted_net, name)
    assert ratio.min() <= 0.8, f"{name} passes with random weights: {ratio}"


def test_siamese_rank_pairs_find_the_planted_region(planted_net: PlantedNet) -> None:
    """Rank head: 'i is pricier than j' grows with f_i - f_j, and the planted evidence raises
    every feature; anchors are pricier than all partners. The evidence that supports that
    ranking (negate=True) is the planted region; Chen's literal dL/dA is its exact opposite."""
    pair_head = nn.Linear(8, 2)
    with torch.no_grad():
        pair_head.weight.copy_(torch.stack([-torch.ones(8), torch.ones(8)]) / 8)
        pair_head.bias.zero_()
        features = planted_net(images(30, 2))
    sampler = RankPairSampler(pair_head, features, torch.linspace(1.0, 3.0, 30), n_samples=10)
    anchors = torch.full((N,), 5.0)  # pricier than every partner
    boxes = np.tile(np.array(BOX, dtype=float), (N, 1))
    for name in ("sampled_gradcam", "sampled_gradcampp"):
        layer = planted_net.target_layer
        supports = make_explainer(name, planted_net, layer, sampler=sampler, top_m=8, negate=True)
        result = supports.explain(images(N, 1), anchors)
        assert result.extras["n_valid"].tolist() == [10] * N
        assert heatmap_ratio_in_box(result.maps, boxes).min() > 0.8
    literal = make_explainer("sampled_gradcam", planted_net, layer, sampler=sampler, top_m=None)
    flipped = make_explainer(
        "sampled_gradcam", planted_net, layer, sampler=sampler, top_m=None, negate=True
    )
    x = images(N, 1)
    torch.testing.assert_close(
        literal.explain(x, anchors).weights, -flipped.explain(x, anchors).weights
    )


class FlatHeadNet(nn.Module):
    """A 'trained' model whose linear head (no pooling) reads positive evidence only from BOX
    positions; unlike PlantedNet the region lives in the weights, so randomising them must
    move the explanation (Adebayo et al. model-randomisation test)."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.features = trunk(16)
            self.fc = nn.Linear(16 * 16 * 16, 8)
        cells = nn.functional.avg_pool2d(box_mask(BOX)[None, None], 4)[0, 0]  # (16, 16)
        with torch.no_grad():
            self.fc.weight.view(8, 16, 16, 16).abs_().mul_(cells)

    def forward_head(self, a: Tensor) -> Tensor:
        return self.fc(a.flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.features(x))


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Spearman correlation of two maps; a map that became constant counts as uncorrelated."""
    if float(a.std()) == 0.0 or float(b.std()) == 0.0:
        return 0.0
    return float(spearmanr(a.flatten().numpy(), b.flatten().numpy())[0])


@pytest.mark.parametrize("name", [m for m in METHODS if m not in ("uniform", "transfer")])
def test_randomising_weights_changes_the_maps(name: str) -> None:
    trained = FlatHeadNet().eval()
    randomised = copy.deepcopy(trained)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        for module in randomised.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    x = images(N, 3)
    maps = []
    for net in (trained, randomised):
        layer = net.features[-1]
        kwargs, target = method_setup(net, name, layer, net.forward_head)
        maps.append(make_explainer(name, net, layer, **kwargs)(x, target))
    correlation = np.mean([rank_correlation(maps[0][i], maps[1][i]) for i in range(N)])
    assert correlation < 0.5, f"{name}: mean rank correlation {correlation:.2f}"
    # the same model explained twice gives the same maps (the test can tell them apart)
    layer = trained.features[-1]
    kwargs, target = method_setup(trained, name, layer, trained.forward_head)
    again = make_explainer(name, trained, layer, **kwargs)(x, target)
    torch.testing.assert_close(again, maps[0])
