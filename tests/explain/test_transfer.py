"""Grad-weight database and weight transfer (Chen §3.3), k-means compression, persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from explain_nets import PlantedNet, images

import houseprice.explain.neighbours as neighbours
from houseprice.explain import (
    GradWeightDatabase,
    SampledGradCAM,
    TripletSampler,
    WeightTransferCAM,
)

TOP_M = 6


@pytest.fixture
def training(planted_net: PlantedNet) -> tuple[torch.Tensor, torch.Tensor, SampledGradCAM]:
    x = images(24, 11)
    labels = torch.arange(24) % 3
    with torch.no_grad():
        embeddings = planted_net(x)
    sampler = TripletSampler(embeddings, labels, n_samples=6)
    return x, labels, SampledGradCAM(planted_net, planted_net.target_layer, sampler, top_m=TOP_M)


@pytest.fixture
def database(training) -> GradWeightDatabase:
    x, labels, explainer = training
    batches = [(x[i : i + 8], labels[i : i + 8]) for i in range(0, 24, 8)]
    return GradWeightDatabase.from_explainer(
        explainer, batches, top_m=TOP_M, labels=labels, progress=False
    )


def test_training_image_gets_its_own_weights_and_map(planted_net, training, database) -> None:
    x, labels, explainer = training
    sampled = explainer.explain(x[:8], labels[:8])
    assert len(database) == 24 and database.top_m == TOP_M and database.n_channels == 32
    result = WeightTransferCAM(planted_net, planted_net.target_layer, database).explain(x[:8])
    assert result.extras["neighbour"].tolist() == list(range(8))
    assert float(result.extras["distance"].max()) < 1e-3
    torch.testing.assert_close(result.weights, sampled.weights)
    torch.testing.assert_close(database.dense_weights(torch.arange(8)), sampled.weights)
    torch.testing.assert_close(result.maps, sampled.maps, rtol=1e-5, atol=1e-6)


def test_transfer_is_a_forward_pass_only(planted_net, database) -> None:
    calls = []
    handle = planted_net.features[0].register_forward_hook(lambda *args: calls.append(1))
    try:
        WeightTransferCAM(planted_net, planted_net.target_layer, database).explain(images(4, 3))
    finally:
        handle.remove()
    assert len(calls) == 1
    assert all(p.grad is None for p in planted_net.parameters())


def test_new_image_uses_nearest_entry(planted_net, database) -> None:
    x = images(5, 99)
    with torch.no_grad():
        queries = torch.nn.functional.normalize(planted_net(x), dim=1)
    nearest = torch.cdist(queries, database.embeddings).argmin(dim=1)
    result = WeightTransferCAM(planted_net, planted_net.target_layer, database).explain(x)
    assert result.extras["neighbour"].tolist() == nearest.tolist()
    torch.testing.assert_close(result.weights, database.dense_weights(nearest))


def test_kmeans_with_k_equal_n_is_no_compression(planted_net, training, database) -> None:
    x = training[0]
    compressed = database.compress_kmeans(len(database), seed=0)
    assert len(compressed) == len(database)
    original = WeightTransferCAM(planted_net, planted_net.target_layer, database).explain(x)
    squeezed = WeightTransferCAM(planted_net, planted_net.target_layer, compressed).explain(x)
    torch.testing.assert_close(squeezed.weights, original.weights)
    torch.testing.assert_close(squeezed.maps, original.maps)
    assert compressed.labels is not None
    torch.testing.assert_close(compressed.labels[squeezed.extras["neighbour"]], training[1])


def test_kmeans_averages_cluster_weights() -> None:
    embeddings = torch.tensor([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.05, 0.99]])
    dense = torch.tensor([[1.0, 0.0, 0.0], [3.0, 2.0, 0.0], [0.0, 0.0, 4.0], [0.0, 2.0, 2.0]])
    db = GradWeightDatabase.build(embeddings, dense, top_m=2, labels=torch.tensor([5, 5, 6, 7]))
    small = db.compress_kmeans(2, seed=0)
    first = int(small.query(embeddings[:1]).indices[0])
    second = int(small.query(embeddings[2:3]).indices[0])
    assert first != second
    # cluster {0, 1}: top-2 of each row kept, averaged: [(1+3)/2, (0+2)/2, 0]
    torch.testing.assert_close(
        small.dense_weights(torch.tensor([first]))[0], torch.tensor([2.0, 1.0, 0.0])
    )
    torch.testing.assert_close(
        small.dense_weights(torch.tensor([second]))[0], torch.tensor([0.0, 1.0, 3.0])
    )
    assert int(small.labels[first]) == 5
    with pytest.raises(ValueError, match="n_clusters"):
        db.compress_kmeans(5)


def test_save_load_round_trip(tmp_path: Path, database) -> None:
    json_path = database.save(tmp_path / "model")
    assert json_path.name == "gradweights.json"
    assert (tmp_path / "model" / "gradweights.safetensors").is_file()
    assert not list((tmp_path / "model").glob("*.tmp"))
    loaded = GradWeightDatabase.load(tmp_path / "model")
    torch.testing.assert_close(loaded.embeddings, database.embeddings)
    torch.testing.assert_close(loaded.channels, database.channels)
    torch.testing.assert_close(loaded.weights, database.weights)
    torch.testing.assert_close(loaded.labels, database.labels)
    assert loaded.n_channels == database.n_channels and loaded.normalize


def test_load_rejects_bad_files(tmp_path: Path, database) -> None:
    with pytest.raises(FileNotFoundError, match=r"gradweights\.json"):
        GradWeightDatabase.load(tmp_path)
    database.save(tmp_path)
    tensors = tmp_path / "gradweights.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(ValueError, match="checksum"):
        GradWeightDatabase.load(tmp_path)
    meta_path = tmp_path / "gradweights.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format": "something-else"}))
    with pytest.raises(ValueError, match="not a grad-weight database"):
        GradWeightDatabase.load(tmp_path)
    meta_path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        GradWeightDatabase.load(tmp_path)


def require_faiss() -> None:
    """faiss-cpu is a dev dependency: these tests must not pass vacuously without it."""
    if neighbours._faiss() is None:
        pytest.fail("faiss is not installed: pip install faiss-cpu (a dev dependency)")


def test_scikit_learn_fallback_matches_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    require_faiss()
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(500, 16, generator=generator)
    queries = torch.randn(50, 16, generator=generator)
    db = GradWeightDatabase.build(data, torch.rand(500, 10, generator=generator), top_m=3)
    assert db.backend == "faiss-flat"
    expected = torch.cdist(torch.nn.functional.normalize(queries), db.embeddings).argmin(dim=1)
    found = db.query(queries)
    assert found.indices.tolist() == expected.tolist()
    monkeypatch.setattr(neighbours, "_faiss", lambda: None)
    fallback = GradWeightDatabase.build(data, db.dense_weights(), top_m=3)
    assert fallback.backend == "sklearn-exact"
    again = fallback.query(queries)
    assert again.indices.tolist() == found.indices.tolist()
    np.testing.assert_allclose(again.distances.numpy(), found.distances.numpy(), atol=1e-4)
    with pytest.warns(UserWarning, match="faiss"):
        fallback.set_index("ivf").query(queries)


def test_ivf_index_finds_stored_entries() -> None:
    require_faiss()
    generator = torch.Generator().manual_seed(1)
    data = torch.randn(2000, 16, generator=generator)
    db = GradWeightDatabase.build(data, torch.rand(2000, 8, generator=generator), top_m=2)
    db.set_index("ivf", nlist=16, nprobe=16)  # all lists probed: exact
    assert db.backend.startswith("faiss-ivf16")
    found = db.query(data[:200])
    assert found.indices.tolist() == list(range(200))
    np.testing.assert_allclose(found.distances.numpy(), 0.0, atol=1e-3)
    db.set_index("ivf", nlist=16, nprobe=1)  # one list: approximate, still finds itself
    assert db.backend == "faiss-ivf16-nprobe1"
    assert db.query(data[:200]).indices.tolist() == list(range(200))


def test_bad_queries_and_layers(planted_net, database) -> None:
    with pytest.raises(ValueError, match=r"\(Q, 8\)"):
        database.query(torch.rand(3, 5))
    other = GradWeightDatabase.build(torch.rand(4, 8), torch.rand(4, 10), top_m=2)
    with pytest.raises(ValueError, match="32 channels"):
        WeightTransferCAM(planted_net, planted_net.target_layer, other).explain(images(1, 0))
