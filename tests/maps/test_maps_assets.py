"""Tests for houseprice.maps.assets: the inlined Leaflet says what to install when missing."""

from __future__ import annotations

import sys

import pytest

from houseprice.maps.assets import offline_assets


def test_missing_asset_packages_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    offline_assets.cache_clear()
    monkeypatch.setitem(sys.modules, "xstatic.pkg.leaflet", None)  # import now fails
    try:
        with pytest.raises(ImportError, match="pip install xstatic-leaflet"):
            offline_assets()
    finally:
        offline_assets.cache_clear()
