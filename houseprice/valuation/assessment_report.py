"""The ratio study and the price-range coverage as text: markdown, terminal lines, the plot.

Pure functions of the ``ratio_study`` / ``price_ranges`` entries of an evaluation report
(:mod:`houseprice.valuation.assessment`); each figure is shown with its 95% interval, IAAO's
acceptable range and a pass (🟢) / fail (🔴) mark.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from houseprice.pricing.ratio_study import STATISTICS

_LABELS = {
    "median_ratio": "median ratio",
    "cod": "COD",
    "prd": "PRD",
    "prb": "PRB",
    "mki": "MKI",
}
_FMT = {
    "median_ratio": "{:.3f}",
    "cod": "{:.1f}",
    "prd": "{:.3f}",
    "prb": "{:+.3f}",
    "mki": "{:.3f}",
}


def _num(name: str, v: float | None) -> str:
    return "–" if v is None else _FMT[name].format(v)


def figure_text(name: str, fig: dict[str, Any], *, marks: bool = True) -> str:
    """``COD 12.3 [11.0, 13.4] (IAAO 5.0–15.0) 🟢``."""
    ci = fig.get("ci95")
    lo, hi = fig["iaao_range"]
    text = f"{_num(name, fig['value'])}"
    if ci:
        text += f" [{_num(name, ci[0])}, {_num(name, ci[1])}]"
    text += f" (IAAO {_num(name, lo)}–{_num(name, hi)})"
    if marks and fig["value"] is not None:
        text += " 🟢" if fig["meets"] else " 🔴"
    return text


def ratio_study_lines(study: dict[str, Any]) -> str:
    """Terminal summary of the overall ratio study (one line per statistic)."""
    o = study["overall"]
    head = f"IAAO ratio study on {o['n_used']} sales ({o['n_trimmed']} trimmed as outliers):"
    lines = [head] + [
        f"  {_LABELS[k]:<13}{figure_text(k, o[k], marks=False)}"
        + ("" if o[k]["meets"] else "  outside IAAO range")
        for k in STATISTICS
    ]
    if o["warning"]:
        lines.append(f"  warning: {o['warning']}")
    return "\n".join(lines)


def _group_rows(groups: dict[str, dict[str, Any]], label: str) -> list[str]:
    rows = []
    for key, s in groups.items():
        cells = " | ".join(
            "–"
            if s[k]["value"] is None
            else figure_text(k, s[k]).split(" (IAAO")[0] + (" 🟢" if s[k]["meets"] else " 🔴")
            for k in STATISTICS
        )
        warn = " ⚠" if s["warning"] else ""
        rows.append(f"| {label} {key}{warn} | {s['n_used']} | {cells} |")
    return rows


def ratio_study_markdown(study: dict[str, Any], plot_name: str | None = None) -> str:
    """The report.md section: overall figures with ranges, then the groups' table."""
    o = study["overall"]
    lines = [
        "## IAAO ratio study",
        "",
        f"Ratio = valuation / sale price on {o['n']} scored sales; outlier trimming: "
        f"{o['trim_rule']} ({o['n_trimmed']} trimmed). 95% intervals: percentile bootstrap "
        "(1,000 resamples) for median ratio, COD, PRD and MKI, OLS for PRB. 🟢 within IAAO's "
        "range (single-family residential; MKI: Quintos), 🔴 outside.",
        "",
        "| statistic | value [95% interval] (IAAO range) |",
        "|---|---|",
    ]
    lines += [f"| {_LABELS[k]} | {figure_text(k, o[k])} |" for k in STATISTICS]
    if o["warning"]:
        lines += ["", f"**Warning:** {o['warning']}."]
    head = " | ".join(_LABELS[k] for k in STATISTICS)
    lines += [
        "",
        "By sale-price quintile (Q1 cheapest), by flag, and by area cell of the map's grid "
        f"({study['area_cell_meters']:.0f} m cells with at least 5 sales; ⚠: fewer than 20 "
        "sales, which IAAO considers too few):",
        "",
        f"| group | sales | {head} |",
        "|---|---:|" + "---|" * len(STATISTICS),
    ]
    lines += _group_rows(study["price_quintile"], "price")
    for flag, groups in study["flags"].items():
        lines += _group_rows(groups, flag)
    lines += _group_rows(study["area_cell"], "cell")
    if plot_name:
        lines += ["", f"![ratio vs sale price]({plot_name})"]
    return "\n".join(lines)


def coverage_markdown(ranges: dict[str, Any]) -> str:
    """The report.md section on the calibrated price ranges' empirical coverage."""
    lines = [
        "## Price ranges: empirical coverage",
        "",
        f"Calibration: {ranges['method']}. Coverage = share of scored sales inside their "
        "range (%); width = mean (high − low) / valuation (%).",
        "",
        "| level | model | coverage | Q1 | Q2 | Q3 | Q4 | Q5 | mean width |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level, runs in ranges["levels"].items():
        for model, c in runs.items():
            q = " | ".join(f"{100 * v:.1f}" for v in c["by_quintile"].values())
            lines.append(
                f"| {100 * float(level):.0f}% | {model.replace('_', ' ')} | "
                f"{100 * c['coverage']:.1f} | {q} | {100 * c['mean_width']:.1f} |"
            )
    return "\n".join(lines)


def plot_ratio_study(price: np.ndarray, predicted: np.ndarray, study: dict[str, Any]) -> bytes:
    """PNG: every sale's ratio against its sale price, IAAO's level band, quintile medians."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratio = np.asarray(predicted) / np.asarray(price)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.scatter(price, ratio, s=5, c="tab:blue", alpha=0.5, label="sale")
    lo, hi = study["overall"]["median_ratio"]["iaao_range"]
    ax.axhspan(lo, hi, color="green", alpha=0.1, label=f"IAAO level {lo:.2f}–{hi:.2f}")
    ax.axhline(1.0, c="k", lw=0.8)
    order = np.sort(np.asarray(price))
    for i, s in enumerate(study["price_quintile"].values()):
        a = order[len(order) * i // 5]
        b = order[min(len(order) * (i + 1) // 5, len(order) - 1)]
        m = s["median_ratio"]
        if m["value"] is not None:
            ax.plot([a, b], [m["value"]] * 2, c="tab:red", lw=2, label=None if i else "median")
            if m["ci95"]:
                ax.fill_between([a, b], *([v] * 2 for v in m["ci95"]), color="red", alpha=0.15)
    ax.set_xscale("log")
    lo_q, hi_q = np.quantile(ratio, [0.005, 0.995])
    ax.set_ylim(max(0.0, float(lo_q) - 0.05), float(hi_q) + 0.05)
    ax.set_xlabel("sale price"), ax.set_ylabel("valuation / sale price")
    ax.set_title("Ratio study: ratios by sale price, quintile medians with 95% intervals")
    ax.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
