"""Offline Leaflet assets: the JavaScript and CSS a valuation map inlines into its HTML.

This module owns where Leaflet and Leaflet.markercluster come from and how they are made
self-contained. They come from the PyPI packages ``xstatic-leaflet`` and
``xstatic-leaflet-markercluster`` (byte-identical copies of the upstream npm ``dist`` files),
so the repository carries no vendored third-party blobs and a plain ``pip install`` brings
everything the map needs. The files are read at render time and rewritten so that the page
makes no request at all: images referenced from CSS become ``data:`` URIs and source-map
comments are removed. Both upstream licences are embedded next to the code they cover.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["InlineAssets", "offline_assets"]

_LEAFLET_LICENSE = """Leaflet {version} - BSD 2-Clause License

Copyright (c) 2010-2022, Vladimir Agafonkin
Copyright (c) 2010-2011, CloudMade
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE."""

_MARKERCLUSTER_LICENSE = """Leaflet.markercluster {version} - MIT License

Copyright 2012 David Leaver

Permission is hereby granted, free of charge, to any person obtaining
a copy of this software and associated documentation files (the
"Software"), to deal in the Software without restriction, including
without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to
permit persons to whom the Software is furnished to do so, subject to
the following conditions:

The above copyright notice and this permission notice shall be
included in all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE
LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION
OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."""

_INSTALL_HINT = (
    "the offline map inlines Leaflet from the PyPI packages 'xstatic-leaflet' and "
    "'xstatic-leaflet-markercluster'; install them with "
    "`pip install xstatic-leaflet xstatic-leaflet-markercluster` (or `pip install -e .`)"
)

# `url(images/x.png)` or `url("images/x.png")` in Leaflet's CSS; `#default#VML` is left alone
# (an old-IE behaviour that Chromium drops at parse time without fetching anything).
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(images/[A-Za-z0-9_.-]+\.png)\1\s*\)""")
_SOURCE_MAP = re.compile(
    r"^\s*(//[#@]\s*sourceMappingURL=.*|/\*[#@]\s*sourceMappingURL=.*?\*/)\s*$", re.MULTILINE
)


@dataclass(frozen=True)
class InlineAssets:
    """Self-contained JavaScript and CSS text, ready to be placed in <script>/<style> tags."""

    javascript: str
    css: str
    versions: dict[str, str]


def _read(base: Path, name: str) -> str:
    path = base / name
    if not path.is_file():
        raise FileNotFoundError(f"offline map asset missing: {path}; {_INSTALL_HINT}")
    return path.read_text(encoding="utf-8")


def _css_with_data_uris(css: str, base: Path) -> str:
    """Replace every ``url(images/…)`` with a base64 data URI of that file."""

    def to_data_uri(match: re.Match[str]) -> str:
        image = base / match.group(2)
        if not image.is_file():
            raise FileNotFoundError(
                f"image {image} referenced by Leaflet CSS is missing; {_INSTALL_HINT}"
            )
        encoded = base64.b64encode(image.read_bytes()).decode("ascii")
        return f'url("data:image/png;base64,{encoded}")'

    return _CSS_URL.sub(to_data_uri, css)


def _check_inlinable(text: str, closing_tag: str, what: str) -> str:
    """Refuse text that would end its <script>/<style> element early or fetch a source map."""
    if closing_tag in text.lower():
        raise RuntimeError(f"{what} contains '{closing_tag}' and cannot be inlined safely")
    if "sourcemappingurl" in text.lower():
        raise RuntimeError(f"{what} still references a source map after stripping")
    return text


@functools.lru_cache(maxsize=1)
def offline_assets() -> InlineAssets:
    """Leaflet + Leaflet.markercluster as inline text with no external reference.

    Raises:
        ImportError: the xstatic packages are not installed (message says what to install).
    """
    try:
        import xstatic.pkg.leaflet as xs_leaflet
        import xstatic.pkg.leaflet_markercluster as xs_cluster
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err

    leaflet_dir = Path(xs_leaflet.BASE_DIR)
    cluster_dir = Path(xs_cluster.BASE_DIR)
    versions = {
        "leaflet": str(xs_leaflet.VERSION),
        "leaflet.markercluster": str(xs_cluster.VERSION),
    }

    leaflet_js = _SOURCE_MAP.sub("", _read(leaflet_dir, "leaflet.js"))
    cluster_js = _SOURCE_MAP.sub("", _read(cluster_dir, "leaflet.markercluster.js"))
    licences = (
        _LEAFLET_LICENSE.format(version=versions["leaflet"])
        + "\n\n"
        + _MARKERCLUSTER_LICENSE.format(version=versions["leaflet.markercluster"])
    )
    javascript = f"/*!\n{licences}\n*/\n{leaflet_js}\n;\n{cluster_js}\n"

    leaflet_css = _css_with_data_uris(_read(leaflet_dir, "leaflet.css"), leaflet_dir)
    # Only the animation rules: cluster icons are styled by houseprice, so the default
    # green/yellow/orange count colours (which would read as outcomes) are not loaded.
    cluster_css = _read(cluster_dir, "MarkerCluster.css")
    css = f"{leaflet_css}\n{cluster_css}\n"

    return InlineAssets(
        javascript=_check_inlinable(javascript, "</script", "inlined Leaflet JavaScript"),
        css=_check_inlinable(css, "</style", "inlined Leaflet CSS"),
        versions=versions,
    )
