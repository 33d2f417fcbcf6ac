"""Benchmark runners: explainer localisation (:mod:`houseprice.bench.explainers`).

Submodules are imported explicitly (``from houseprice.bench.explainers import run_benchmark``)
so that importing the package stays cheap.
"""
