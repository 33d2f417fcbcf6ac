"""Benchmark runners: the explainer localisation benchmark (Chen §4.1 Table 1).

Modules, one job each: ``profile`` (run settings from ``houseprice.profiles``), ``birds`` (data
and embedding net), ``batches`` (the explained images), ``methods`` (the method list, built from
the explainer registry), ``scoring`` (maps -> metrics), ``claims`` (the papers' orderings),
``retrain`` (the spread across retrained nets, Bachhawat Table 1), ``report`` (markdown and
figures), ``runner`` (:func:`houseprice.bench.runner.run_benchmark`) and ``tuning`` (training
settings chosen on held-out training classes).
Submodules are imported explicitly so that importing the package stays cheap.
"""
