"""Tests for houseprice.maps.layers: the folium page and the script calls it contains."""

from __future__ import annotations

import ast
import re
from importlib import resources
from pathlib import Path

from map_synthetic import MakeValuations, render

import houseprice.maps
from houseprice.maps.layers import DATA_ELEMENT_ID


def test_page_calls_the_map_script_in_order(
    tmp_path: Path, make_valuations: MakeValuations
) -> None:
    page, _ = render(tmp_path, make_valuations(3), show_heatmaps=True)
    assert page.count(f'id="{DATA_ELEMENT_ID}"') == 1
    body = page[page.index('<div class="folium-map"') :]
    calls = [
        body.index("window.houseprice.houseLayers("),
        body.index("house_markers_0002_all.heatmaps"),
        body.index("L.control.layers("),
        body.index("window.houseprice.fitView(map_0001"),
    ]
    assert calls == sorted(calls)  # the fit runs once the controls it pads away exist
    assert "<link" not in page and "<script src" not in page


def test_map_script_functions_are_small() -> None:
    """valuation_map.js is one file of small functions (markers, overlays, popups, view)."""
    script = resources.files("houseprice.maps").joinpath("valuation_map.js").read_text()
    lines = script.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^  function \w+\(", line)]
    assert len(starts) >= 10
    for start in starts:
        end = next(i for i in range(start, len(lines)) if lines[i] == "  }")
        assert end - start <= 40, lines[start]


def test_maps_imports_only_leaves() -> None:
    """maps may import houseprice.errors, houseprice.artifacts and itself, nothing else."""
    allowed = ("houseprice.errors", "houseprice.artifacts", "houseprice.maps")
    for path in Path(houseprice.maps.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "houseprice":
                    assert name.startswith(allowed), f"{path.name} imports {name}"
