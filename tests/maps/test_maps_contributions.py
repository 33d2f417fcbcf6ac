"""Tests for the popup's contribution chart (houseprice.maps.contributions) and its columns."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from map_synthetic import MakeValuations, render, with_contributions

from houseprice.errors import UserInputError
from houseprice.maps.contributions import contribution_html, group_label, signed_money
from houseprice.maps.table import attribute_columns, checked_frame, contribution_columns

_ROW = re.compile(r'<tr class="hp-c-(\w+)"><th>([^<]*)</th>.*?<td>([^<]*)</td></tr>')


def _chart_rows(chart: str) -> list[tuple[str, str, str]]:
    return _ROW.findall(chart)


def test_signed_money_and_labels() -> None:
    assert signed_money(42_300.4) == "+42,300"
    assert signed_money(-18_000) == "\u221218,000"
    assert signed_money(0.2) == "±0"
    assert group_label("contrib_sale_time") == "sale time"


def test_chart_sorted_by_size_with_signs_and_unused_last() -> None:
    record = {
        "base_price": 310_000.0,
        "contrib_location": -18_000.0,
        "contrib_image": math.nan,
        "contrib_area": 42_300.0,
        "contrib_bedrooms": 1_000.0,
    }
    chart = contribution_html(
        record, ["contrib_location", "contrib_image", "contrib_area", "contrib_bedrooms"]
    )
    rows = _chart_rows(chart)
    assert rows == [
        ("base", "base price", "310,000"),
        ("up", "area", "+42,300"),
        ("down", "location", "\u221218,000"),
        ("up", "bedrooms", "+1,000"),
        ("unused", "image", "not used"),
    ]
    widths = [float(w) for w in re.findall(r"width:([\d.]+)%", chart)]
    assert widths[0] == 50.0 and widths == sorted(widths, reverse=True)
    assert contribution_html(record, []) == ""


def test_contribution_columns_are_not_attributes(
    tmp_path: Path, make_valuations: MakeValuations
) -> None:
    frame = with_contributions(make_valuations(4))
    assert "base_price" not in attribute_columns(frame)
    assert contribution_columns(frame) == [c for c in frame.columns if c.startswith("contrib_")]
    _, data = render(tmp_path, frame)
    for house, (_, row) in zip(data["houses"], frame.iterrows(), strict=True):
        assert "contrib_" not in house["info"] and "base_price" not in house["info"]
        assert 'class="hp-contrib"' in house["info"]
        amounts = [
            float(v.replace("\u2212", "-").replace(",", ""))
            for kind, _, v in _chart_rows(house["info"])
            if kind in ("base", "up", "down")
        ]
        # the chart's rounded amounts add up to the prediction (to rounding)
        assert sum(amounts) == pytest.approx(row["predicted_price"], abs=len(amounts))


def test_no_contribution_columns_no_chart(tmp_path: Path, make_valuations: MakeValuations) -> None:
    page, data = render(tmp_path, make_valuations(3))
    assert all("hp-contrib" not in house["info"] for house in data["houses"])
    assert "hp-c-table" not in page and "areaLayer" not in page  # no extras inlined
    # contrib_* without base_price is not a chart either (and not an attribute)
    frame = make_valuations(2).assign(contrib_area=1.0)
    assert contribution_columns(frame) == [] and "contrib_area" not in attribute_columns(frame)


def test_bad_contribution_cells_are_reported(make_valuations: MakeValuations) -> None:
    frame = with_contributions(make_valuations(3))
    frame["contrib_area"] = frame["contrib_area"].astype(object)
    frame.loc[1, "contrib_area"] = "lots"
    frame.loc[2, "base_price"] = np.nan
    with pytest.raises(UserInputError) as err:
        checked_frame(frame)
    message = str(err.value)
    assert "row 1" in message and "'contrib_area'" in message
    assert "row 2" in message and "'base_price'" in message
    frame = with_contributions(make_valuations(3))
    frame.loc[0, "contrib_image"] = np.nan  # "not used" is fine
    assert checked_frame(frame)["contrib_image"].isna().sum() == 1
