"""Compatibility alias: the benchmark moved to :mod:`houseprice.bench.runner` and its siblings.

``from houseprice.bench.explainers import run_benchmark`` keeps working until every caller
imports :func:`houseprice.bench.runner.run_benchmark`; then this module can be deleted.
"""

from houseprice.bench.profile import BenchProfile, bench_profile
from houseprice.bench.report import render_markdown
from houseprice.bench.runner import run_benchmark

__all__ = ["BenchProfile", "bench_profile", "render_markdown", "run_benchmark"]
