"""The Markdown page of an evidence report (:func:`houseprice.valuation.evidence.evidence_scores`).

Overall table (share of heatmap mass in the evidence mask, × uniform, pointing game), the
per-driver table (share / pointing game / houses) and the sign-agreement table.
"""

from __future__ import annotations

from typing import Any

from houseprice.valuation.drivers import DRIVERS


def _who(split: str) -> str:
    if split == "validation":
        return (
            "validation houses (the last 25 % of the training houses by date, their own "
            "database entries left out)"
        )
    return f"unseen {split} houses"


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def _driver_table(report: dict[str, Any]) -> list[str]:
    drv = report["drivers"]
    head = "| method | " + " | ".join(DRIVERS) + " |"
    lines = [head, "|---|" + "---:|" * len(DRIVERS)]
    for k, per in drv.items():
        cells = [
            f"{_fmt(per[d]['ratio'])} / {_fmt(per[d]['pointing'], '.2f')} ({per[d]['n']})"
            for d in DRIVERS
        ]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return lines


def _signed_table(signed: dict[str, Any]) -> list[str]:
    lines = [
        "| method | " + " | ".join(signed["transfer"]) + " |",
        "|---|" + "---:|" * len(signed["transfer"]),
    ]
    for k in ("transfer", "direct"):
        cells = [f"{_fmt(v['agree'], '.2f')} ({v['n']})" for v in signed[k].values()]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return lines


def evidence_markdown(report: dict[str, Any]) -> str:
    split = report.get("split", "test")
    lines = [
        "# Explanations vs evidence masks",
        "",
        f"Mean heatmap mass inside the generator's evidence mask (objects that moved the "
        f"price) and pointing-game hit rate, {report['n_houses']} {_who(split)}, "
        f"{report['tile_px']}-px tiles, explained layer `{report.get('layer', 'final')}`.",
        "",
        "| method | ratio | × uniform | pointing |",
        "|---|---:|---:|---:|",
    ]
    u = report["uniform"]
    point = report.get("evidence_pointing", {})
    for k, v in report["evidence_mask_ratio"].items():
        lines.append(f"| {k} | {v:.3f} | {v / u:.2f} | {_fmt(point.get(k), '.2f')} |")
    lines.append(f"| uniform | {u:.3f} | 1.00 | {_fmt(point.get('uniform'), '.2f')} |")
    lines += ["", f"`transfer` uses the `{report['key']}` search key."]
    if "centre_prior" in report["evidence_mask_ratio"]:
        lines.append(
            "`centre_prior` is an image-independent Gaussian on the tile centre "
            f"(σ = {report.get('centre_prior_sigma', 0.1)} × tile): tiles are centred on the "
            "house, so a method shows image-specific evidence only where it beats this row."
        )
    if "drivers" in report:
        lines += [
            "",
            "## Per driver",
            "",
            "Share of heatmap mass on the driver's evidence pixels / pointing-game hit rate "
            "(houses where the driver applies, |effect| ≥ 0.05). Pointing game: the map's "
            f"maximum within {report['pointing_tolerance_px']:.1f} px of the driver's pixels "
            "(Zhang et al.'s 15 px at 224 px, scaled to the tile); tied maxima count as the "
            f"share of tied pixels that hit. Transfer, centre prior and uniform: all "
            f"{report['n_houses_all']} evidence houses; the other methods: the first "
            f"{report['n_houses']} and every later one with water, park or highway evidence "
            f"({report.get('n_houses_bounded', report['n_houses'])} houses).",
            "",
            *_driver_table(report),
        ]
    elif "drivers_skipped" in report:
        lines += ["", f"Per-driver scores skipped: {report['drivers_skipped']}"]
    if "signed" in report:
        lines += [
            "",
            "## Signed maps",
            "",
            "Share of houses whose signed map's mass on the driver's pixels has the "
            "generator's sign (highway lowers the price: more negative than positive mass; "
            "the others raise it: more positive), with counts; pair head "
            f"`{report['signed']['head']}`.",
            "",
            *_signed_table(report["signed"]),
        ]
    return "\n".join(lines) + "\n"
