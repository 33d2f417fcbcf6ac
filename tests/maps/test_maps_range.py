"""The popup's price-range bar (houseprice.maps.payload.range_html)."""

from __future__ import annotations

import re

import pandas as pd

from houseprice.maps.payload import range_html
from houseprice.maps.table import attribute_columns


def _left(html: str, cls: str) -> float:
    return float(re.search(rf'class="{cls}" style="left:([0-9.]+)%', html).group(1))


def test_bar_places_range_valuation_and_sale_on_one_axis():
    rec = {
        "price_low": 180_000.0,
        "price_high": 240_000.0,
        "predicted_price": 205_000.0,
        "price": 250_000.0,
        "interval_level": 0.8,
        "fsd": 0.12,
        "confidence": "high",
    }
    html = range_html(rec)
    assert "80% range 180,000 – 240,000 · FSD 0.12 · confidence high" in html
    assert "left:0.0%;width:85.7%" in html  # axis 180k..250k: the range fills 60/70
    assert _left(html, "hp-r-pred") == 35.7 and _left(html, "hp-r-sold") == 100.0
    cheap_sale = range_html({**rec, "price": 160_000.0})  # axis 160k..240k
    assert "left:25.0%;width:75.0%" in cheap_sale and _left(cheap_sale, "hp-r-sold") == 0.0
    no_sale = range_html({**rec, "price": float("nan")})
    assert "hp-r-sold" not in no_sale and "width:100.0%" in no_sale


def test_no_range_no_bar_and_range_columns_are_not_attributes():
    assert range_html({"predicted_price": 1.0, "price_low": None, "price_high": 2.0}) == ""
    frame = pd.DataFrame(
        columns=["house_id", "latitude", "longitude", "predicted_price", "bedrooms",
                 "price_low", "price_high", "interval_level", "fsd", "confidence"]
    )  # fmt: skip
    assert attribute_columns(frame) == ["bedrooms"]
