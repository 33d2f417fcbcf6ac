"""Table-2 reports as text: the markdown report, the terminal summary and the error plot.

Pure functions of the report dict that :func:`houseprice.valuation.evaluate.evaluate` returns
(keys described in docs/pricing.md); writing them to a folder is the jobs' business.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def table2_text(report: dict[str, Any]) -> str:
    """A compact Table-2 summary for the terminal."""
    lines = [f"{'attributes':<18}{'w/o VF':>8}{'w VF':>8}{'lift':>8}"]
    for name, row in report["accuracy_within_10pct"].items():
        wo = f"{100 * row['without_visual']:.1f}" if row["without_visual"] is not None else "–"
        wv = f"{100 * row['with_visual']:.1f}" if row["with_visual"] is not None else "–"
        lift = f"{100 * row['lift']:+.1f}" if row["lift"] is not None else "–"
        label = name if name != "none" else "none (baseline)"
        lines.append(f"{label:<18}{wo:>8}{wv:>8}{lift:>8}")
    if "oracle" in report:
        o = report["oracle"]
        lines.append(
            f"{'oracle drivers':<18}{100 * o['without_visual']:>8.1f}"
            f"{100 * o['with_oracle']:>8.1f}{100 * o['lift']:>+8.1f}"
        )
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def report_markdown(
    report: dict[str, Any], plot_name: str | None = None, ratio_plot: str | None = None
) -> str:
    """The human-readable report: Table 2, regressors, oracle, error summary, ratio study and
    price-range coverage (:mod:`houseprice.valuation.assessment_report`)."""
    from houseprice.valuation.assessment_report import coverage_markdown, ratio_study_markdown

    lines = [
        f"# Price evaluation — {report['dataset']}",
        "",
        f"Time-sorted split ({report.get('split', 'test')} rows scored): "
        f"{report['train_size']} fitting and {report['test_size']} scored houses. "
        "Accuracy = share of scored houses priced within ±10% (percent).",
        "",
        "| Attributes | w/o VF (%) | w VF (%) | Δ (points) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in report["accuracy_within_10pct"].items():
        label = name if name != "none" else "none (w/o VF = mean-price baseline)"
        delta = "–" if row["lift"] is None else f"{100 * row['lift']:+.1f}"
        lines.append(
            f"| {label} | {_pct(row['without_visual'])} | {_pct(row['with_visual'])} | {delta} |"
        )
    if "oracle" in report:
        o = report["oracle"]
        lines += [
            "",
            f"**Oracle** ({o['set']} + hidden drivers {', '.join(o['drivers'])}): "
            f"{_pct(o['with_oracle'])}% vs {_pct(o['without_visual'])}% → "
            f"lift {100 * o['lift']:+.1f} points.",
        ]
        if "visual_share_of_oracle_lift" in o:
            lines.append(
                f"Visual features recover {100 * o['visual_share_of_oracle_lift']:.0f}% "
                "of the oracle lift."
            )
    if report["regressors"]:
        lines += [
            "",
            f"## Regressors on {report['main_model']}",
            "",
            "| Regressor | 10% accuracy (%) |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {_pct(v)} |" for k, v in report["regressors"].items()]
    lines += [
        "",
        f"Main model MAPE {100 * report['mape']:.1f}%, median APE "
        f"{100 * report['median_ape']:.1f}%.",
    ]
    if plot_name:
        lines += ["", f"![predicted vs actual and error histogram]({plot_name})"]
    if "ratio_study" in report:
        lines += ["", ratio_study_markdown(report["ratio_study"], ratio_plot)]
    if "price_ranges" in report:
        lines += ["", coverage_markdown(report["price_ranges"])]
    return "\n".join(lines) + "\n"


def plot_predictions(preds: pd.DataFrame) -> bytes:
    """PNG bytes: predicted vs actual (log–log) and the signed % error histogram."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    t, p = preds["price"].to_numpy(), preds["predicted_price"].to_numpy()
    err = (p - t) / t
    inside = np.abs(err) <= 0.1
    a.scatter(t[inside], p[inside], s=6, c="tab:green", label="within ±10%")
    a.scatter(t[~inside], p[~inside], s=6, c="tab:red", label="outside")
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    a.plot([lo, hi], [lo, hi], "k--", lw=1)
    a.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="grey", alpha=0.15)
    a.set_xscale("log"), a.set_yscale("log")
    a.set_xlabel("sale price"), a.set_ylabel("predicted price"), a.legend()
    a.set_title("Predicted vs actual (test)")
    b.hist(np.clip(err * 100, -60, 60), bins=60, color="tab:blue")
    b.axvspan(-10, 10, color="green", alpha=0.15)
    b.set_xlabel("error (%)"), b.set_ylabel("houses"), b.set_title("Signed error")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
