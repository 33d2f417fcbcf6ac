"""The pricing benchmark's report: markdown tables and the lift-with-intervals plot."""

from __future__ import annotations

import io
from typing import Any


def _pts(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:+.1f}"


def _ci(s: dict[str, Any]) -> str:
    ci = s.get("ci95")
    return "–" if not ci else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def lift_table(summary: dict[str, Any]) -> str:
    """Markdown: per attribute set, accuracy w/o VF, mean lift ± sd, 95% CI, oracle share."""
    lines = [
        "| attributes | w/o VF (%) | lift (points, mean ± sd) | 95% interval "
        "| share of oracle lift |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in summary["sets"].items():
        share = s.get("share_of_oracle")
        lines.append(
            f"| {name if name != 'none' else 'none (mean price)'} | "
            f"{100 * s['without_visual']['mean']:.1f} | {_pts(s['mean'])} ± {100 * s['std']:.1f} "
            f"| {_ci(s)} | {'–' if share is None else f'{100 * share:.0f}%'} |"
        )
    o = summary["oracle_lift"]
    lines.append(
        f"| oracle drivers | | {_pts(o['mean'])} ± {100 * o['std']:.1f} | {_ci(o)} | 100% |"
    )
    return "\n".join(lines)


def report_markdown(report: dict[str, Any], plot_name: str | None = None) -> str:
    test, n = report["test"], len(report["runs"])
    lines = [
        f"# Pricing benchmark — profile {report['profile']}",
        "",
        f"{n} runs: sealed city seeds {report['city_seeds']} × training seeds "
        f"{report['training_seeds']}, {report['houses_per_city']:,} houses per city; every "
        "city's test split (last 40% by date) is scored once. Lift = 10% accuracy with minus "
        "without visual features, in points.",
        "",
        "## Test (sealed)",
        "",
        lift_table(test),
        "",
        "## Validation (last 25% of each training period; for reference, not chosen on here)",
        "",
        lift_table(report["validation"]),
    ]
    if "ames" in report:
        a = report["ames"]
        lines += [
            "",
            f"## Ames (real, no tiles; {a['test_size']} test sales; LightGBM seed per run)",
            "",
            "| attributes | 10% accuracy (%, mean ± sd) |",
            "|---|---:|",
        ]
        lines += [
            f"| {k} | {100 * v['mean']:.1f} ± {100 * v['std']:.1f} |"
            for k, v in a["accuracy"].items()
        ]
    lines += [
        "",
        "## Runs",
        "",
        "| city seed | training seed | G,Bed,Bath,T,A lift | oracle lift |",
    ]
    lines.append("|---:|---:|---:|---:|")
    for r in report["runs"]:
        t = r["test"]
        lines.append(
            f"| {r['city_seed']} | {r['train_seed']} | {_pts(t['lift'].get('G,Bed,Bath,T,A'))} "
            f"| {_pts(t['oracle_lift'])} |"
        )
    lines += _ratio_rows(report["runs"])
    if plot_name:
        lines += ["", f"![lift per attribute set with 95% intervals]({plot_name})"]
    lines.append(f"\nWall time {report['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def _ratio_rows(runs: list[dict[str, Any]]) -> list[str]:
    """Per run: the IAAO ratio study of the test split and the 80%/90% range coverage."""
    from houseprice.valuation.assessment_report import figure_text

    runs = [r for r in runs if "ratio_study" in r]
    if not runs:
        return []
    lines = [
        "",
        "## IAAO ratio study and price-range coverage per run (test splits)",
        "",
        "| city seed | training seed | median ratio | COD | PRD | PRB | 80% / 90% coverage |",
        "|---:|---:|---|---|---|---|---:|",
    ]
    for r in runs:
        s = r["ratio_study"]
        figs = " | ".join(figure_text(k, s[k]) for k in ("median_ratio", "cod", "prd", "prb"))
        pr = r.get("price_ranges") or {}
        cov = " / ".join(
            f"{100 * pr[lv]['with_visual']['coverage']:.1f}" for lv in ("0.8", "0.9") if lv in pr
        )
        lines.append(f"| {r['city_seed']} | {r['train_seed']} | {figs} | {cov or '–'} |")
    return lines


def plot_lifts(report: dict[str, Any]) -> bytes:
    """PNG: mean lift per attribute set with 95% intervals, runs as dots, the oracle line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = report["test"]["sets"]
    names = list(sets)
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, name in enumerate(names):
        s = sets[name]
        ax.scatter([i] * len(s["values"]), [100 * v for v in s["values"]], s=10, c="grey")
        if s["ci95"]:
            lo, hi = (100 * v for v in s["ci95"])
            ax.errorbar(i, 100 * s["mean"], yerr=[[100 * s["mean"] - lo], [hi - 100 * s["mean"]]],
                        fmt="o", c="tab:blue", capsize=4)  # fmt: skip
    ax.axhline(100 * report["test"]["oracle_lift"]["mean"], ls="--", c="tab:green", label="oracle")
    ax.axhline(0, c="k", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel("lift (points)")
    ax.set_title(f"Visual-feature lift, {len(report['runs'])} runs (test splits)")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
