"""Paper-claim checks reference methods by name; absent methods make claims "not measured"."""

from __future__ import annotations

from typing import Any

from houseprice.bench.claims import chain, close, paper_claims
from houseprice.bench.profile import bench_profile

QUICK = bench_profile("quick")


def result(bbox: float, mask: float | None = 0.1, wsol: float = 0.5) -> dict[str, Any]:
    return {"bbox_ratio_mean": bbox, "mask_ratio_mean": mask, "wsol_accuracy": wsol}


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
    assert not any("zero variance" in c["claim"] for c in claims)  # no runs measured


def test_a_method_without_masks_is_na_not_missing() -> None:
    results = {"l2caf": result(0.6, wsol=0.7), "gradcam_abs": result(0.5, wsol=0.6)}
    results["gradcam_vanilla"] = result(0.4, mask=None, wsol=0.5)
    taha = paper_claims(results, QUICK)[-1]
    assert taha["holds"] is True and "missing" not in taha
