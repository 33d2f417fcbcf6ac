"""The papers' orderings, measured: Chen Table 1 and §3.3/§4.1, Bachhawat Table 1, Taha Table 3.

Claims name the methods they compare by report key. A method that was not run (not registered,
or without what it needs) makes its claims "not measured": ``holds`` is ``None`` and
``missing`` lists the absent methods. Nothing here fails on a missing method.
"""

from __future__ import annotations

import itertools
from typing import Any

from houseprice.bench.profile import BenchProfile

Results = dict[str, dict[str, Any]]


def _value(results: Results, method: str, metric: str) -> float | None:
    v = results.get(method, {}).get(metric)
    return None if v is None else float(v)


def _claim(text: str, metric: str, names: list[str], results: Results) -> dict[str, Any]:
    return {
        "claim": text,
        "metric": metric,
        "values": {n: _value(results, n, metric) for n in names},
    }


def _measured(claim: dict[str, Any], results: Results) -> dict[str, Any]:
    """Add ``missing`` (the compared methods that were not run), if any."""
    missing = [n for n in claim["values"] if n not in results]
    if missing:
        claim["missing"] = missing
    return claim


def chain(
    results: Results, text: str, names: list[str], metric: str, slack: float = 0.0
) -> dict[str, Any]:
    """``names[0] > names[1] > ...`` on ``metric`` (each within ``slack``)."""
    claim = _claim(text, metric, names, results)
    vals = list(claim["values"].values())
    holds = None
    if all(v is not None for v in vals):
        holds = all(a > b - slack for a, b in itertools.pairwise(vals))
    claim["holds"] = holds
    return _measured(claim, results)


def close(results: Results, text: str, a: str, b: str, metric: str, tol: float) -> dict[str, Any]:
    """``|a - b| <= tol`` on ``metric``."""
    claim = _claim(text, metric, [a, b], results)
    va, vb = claim["values"][a], claim["values"][b]
    diff = None if va is None or vb is None else va - vb
    claim["difference"] = diff
    claim["holds"] = None if diff is None else abs(diff) <= tol
    return _measured(claim, results)


def _chen(results: Results, m: int, k: int) -> list[dict[str, Any]]:
    """Chen Table 1 orderings, Grad-CAM++ >= Grad-CAM, weight transfer (§3.3, §4.1)."""
    claims = [
        chain(
            results,
            f"Grad-CAM: top-{m} > all channels > single triplet > uniform (Chen Table 1)",
            [f"gradcam_top{m}", "gradcam_all_channels", "gradcam_single_triplet", "uniform"],
            metric,
        )
        for metric in ("bbox_ratio_mean", "mask_ratio_mean")
    ]
    for metric in ("bbox_ratio_mean", "mask_ratio_mean"):
        for variant in ("single_triplet", "all_channels", f"top{m}"):
            text = f"Grad-CAM++ >= Grad-CAM ({variant}; Chen Table 1)"
            names = [f"gradcampp_{variant}", f"gradcam_{variant}"]
            claims.append(chain(results, text, names, metric, slack=1e-12))
    for base in ("gradcam", "gradcampp"):
        for metric in ("bbox_ratio_mean", "mask_ratio_mean"):
            text = f"{base}: transferred top-{m} weights within 0.02 of the image's own (Chen §3.3)"
            exact, own = f"{base}_transfer_exact", f"{base}_top{m}"
            claims.append(close(results, text, exact, own, metric, 0.02))
            text = f"{base}: k-means K={k} database within 0.02 of the full one (Chen §4.1)"
            claims.append(close(results, text, f"{base}_transfer_kmeans{k}", exact, metric, 0.02))
    return claims


def _bachhawat(results: Results, m: int) -> list[dict[str, Any]]:
    """EmbeddingCAM close to sampled top-M; zero run-to-run variance (Bachhawat)."""
    claims = [
        close(
            results,
            f"EmbeddingCAM {proxy} proxy top-{m} close (0.02) to sampled top-{m} (Bachhawat)",
            f"embeddingcam_{proxy}_top{m}",
            f"gradcam_top{m}",
            "bbox_ratio_mean",
            0.02,
        )
        for proxy in ("point", "mean")
    ]
    ecam, sampled = f"embeddingcam_point_top{m}", f"gradcam_top{m}"
    runs_ecam = results.get(ecam, {}).get("runs", {})
    runs_samp = results.get(sampled, {}).get("runs", {})
    if runs_ecam:
        std_e = runs_ecam.get("bbox_ratio_run_std")
        std_s = runs_samp.get("bbox_ratio_run_std")
        claim: dict[str, Any] = {
            "claim": "EmbeddingCAM has zero variance across runs; sampled top-M does not",
            "metric": "bbox_ratio_run_std",
            "values": {ecam: std_e, sampled: std_s},
            "holds": None if std_e is None or std_s is None else std_e == 0.0 < std_s,
        }
        claims.append(_measured(claim, results))
    return claims


def paper_claims(results: Results, prof: BenchProfile) -> list[dict[str, Any]]:
    """Check the orderings the papers report (Chen Table 1, Bachhawat Table 1, Taha Table 3)."""
    m, k = prof.top_m, prof.kmeans_k
    taha = chain(
        results,
        "L2-CAF > Grad-CAM-abs > vanilla Grad-CAM (Taha Table 3)",
        ["l2caf", "gradcam_abs", "gradcam_vanilla"],
        "wsol_accuracy",
    )
    return [*_chen(results, m, k), *_bachhawat(results, m), taha]
