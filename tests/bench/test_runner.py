"""The explainer benchmark runner end to end on the quick profile (tiny synthetic birds).

The method list comes from the explainer registry: the expected report keys are derived from
it, and a toy explainer registered here shows up in the report without any bench change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from houseprice.bench.methods import bench_specs
from houseprice.bench.profile import bench_profile
from houseprice.bench.report import render_markdown
from houseprice.bench.runner import run_benchmark
from houseprice.errors import UserInputError
from houseprice.explain import Explainer, LowRes, registered
from houseprice.explain.base import Target

REQUIRED = (
    "bbox_ratio_mean",
    "bbox_ratio_std",
    "mask_ratio_mean",
    "mask_ratio_std",
    "wsol_accuracy",
    "seconds_per_image",
)
# today's report keys (top-M = 50, k-means K = 50): they must stay stable
STABLE_KEYS = {
    "uniform",
    "gradcam_single_triplet",
    "gradcam_all_channels",
    "gradcam_top50",
    "gradcampp_single_triplet",
    "gradcampp_all_channels",
    "gradcampp_top50",
    "gradcam_transfer_exact",
    "gradcam_transfer_kmeans50",
    "gradcampp_transfer_exact",
    "gradcampp_transfer_kmeans50",
    "embeddingcam_point_all",
    "embeddingcam_point_top50",
    "embeddingcam_mean_all",
    "embeddingcam_mean_top50",
    "gradcam_vanilla",
    "gradcam_abs",
    "l2caf",
}
# the top-M variants also run at the papers' fraction of the 128 channels: M = 3
PAPER_M_KEYS = {
    "gradcam_top3",
    "gradcampp_top3",
    "embeddingcam_point_top3",
    "embeddingcam_mean_top3",
}
QUICK = bench_profile("quick")
RETRAIN_RUNS = 3  # two more tiny nets for the spread across retrained nets


def expected_keys() -> list[str]:
    """Report keys of every registered method's benchmark variants and M, in order."""
    keys = []
    for spec in bench_specs():
        for v in spec.variants:
            ms = (QUICK.top_m, 3) if v.top_m and v.transfer is None else (QUICK.top_m,)
            keys += [v.report_key(top_m=m, kmeans_k=QUICK.kmeans_k) for m in ms]
    return keys


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bench")
    report = run_benchmark(
        data=root / "birds",
        out=root / "out",
        profile="quick",
        seed=0,
        progress=False,
        retrain_runs=RETRAIN_RUNS,
    )
    yield root, report
    torch.set_num_threads(threads)


