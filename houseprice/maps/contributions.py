"""The popup's contribution chart: how each group of features moves one house's price.

This module owns turning a house's ``base_price`` and ``contrib_<group>`` cells (money amounts
that add up to the prediction, see houseprice/pricing/contributions.py) into a small bar chart
of HTML rows: the base price first, then every group sorted by the size of its contribution,
positive bars to the right of the axis and negative ones to the left, each with its signed
amount ("image +42,300", "location −18,000"). A group without a value (NaN: e.g. the image of a
house that had no usable tile) is listed last as "not used". Styles live in
``valuation_map_extras.css``; every text goes through ``html.escape``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from houseprice.maps.table import BASE_PRICE_COLUMN, CONTRIBUTION_PREFIX

__all__ = ["contribution_html", "group_label", "signed_money"]

_MINUS = "\u2212"


def group_label(column: str) -> str:
    """Reader's name of a ``contrib_<group>`` column: ``contrib_sale_time`` -> "sale time"."""
    return column[len(CONTRIBUTION_PREFIX) :].replace("_", " ")


def signed_money(value: float) -> str:
    """``+42,300`` / ``−18,000`` (a true minus sign), rounded to whole units."""
    rounded = round(value)
    sign = "+" if rounded > 0 else (_MINUS if rounded < 0 else "±")
    return f"{sign}{abs(rounded):,.0f}"


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def contribution_html(record: dict[str, Any], columns: Sequence[str]) -> str:
    """The chart of one house (``""`` when ``columns`` is empty).

    Bar lengths are relative to the largest contribution of this house (it spans half the bar
    cell), so the chart reads at a glance which group moves the price most.
    """
    if not columns:
        return ""
    values = [(column, _number(record[column])) for column in columns]
    used = sorted(
        ((c, v) for c, v in values if math.isfinite(v)), key=lambda item: (-abs(item[1]), item[0])
    )
    unused = [c for c, v in values if not math.isfinite(v)]
    largest = max((abs(v) for _, v in used), default=0.0)
    rows = [
        '<tr class="hp-c-base"><th>base price</th><td></td>'
        f"<td>{float(record[BASE_PRICE_COLUMN]):,.0f}</td></tr>"
    ]
    for column, value in used:
        percent = 50.0 * abs(value) / largest if largest > 0 else 0.0
        kind = "up" if value >= 0 else "down"
        rows.append(
            f'<tr class="hp-c-{kind}"><th>{html.escape(group_label(column))}</th>'
            f'<td class="hp-c-bar"><i style="width:{percent:.1f}%"></i></td>'
            f"<td>{html.escape(signed_money(value))}</td></tr>"
        )
    rows.extend(
        f'<tr class="hp-c-unused"><th>{html.escape(group_label(column))}</th><td></td>'
        "<td>not used</td></tr>"
        for column in unused
    )
    return (
        '<div class="hp-contrib"><div class="hp-c-title">price = base + contributions</div>'
        f'<table class="hp-c-table"><tbody>{"".join(rows)}</tbody></table></div>'
    )
