"""README's ratio-study and price-range lines, rendered from committed results files.

The ``ratio_study`` section of :mod:`houseprice.jobs.docs`: one line per dataset of
``benchmarks/results/coverage.json`` (``python benchmarks/coverage.py``: the demo city and
Ames, test splits) and, once the sealed pricing benchmark was run with the ratio study in each
run's record, a line from ``docs/results/bench_pricing_standard/report.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COVERAGE = ROOT / "benchmarks" / "results" / "coverage.json"
BENCH = ROOT / "docs" / "results" / "bench_pricing_standard" / "report.json"
_NAMES = {"demo": "Demo city", "ames": "Ames"}


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _ranges(d: dict[str, Any]) -> str:
    parts = []
    for level, runs in d["price_ranges"]["levels"].items():
        main = runs.get("with_visual") or runs["without_visual"]
        q = [100 * v for v in main["by_quintile"].values()]
        parts.append(
            f"{100 * float(level):.0f}% ranges cover {100 * main['coverage']:.1f}% "
            f"(quintiles {min(q):.0f}–{max(q):.0f}%)"
        )
    widths = {k: v["mean_width"] for k, v in d["price_ranges"]["levels"]["0.8"].items()}
    text = ", ".join(parts)
    if "with_visual" in widths:
        text += (
            f"; mean 80% width {100 * widths['with_visual']:.0f}% of the valuation with visual "
            f"features, {100 * widths['without_visual']:.0f}% without"
        )
    else:
        text += f"; mean 80% width {100 * widths['without_visual']:.0f}% of the valuation"
    return text


def dataset_line(name: str, d: dict[str, Any]) -> str:
    """``Demo city (800 test sales): median ratio 0.99 [...] (IAAO ...) ✓, COD ...``."""
    from houseprice.pricing.ratio_study import STATISTICS
    from houseprice.valuation.assessment_report import figure_text

    o = d["ratio_study"]["overall"]
    labels = {"median_ratio": "median ratio", "cod": "COD", "prd": "PRD", "prb": "PRB"}
    figs = ", ".join(
        f"{labels.get(k, k.upper())} {figure_text(k, o[k], marks=False)} "
        + ("✓" if o[k]["meets"] else "✗")
        for k in STATISTICS
    )
    return (
        f"- **{_NAMES.get(name, name)}** ({d['test_size']} test sales, {o['n_trimmed']} "
        f"trimmed): {figs}. {_ranges(d)}."
    )


def sealed_line(report: dict[str, Any]) -> str | None:
    """Mean ± sd over the sealed runs, when their records carry the ratio study."""
    import numpy as np

    runs = [r for r in report.get("runs", []) if "ratio_study" in r]
    if not runs:
        return None
    parts = []
    for k, label in (("median_ratio", "median ratio"), ("cod", "COD"), ("prd", "PRD")):
        v = np.array([r["ratio_study"][k]["value"] for r in runs], dtype=float)
        parts.append(f"{label} {v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}")
    v = np.array([r["ratio_study"]["prb"]["value"] for r in runs], dtype=float)
    parts.append(f"PRB {v.mean():+.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}")
    met = sum(all(r["ratio_study"][k]["meets"] for k in ("median_ratio", "cod")) for r in runs)
    return (
        f"- **Sealed benchmark** ({len(runs)} runs, mean ± sd): {', '.join(parts)}; level and "
        f"COD within IAAO's ranges in {met} of {len(runs)} runs."
    )


def ratio_study_section() -> str:
    cov = _load(COVERAGE)
    if cov is None:
        return "*(no results yet: run `python benchmarks/coverage.py` to produce them)*"
    lines = [dataset_line(k, v) for k, v in cov["datasets"].items()]
    bench = _load(BENCH)
    line = sealed_line(bench) if bench is not None else None
    if line is not None:
        lines.append(line)
    return "\n".join(lines)
