"""Paper-claim checks reference methods by name; absent methods make claims "not measured"."""

from __future__ import annotations

from typing import Any

from houseprice.bench.claims import chain, close, paper_claims
from houseprice.bench.profile import bench_profile

QUICK = bench_profile("quick")


def result(
    bbox: float, mask: float | None = 0.1, wsol: float = 0.5, gated: float | None = None
) -> dict[str, Any]:
    return {
        "bbox_ratio_mean": bbox,
        "mask_ratio_mean": mask,
        "wsol_accuracy": wsol,
        "wsol_accuracy_r1_gated": wsol if gated is None else gated,
    }


def test_chain_and_close() -> None:
    results = {"a": result(0.9), "b": result(0.5), "c": result(0.89)}
    assert chain(results, "a > b", ["a", "b"], "bbox_ratio_mean")["holds"] is True
    assert chain(results, "b > a", ["b", "a"], "bbox_ratio_mean")["holds"] is False
    near = close(results, "a ~ c", "a", "c", "bbox_ratio_mean", 0.02)
    assert near["holds"] is True and abs(near["difference"] - 0.01) < 1e-12
    assert "missing" not in near


def test_absent_methods_make_claims_not_measured() -> None:
    claims = paper_claims({"uniform": result(0.3)}, QUICK)  # nothing else was run
    assert claims, "the claims are still listed"
    for claim in claims:
        assert claim["holds"] is None
        assert claim["missing"]
    assert not any("retrained" in c["claim"] for c in claims)  # one net: no spread claims


def test_a_method_without_masks_is_na_not_missing() -> None:
    results = {"l2caf": result(0.6, wsol=0.7), "gradcam_abs": result(0.5, wsol=0.6)}
    results["gradcam_vanilla"] = result(0.4, mask=None, wsol=0.5)
    taha = paper_claims(results, QUICK)[-2]
    assert taha["holds"] is True and "missing" not in taha


def test_taha_claim_is_gated_by_recall_at_1() -> None:
    """Taha's LOC counts a localisation only when R@1 is right; the ungated one is listed too."""
    results = {
        "l2caf": result(0.6, wsol=0.7, gated=0.1),
        "gradcam_abs": result(0.5, wsol=0.6, gated=0.2),
        "gradcam_vanilla": result(0.4, wsol=0.5, gated=0.05),
    }
    gated, ungated = paper_claims(results, QUICK)[-2:]
    assert gated["metric"] == "wsol_accuracy_r1_gated" and gated["holds"] is False
    assert ungated["metric"] == "wsol_accuracy" and ungated["holds"] is True
    assert "not Taha's metric" in ungated["claim"]


def test_claims_at_every_top_m() -> None:
    claims = paper_claims({}, QUICK, top_ms=(50, 3))
    texts = [c["claim"] for c in claims]
    assert any("top-3 (the papers' 2.4 % of the channels) >" in t for t in texts)
    assert any("top-50 > all channels" in t for t in texts)
    assert any("(top3; Chen Table 1)" in t for t in texts)
    assert any("point proxy top-3 close" in t for t in texts)


def test_spread_claims_use_retrained_nets() -> None:
    spread = {
        "gradcam_top50": {"bbox_ratio_mean_std": 0.02, "mask_ratio_mean_std": 0.01},
        "embeddingcam_point_top50": {"bbox_ratio_mean_std": 0.004, "mask_ratio_mean_std": 0.02},
    }
    claims = paper_claims({}, QUICK, retrained={"n_nets": 3, "spread": spread})
    rows = [c for c in claims if "retrained" in c["claim"]]
    assert [c["holds"] for c in rows] == [True, True, False, False]
    assert all(c["metric"].endswith("std across nets") for c in rows)
