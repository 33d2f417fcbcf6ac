"""README's ratio-study lines: from the coverage results and from the sealed runs' records."""

from __future__ import annotations

from houseprice.jobs.docs_assessment import dataset_line, sealed_line


def _fig(value: float, lo: float, hi: float, meets: bool) -> dict:
    return {"value": value, "ci95": [value - 0.01, value + 0.01], "iaao_range": [lo, hi],
            "meets": meets}  # fmt: skip


def _study(cod: float) -> dict:
    return {
        "n_trimmed": 3,
        "median_ratio": _fig(0.99, 0.9, 1.1, True),
        "cod": _fig(cod, 5.0, 15.0, 5.0 <= cod <= 15.0),
        "prd": _fig(1.01, 0.98, 1.03, True),
        "prb": _fig(-0.02, -0.05, 0.05, True),
        "mki": _fig(0.97, 0.95, 1.05, True),
    }


def test_dataset_line_shows_figures_ranges_and_coverage():
    cov = {"coverage": 0.795, "mean_width": 0.42, "by_quintile": {"Q1": 0.7, "Q5": 0.86}}
    d = {
        "test_size": 800,
        "ratio_study": {"overall": _study(16.0)},
        "price_ranges": {"levels": {"0.8": {"without_visual": cov, "with_visual": cov}}},
    }
    line = dataset_line("demo", d)
    assert line.startswith("- **Demo city** (800 test sales, 3 trimmed)")
    assert "COD 16.0 [16.0, 16.0] (IAAO 5.0–15.0) ✗" in line
    assert "median ratio 0.990" in line and "✓" in line
    assert "80% ranges cover 79.5% (quintiles 70–86%)" in line
    assert "42% of the valuation with visual features, 42% without" in line


def test_sealed_line_only_when_the_runs_carry_the_study():
    assert sealed_line({"runs": [{"test": {}}]}) is None
    line = sealed_line({"runs": [{"ratio_study": _study(c)} for c in (12.0, 14.0, 16.0)]})
    assert line is not None and "3 runs" in line and "COD 14.000 ± 2.000" in line
    assert "within IAAO's ranges in 2 of 3 runs" in line
