"""Benchmark runners: the explainer localisation benchmark (Chen §4.1 Table 1).

Modules, one job each: ``profile`` (run settings from ``houseprice.profiles``), ``birds`` (data
and embedding net), ``batches`` (the explained images), ``methods`` (the method list, built from
the explainer registry), ``scoring`` (maps -> metrics), ``claims`` (the papers' orderings),
``report`` (markdown and figures), ``runner`` (:func:`houseprice.bench.runner.run_benchmark`).
Submodules are imported explicitly so that importing the package stays cheap.
"""
