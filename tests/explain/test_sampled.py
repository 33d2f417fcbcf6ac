"""Sampled-loss grad-weights (Chen §3.2) over triplets and rank pairs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from explain_nets import PlantedNet, images
from torch import nn

from houseprice.explain import (
    GradCAM,
    GradCAMPlusPlus,
    RankPairSampler,
    SampledGradCAM,
    SampledGradCAMPlusPlus,
    TripletSampler,
    gradcam_weights,
)


@pytest.fixture
def reference(planted_net: PlantedNet) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return planted_net(images(40, 2)), torch.arange(40) % 4


def test_gradcam_base_equals_mean_of_per_partner_weights(
    planted_net: PlantedNet, reference
) -> None:
    embeddings, labels = reference
    sampler = TripletSampler(embeddings, labels, n_samples=12, seed=3)
    x, anchors = images(4, 1), torch.tensor([0, 1, 2, 3])
    result = SampledGradCAM(planted_net, planted_net.target_layer, sampler, top_m=None).explain(
        x, anchors
    )
    # independent path: one gradient per partner (layer output repeated per partner)
    objective = sampler.bind(anchors)
    kept: dict[str, torch.Tensor] = {}

    def per_partner(out: torch.Tensor) -> torch.Tensor:
        losses, valid = objective(out)
        kept["valid"] = valid
        return losses

    explainer = SampledGradCAM(planted_net, planted_net.target_layer, sampler)
    grad_pass = explainer.forward_backward(x, per_partner, n_copies=12)
    per = gradcam_weights(grad_pass.activations, grad_pass.gradients).view(4, 12, -1)
    valid = kept["valid"].float()
    assert valid.sum() > 12  # most sampled triplets are valid with random labels
    expected = (per * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
    torch.testing.assert_close(result.weights, expected, rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(result.extras["n_valid"], kept["valid"].sum(1))


@pytest.mark.parametrize(
    ("sampled", "plain"),
    [(SampledGradCAM, GradCAM), (SampledGradCAMPlusPlus, GradCAMPlusPlus)],
)
def test_single_partner_equals_plain_method_on_that_loss(
    planted_net: PlantedNet, reference, sampled: type, plain: type
) -> None:
    embeddings, labels = reference
    sampler = TripletSampler(embeddings, labels, n_samples=1, seed=5)
    x, anchors = images(4, 1), torch.tensor([0, 1, 2, 3])
    got = sampled(planted_net, planted_net.target_layer, sampler, top_m=None).explain(x, anchors)
    objective = sampler.bind(anchors)
    want = plain(planted_net, planted_net.target_layer).explain(
        x, lambda out: objective(out)[0][:, 0]
    )
    assert int(got.extras["n_valid"].sum()) == 4
    torch.testing.assert_close(got.weights, want.weights, rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(got.maps, want.maps, rtol=1e-4, atol=1e-5)


def test_top_m_keeps_largest_weights(planted_net: PlantedNet, reference) -> None:
    embeddings, labels = reference
    sampler = TripletSampler(embeddings, labels, n_samples=8)
    x, anchors = images(3, 1), torch.tensor([0, 1, 2])
    full = SampledGradCAM(planted_net, planted_net.target_layer, sampler, top_m=None).explain(
        x, anchors
    )
    top = SampledGradCAM(planted_net, planted_net.target_layer, sampler, top_m=5).explain(
        x, anchors
    )
    assert ((top.weights != 0).sum(dim=1) == 5).all()
    values, idx = full.weights.topk(5, dim=1)
    torch.testing.assert_close(top.weights.gather(1, idx), values)
    assert not torch.allclose(top.maps, full.maps)


def test_triplet_loss_is_chen_eq1_and_only_valid_triplets_count() -> None:
    positive, negative = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]])
    sampler = TripletSampler(
        torch.cat([positive, negative]), torch.tensor([0, 1]), n_samples=4, margin=0.5
    )
    anchor = torch.tensor([[0.8, 0.6]])
    losses, valid = sampler.bind(torch.tensor([0]))(anchor)
    d_ap = (anchor - positive).pow(2).sum()
    d_an = (anchor - negative).pow(2).sum()
    assert float(d_ap - d_an + 0.5) > 0
    torch.testing.assert_close(losses, (d_ap - d_an + 0.5).expand(1, 4))
    assert valid.all()
    # a margin too small for this triplet makes it invalid: zero loss, not counted
    easy = TripletSampler(sampler.embeddings, sampler.labels, n_samples=4, margin=0.0)
    anchor_near_positive = torch.tensor([[0.99, 0.1]])
    losses, valid = easy.bind(torch.tensor([0]))(anchor_near_positive)
    assert not valid.any() and float(losses.abs().sum()) == 0.0


def test_anchor_itself_is_not_its_own_positive(planted_net: PlantedNet) -> None:
    x = images(2, 1)
    with torch.no_grad():
        own = planted_net(x)
    # reference: the two anchors (labels 0, 1) only, so no anchor has another positive
    sampler = TripletSampler(own, torch.tensor([0, 1]), n_samples=5)
    result = SampledGradCAM(planted_net, planted_net.target_layer, sampler).explain(
        x, torch.tensor([0, 1])
    )
    assert result.extras["n_valid"].tolist() == [0, 0]
    assert float(result.weights.abs().max()) == 0.0 and float(result.maps.max()) == 0.0


def test_sampling_is_seeded(planted_net: PlantedNet, reference) -> None:
    embeddings, labels = reference
    x, anchors = images(3, 1), torch.tensor([0, 1, 2])
    maps = [
        SampledGradCAM(
            planted_net,
            planted_net.target_layer,
            TripletSampler(embeddings, labels, n_samples=3, seed=s),
        )
        .explain(x, anchors)
        .weights
        for s in (0, 0, 1)
    ]
    torch.testing.assert_close(maps[0], maps[1])
    assert not torch.allclose(maps[0], maps[2])


def test_rank_pair_loss_is_cross_entropy_of_feature_difference(planted_net: PlantedNet) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        head = nn.Linear(8, 2)
    x = images(3, 1)
    partners = images(6, 7)
    with torch.no_grad():
        features = planted_net(partners)
        anchor_features = planted_net(x)
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    anchors = torch.tensor([2.5, 4.0, 0.5])  # anchor 1 ties with partner 3: that pair is skipped
    sampler = RankPairSampler(head, features, scores, n_samples=6)
    result = SampledGradCAM(planted_net, planted_net.target_layer, sampler).explain(x, anchors)
    assert result.extras["n_valid"].tolist() == [6, 5, 6]
    with torch.no_grad():
        for i in range(3):
            keep = scores != anchors[i]
            logits = head(anchor_features[i] - features[keep])
            y = (anchors[i] > scores[keep]).long()
            torch.testing.assert_close(result.extras["loss"][i], F.cross_entropy(logits, y))


@pytest.mark.parametrize("explainer", [SampledGradCAM, SampledGradCAMPlusPlus])
def test_one_forward_pass_per_batch(planted_net: PlantedNet, reference, explainer: type) -> None:
    embeddings, labels = reference
    calls = []
    handle = planted_net.features[0].register_forward_hook(lambda *args: calls.append(1))
    try:
        sampler = TripletSampler(embeddings, labels, n_samples=10)
        explainer(planted_net, planted_net.target_layer, sampler).explain(images(5, 1), labels[:5])
    finally:
        handle.remove()
    assert len(calls) == 1


def test_sampled_needs_anchor_values(planted_net: PlantedNet, reference) -> None:
    sampler = TripletSampler(*reference)
    explainer = SampledGradCAM(planted_net, planted_net.target_layer, sampler)
    with pytest.raises(ValueError, match="per-anchor labels"):
        explainer.explain(images(2, 0))
    with pytest.raises(TypeError, match="integer class labels"):
        explainer.explain(images(2, 0), torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="one label/score per image"):
        explainer.explain(images(2, 0), torch.tensor([0, 1, 2]))
