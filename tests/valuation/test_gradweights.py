"""Values of the house-explanation path: pair head, sign, database, transfer, evidence, oracle.

Each test computes the expected numbers independently of the code under test (by autograd, by
hand or from the files) so that a wrong head, a flipped sign, a wrong neighbour or a wrong mask
fails it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from houseprice.data.houses import load_any, load_dataset, read_mask
from houseprice.runtime import resolve_device
from houseprice.valuation.config import TrainConfig
from houseprice.valuation.evaluate import evaluate
from houseprice.valuation.evidence import evidence_houses, evidence_scores
from houseprice.valuation.gradweights import (
    ExplainConfig,
    build_database,
    sampled_explainer,
    transfer_maps,
)
from houseprice.valuation.model import HousePriceModel
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.siamese import RankSiamese, SiameseConfig

CPU = resolve_device("cpu")


def tiny_net(aux: bool = True) -> RankSiamese:
    torch.manual_seed(0)
    cfg = SiameseConfig(
        backbone=BackboneConfig(widths=(8, 12, 16)), image_size=32, aux_head=aux, pooling="gap"
    )
    net = RankSiamese(cfg).eval()
    for p in net.parameters():  # non-trivial heads so both classes get gradient
        p.data.add_(0.05 * torch.randn_like(p))
    return net


def tiles(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("aux", [True, False])
def test_sampler_ranks_with_the_price_head(aux: bool) -> None:
    """Pairs are labelled by log price, so the head is the price (auxiliary) head if present."""
    net = tiny_net(aux)
    cfg = ExplainConfig(n_samples=5, top_m=16)
    e = sampled_explainer(net, tiles(12), np.linspace(11, 13, 12), cfg, CPU)
    assert e.sampler.pair_head is (net.fc_aux if aux else net.fc)
    assert e.negate is True


def test_grad_weights_are_minus_the_mean_pair_loss_gradient() -> None:
    """Chen eq. 5-6 with the sign kept as documented: w = spatial mean of -dL/dA, L the mean
    rank-pair cross-entropy over every partner (n_samples = all of them)."""
    net = tiny_net()
    ref, scores = tiles(9, 1), np.linspace(11.0, 13.0, 9)
    x_tiles, x_score = tiles(1, 2), np.array([12.3])
    cfg = ExplainConfig(n_samples=9, top_m=10_000)  # every partner, every channel
    e = sampled_explainer(net, ref, scores, cfg, CPU)
    x = net.preprocess(torch.from_numpy(x_tiles))
    got = e.explain(x, torch.from_numpy(x_score).float()).weights
    assert got is not None

    with torch.no_grad():
        f_ref = net.branch(net.preprocess(torch.from_numpy(ref)))  # (9, d)
    fmap = net.forward_features(x).detach().requires_grad_(True)  # (1, C, h, w)
    f = net.forward_head(fmap)  # (1, d)
    y = torch.from_numpy((x_score[0] > scores).astype(np.int64))
    loss = F.cross_entropy(net.fc_aux(f - f_ref), y)  # mean over the 9 partners
    (grad,) = torch.autograd.grad(-loss, fmap)
    want = grad.mean(dim=(2, 3))  # (1, C)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
    assert want.abs().sum() > 0


def test_database_transfer_returns_the_stored_weights_of_the_neighbour() -> None:
    """A training tile's nearest key is itself, so its map is built from its own stored
    weights: ReLU(sum_c w_c A_c), max-normalised, upsampled."""
    net = tiny_net()
    ref, scores = tiles(10, 3), np.linspace(11.0, 13.0, 10)
    cfg = ExplainConfig(n_samples=5, top_m=4, key="visual")
    db, dense = build_database(net, ref, scores, cfg, device=CPU)
    maps, neigh = transfer_maps(net, db, ref, cfg.key, device=CPU)
    assert neigh.tolist() == list(range(10))
    with torch.no_grad():
        fmap = net.forward_features(net.preprocess(torch.from_numpy(ref)))  # (10, C, h, w)
    top = dense.topk(4, dim=1)
    for i in (0, 7):
        w = torch.zeros(dense.shape[1]).index_put_((top.indices[i],), top.values[i])
        cam = torch.relu((w[:, None, None] * fmap[i]).sum(0))
        cam = F.interpolate(cam[None, None], size=(32, 32), mode="bilinear", align_corners=False)
        cam = cam[0, 0] / cam.max().clamp_min(1e-12)
        torch.testing.assert_close(maps[i], cam, rtol=1e-4, atol=1e-5)


def test_evidence_uses_the_generators_masks_and_uniform_is_their_area(
    city_model: Path, tiny_city: Path
) -> None:
    model = HousePriceModel.load(city_model)
    ds = load_dataset(tiny_city)
    size = model.config.siamese.image_size
    rows, _, masks = evidence_houses(model, ds, size, max_houses=12)
    assert not set(rows["house_id"]) & set(model.train_ids)  # unseen houses only
    ev_dir = tiny_city / ds.meta["truth"]["evidence_dir"]
    for hid, m in zip(rows["house_id"], masks, strict=True):
        np.testing.assert_array_equal(m, read_mask(ev_dir / f"{hid}.png", size) > 0)
    report = evidence_scores(model, ds, max_houses=12)
    # a uniform map puts exactly the mask's area fraction inside the mask
    assert report["uniform"] == pytest.approx(float(masks.mean(axis=(1, 2)).mean()), rel=1e-6)
    assert report["n_houses"] == len(masks)


def test_oracle_row_on_a_hand_made_city(tmp_path: Path) -> None:
    """Price = exp(12 + 0.5 * driver) exactly: the hidden driver makes every test house
    priced within 10%, and the oracle row says so."""
    rng = np.random.default_rng(0)
    n = 300
    driver = rng.uniform(-1, 1, n)
    houses = pd.DataFrame(
        {
            "house_id": [f"H{i:03d}" for i in range(n)],
            "latitude": rng.uniform(43.6, 43.7, n),
            "longitude": rng.uniform(-79.5, -79.4, n),
            "sold_date": pd.date_range("2018-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "area_sqft": rng.uniform(800, 1200, n),
            "bedrooms": 3,
            "bathrooms": 2.0,
            "price": np.exp(12 + 0.5 * driver),
        }
    )
    houses.to_csv(tmp_path / "houses.csv", index=False)
    (tmp_path / "truth").mkdir()
    pd.DataFrame({"house_id": houses["house_id"], "driver": driver}).to_csv(
        tmp_path / "truth" / "drivers.csv", index=False
    )
    meta = {
        "format": "houseprice-dataset",
        "format_version": 1,
        "name": "hand-made",
        "table": "houses.csv",
        "truth": {"drivers": "truth/drivers.csv", "oracle_columns": ["driver"]},
    }
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    ds = load_any(tmp_path, purpose="train")
    model = HousePriceModel.fit(ds, TrainConfig(regressor={"n_estimators": 200}), progress=False)
    report, _ = evaluate(model, ds, with_regressors=False)
    o = report["oracle"]
    assert o["drivers"] == ["driver"]
    assert o["with_oracle"] > 0.9  # the driver explains the price
    assert (
        o["without_visual"] == report["accuracy_within_10pct"]["G,Bed,Bath,T,A"]["without_visual"]
    )
    assert o["without_visual"] < 0.4  # attributes alone cannot
    assert o["lift"] == pytest.approx(o["with_oracle"] - o["without_visual"])


def test_signed_weights_are_the_cam_of_the_residual_head_and_transfer_keeps_the_sign() -> None:
    """At the final layer (gate -> GAP -> embed -> linear head) dT/dA is the same for every
    house: alpha_k = (u E)_k / (h w), u = fc.weight[1] - fc.weight[0] (main head), so the
    signed map is each cell's contribution to the residual ranking score u . f."""
    net = tiny_net()
    ref, scores = tiles(10, 4), np.linspace(11.0, 13.0, 10)
    cfg = ExplainConfig(n_samples=5, top_m=4, signed_head="main")
    db, _ = build_database(net, ref, scores, cfg, device=CPU)
    assert db.signed is not None
    with torch.no_grad():
        fmap = net.forward_features(net.preprocess(torch.from_numpy(ref)))
        u = net.fc.weight[1] - net.fc.weight[0]
        want = (u @ net.embed.weight) / (fmap.shape[2] * fmap.shape[3])  # (C,)
    torch.testing.assert_close(db.signed, want.expand_as(db.signed), rtol=1e-4, atol=1e-7)
    signed, neigh = transfer_maps(net, db, ref[:3], cfg.key, device=CPU, signed=True)
    assert neigh.tolist() == [0, 1, 2]
    cam = torch.einsum("bchw,c->bhw", fmap[:3], want)
    cam = F.interpolate(cam[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    cam = cam / cam.flatten(1).abs().amax(dim=1)[:, None, None]
    torch.testing.assert_close(signed, cam, rtol=1e-4, atol=1e-5)
    aux = build_database(
        net, ref, scores, ExplainConfig(n_samples=5, signed_head="aux"), device=CPU
    )
    assert not torch.allclose(aux[0].signed, db.signed)  # the other head ranks log price


def test_penultimate_layer_database_and_old_folders(tmp_path: Path) -> None:
    net = tiny_net()
    ref, scores = tiles(8, 5), np.linspace(11.0, 13.0, 8)
    cfg = ExplainConfig(n_samples=4, top_m=3, layer="penultimate")
    db, dense = build_database(net, ref, scores, cfg, device=CPU)
    assert db.n_channels == dense.shape[1] == 12  # widths (8, 12, 16): the stage before last
    maps, _ = transfer_maps(net, db, ref, cfg.key, device=CPU, layer="penultimate")
    with torch.no_grad():
        a = net.backbone.stages[:-1](net.backbone.stem(net.preprocess(torch.from_numpy(ref))))
    assert a.shape[-1] == 8  # 16x16 on 64 px; 8x8 on these 32-px tiles
    assert maps.shape == (8, 32, 32)


def test_a_database_without_signed_weights_fails_clearly_when_they_are_needed(
    city_model: Path, tmp_path: Path
) -> None:
    import shutil

    from houseprice.errors import FormatError
    from houseprice.explain import GradWeightDatabase
    from houseprice.valuation.gradweights import load_database

    old = tmp_path / "old"
    shutil.copytree(city_model, old)
    db = GradWeightDatabase.load(old)
    assert db.signed is not None  # new models store them
    db.signed = None
    db.save(old)  # as an older houseprice wrote it
    info = json.loads((old / "model.json").read_text())
    for k in ("layer", "signed_head", "signed"):
        info["info"]["explain"].pop(k)
    (old / "model.json").write_text(json.dumps(info))
    model = HousePriceModel.__new__(HousePriceModel)
    model.info = {**info["info"], "folder": str(old)}
    db2, cfg = load_database(model)
    assert db2.signed is None and cfg.layer == "final" and cfg.signed is False
    with pytest.raises(FormatError, match=r"python -m houseprice\.valuation\.gradweights"):
        load_database(model, need_signed=True)


@pytest.mark.parametrize("key", ["pooled", "visual"])
def test_transfer_searches_with_the_key_of_the_same_forward_pass(key: str) -> None:
    """Query keys are the net's pooled map (or its visual feature) of each tile, taken from
    the transfer's own forward pass: perturbed copies of reference tiles find those
    references, as a brute-force search over independently computed keys does."""
    net = tiny_net()
    ref, scores = tiles(12, 6), np.linspace(11.0, 13.0, 12)
    cfg = ExplainConfig(n_samples=5, top_m=4, key=key)  # type: ignore[arg-type]
    db, _ = build_database(net, ref, scores, cfg, device=CPU)
    rng = np.random.default_rng(3)
    query = np.clip(ref[[4, 9]].astype(int) + rng.integers(-2, 3, ref[[4, 9]].shape), 0, 255)
    query = query.astype(np.uint8)
    _, neigh = transfer_maps(net, db, query, key, device=CPU)  # type: ignore[arg-type]
    with torch.no_grad():

        def keys(t: np.ndarray) -> torch.Tensor:
            f = net.forward_features(net.preprocess(torch.from_numpy(t)))
            k = net.pool(f) if key == "pooled" else net.forward_head(f)
            return F.normalize(k, dim=1) if key == "pooled" else k

        want = torch.cdist(keys(query), keys(ref)).argmin(dim=1)
    assert neigh.tolist() == want.tolist() == [4, 9]