def test_quick_profile_writes_every_method(quick_run: tuple[Path, dict[str, Any]]) -> None:
    root, report = quick_run
    out = root / "out"
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == report
    assert report["dataset"] == "synthetic-birds"
    assert (root / "birds" / "images.txt").is_file()  # generated with the quick size
    assert set(report["retrieval"]) >= {"recall_at_1", "nmi"}
    for value in report["retrieval"].values():
        assert 0.0 <= value <= 1.0
    assert list(report["methods"]) == expected_keys()
    assert set(report["methods"]) == STABLE_KEYS | PAPER_M_KEYS
    assert report["setup"]["top_ms"] == [50, 3]
    n_eval = QUICK.eval_images
    for name, result in report["methods"].items():
        for key in REQUIRED:
            assert key in result, (name, key)
        for key in ("bbox_ratio_mean", "mask_ratio_mean", "wsol_accuracy"):
            assert 0.0 <= result[key] <= 1.0, (name, key)
        assert result["seconds_per_image"] >= 0.0
        assert result["n_images"] == n_eval
        sweep = result["threshold_sweep"]
        assert len(sweep["thresholds"]) == len(sweep["accuracy"]) == 10
        assert sweep["accuracy"][sweep["thresholds"].index(0.2)] == result["wsol_accuracy"]
    for name in ("report.md", "qualitative.png", "sensitivity_m.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "model" / "embedding.json").is_file()
    assert (out / "gradweights" / "gradcam.json").is_file()
    text = (out / "report.md").read_text()
    assert "| BBox |" in text and "gradcam_transfer_kmeans50" in text
    assert text == render_markdown(report)


def test_uniform_ratio_is_the_region_area(quick_run: tuple[Path, dict[str, Any]]) -> None:
    _, report = quick_run
    uniform = report["methods"]["uniform"]
    # a constant map puts exactly the area fraction of the box inside it: strictly in (0, 1)
    assert 0.0 < uniform["bbox_ratio_mean"] < 1.0
    assert uniform["mask_ratio_mean"] < uniform["bbox_ratio_mean"]  # the mask lies in the box
    # every map other than uniform/transfer gets its partners: single triplet has 1 valid
    assert report["methods"]["gradcam_single_triplet"]["mean_valid_triplets"] <= 1.0
    assert report["methods"]["gradcam_top50"]["mean_valid_triplets"] > 1.0


def test_proxy_methods_have_zero_sampler_variance(quick_run: tuple[Path, dict[str, Any]]) -> None:
    """Reruns with other sampler seeds on one net: zero spread for EmbeddingCAM (it samples
    nothing), so the Bachhawat claim is measured across retrained nets instead."""
    _, report = quick_run
    runs = report["methods"]["embeddingcam_point_top50"]["runs"]
    assert runs["n_runs"] == QUICK.n_runs
    assert runs["bbox_ratio_run_std"] == 0.0
    assert not any("zero variance" in c["claim"] for c in report["claims"])
    for claim in report["claims"]:
        assert claim["holds"] in (True, False, None)


def test_spread_across_retrained_nets(quick_run: tuple[Path, dict[str, Any]]) -> None:
    root, report = quick_run
    info = report["retrain_runs"]
    assert info["n_nets"] == RETRAIN_RUNS and info["seeds"] == [0, 1, 2]
    assert (root / "out" / "retrained" / "seed_2" / "embedding.json").is_file()
    main = info["nets"][0]
    assert main["methods"]["gradcam_top50"] == {
        k: report["methods"]["gradcam_top50"][k] for k in main["methods"]["gradcam_top50"]
    }
    assert set(info["spread"]) == {
        "gradcam_top50",
        "embeddingcam_point_all",
        "embeddingcam_point_top50",
        "embeddingcam_mean_all",
        "embeddingcam_mean_top50",
    }
    ecam = [n["methods"]["embeddingcam_point_all"]["bbox_ratio_mean"] for n in info["nets"]]
    assert len(set(ecam)) == RETRAIN_RUNS  # other nets, other maps
    assert info["spread"]["embeddingcam_point_all"]["bbox_ratio_mean_std"] == pytest.approx(
        float(np.std(ecam, ddof=1))
    )
    spread_claims = [c for c in report["claims"] if "retrained nets" in c["claim"]]
    assert len(spread_claims) == 4 * 2 * 2  # 4 EmbeddingCAM rows x (box, mask) x 2 claims
    assert all(c["holds"] is not None for c in spread_claims)
    text = (root / "out" / "report.md").read_text()
    assert f"## Spread across {RETRAIN_RUNS} retrained nets" in text


def test_sensitivity_covers_all_channels(quick_run: tuple[Path, dict[str, Any]]) -> None:
    _, report = quick_run
    rows = report["sensitivity_m"]
    n_channels = report["setup"]["n_channels"]
    assert rows[-1]["m"] == n_channels and rows[-1]["all_channels"]
    assert [r["m"] for r in rows] == sorted(r["m"] for r in rows)
    # all channels in the sweep reproduce the gradcam_all_channels method exactly
    all_channels = report["methods"]["gradcam_all_channels"]
    assert rows[-1]["bbox_ratio_mean"] == pytest.approx(all_channels["bbox_ratio_mean"], abs=1e-6)
    top = next(r for r in rows if r["m"] == 50)
    assert top["bbox_ratio_mean"] == pytest.approx(
        report["methods"]["gradcam_top50"]["bbox_ratio_mean"], abs=1e-6
    )


def test_reloaded_model_reproduces_the_scores(
    quick_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, report = quick_run
    torch.set_num_threads(1)
    again = run_benchmark(
        data=root / "birds",
        out=tmp_path / "again",
        profile="quick",
        seed=0,
        progress=False,
        model_dir=root / "out" / "model",
    )
    assert not (tmp_path / "again" / "model").exists()  # loaded, not retrained
    assert again["setup"]["timings"]["train_seconds"] == 0.0
    assert again["retrieval"] == report["retrieval"]
    for name, result in report["methods"].items():
        for key in ("bbox_ratio_mean", "mask_ratio_mean", "wsol_accuracy"):
            assert np.isclose(again["methods"][name][key], result[key], atol=1e-6), (name, key)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        run_benchmark(out=tmp_path / "o", profile="quick", progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        run_benchmark(data=tmp_path, cub=tmp_path, out=tmp_path / "o", profile="quick")
    with pytest.raises(ValueError, match="unknown profile"):
        run_benchmark(data=tmp_path, out=tmp_path / "o", profile="huge")
    with pytest.raises(ValueError, match="weights"):
        run_benchmark(data=tmp_path / "never", out=tmp_path / "o", profile="paper")
    assert not (tmp_path / "never").exists()  # refused before generating anything
    with pytest.raises(UserInputError, match="CUB"):
        run_benchmark(cub=tmp_path / "nothing", out=tmp_path / "o", profile="quick")
    with pytest.raises(UserInputError, match="retrain_runs"):
        run_benchmark(data=tmp_path, out=tmp_path / "o", profile="quick", retrain_runs=0)


class CentreCAM(Explainer):
    """A toy explainer: a bright centre, no model computation."""

    def __init__(self, model: nn.Module, target_layer: nn.Module | None, **kw: object) -> None:
        super().__init__(model, None)

    def _compute(self, x: Tensor, target: Target) -> LowRes:
        raw = torch.zeros(x.shape[0], 4, 4)
        raw[:, 1:3, 1:3] = 1.0
        return LowRes(raw=raw)


def test_a_registered_explainer_appears_in_the_report(
    quick_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, _ = quick_run
    torch.set_num_threads(1)
    with registered("toy_centre", CentreCAM, label="Toy centre", outputs=("embedding",)):
        report = run_benchmark(
            data=root / "birds",
            out=tmp_path / "toy",
            profile="quick",
            seed=0,
            progress=False,
            model_dir=root / "out" / "model",
        )
    assert "toy_centre" not in [s.name for s in bench_specs()]  # unregistered again
    assert list(report["methods"])[-1] == "toy_centre"
    on_disk = json.loads((tmp_path / "toy" / "report.json").read_text())
    toy = on_disk["methods"]["toy_centre"]
    assert toy["n_images"] == QUICK.eval_images
    assert 0.0 < toy["bbox_ratio_mean"] <= 1.0
    text = (tmp_path / "toy" / "report.md").read_text()
    assert "| toy_centre | " in text


def test_report_renders_without_some_methods(quick_run: tuple[Path, dict[str, Any]]) -> None:
    from houseprice.bench.claims import paper_claims

    _, report = quick_run
    methods = {k: v for k, v in report["methods"].items() if not k.startswith("gradcampp")}
    partial = {**report, "methods": methods, "claims": paper_claims(methods, QUICK)}
    text = render_markdown(partial)
    assert "not measured" in text
    assert "| gradcampp_top50 |" not in text
    table1_bbox = next(line for line in text.splitlines() if line.startswith("| BBox |"))
    assert table1_bbox.count("–") == 3  # the three Grad-CAM++ columns
