"""The jobs behind the CLI: the only code that writes output folders.

- :mod:`~houseprice.jobs.model`: ``train``, ``predict``, ``evaluate_folder``;
- :mod:`~houseprice.jobs.explain`: ``explain_table`` (overlays, table, map, evidence scores);
- :mod:`~houseprice.jobs.demo`: ``run_demo`` (city → model → report → map);
- :mod:`~houseprice.jobs.bench`: ``bench_explainers``, ``bench_pricing``;
- :mod:`~houseprice.jobs.stream` / :mod:`~houseprice.jobs.engines`: chunked, resumable
  scoring into partitioned Parquet, locally or on Dask (docs/scaling.md);
- :mod:`~houseprice.jobs.outputs`: output tables and file names.

Notebooks call the same functions as the typer commands.
"""

from houseprice.jobs.bench import bench_explainers, bench_pricing
from houseprice.jobs.demo import DemoResult, run_demo
from houseprice.jobs.explain import ExplainResult, explain_table
from houseprice.jobs.model import evaluate_folder, predict, train, write_report
from houseprice.jobs.outputs import safe_name, write_table
from houseprice.jobs.stream import read_predictions
from houseprice.valuation.report import table2_text

__all__ = [
    "DemoResult",
    "ExplainResult",
    "bench_explainers",
    "bench_pricing",
    "evaluate_folder",
    "explain_table",
    "predict",
    "read_predictions",
    "run_demo",
    "safe_name",
    "table2_text",
    "train",
    "write_report",
    "write_table",
]
