"""Thumbnails of the tiles and heatmaps a valuation map shows, stored once each.

This module owns downscaling an image file to ``thumb_px`` (JPEG, or PNG when it has
transparency) and the shared image table: a single-file map embeds each thumbnail as a
``data:`` URI, a folder map writes it to ``img/<n>.jpg|png`` and refers to it by relative URL,
so the browser loads it only when a popup or overlay needs it. Missing or unreadable files are
reported with row, house_id and column through ``houseprice.maps.table.Problems``.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from houseprice.maps.table import Problems, is_missing

__all__ = ["ImageTable", "Thumbnail", "thumbnail"]


@dataclass(frozen=True)
class Thumbnail:
    """One encoded thumbnail and the size of the file it was made from."""

    data: bytes  # encoded JPEG or PNG
    mime: str  # image/jpeg or image/png
    width: int
    height: int
    source_size: tuple[int, int]

    @property
    def uri(self) -> str:
        """The image as a ``data:`` URI."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def thumbnail(path: Path, thumb_px: int, jpeg_quality: int) -> Thumbnail:
    """Downscale an image to fit in thumb_px x thumb_px and encode it (JPEG, PNG with alpha)."""
    with Image.open(path) as opened:
        source_size = opened.size
        opened.draft("RGB", (thumb_px, thumb_px))  # JPEG: decode at reduced scale; else no-op
        has_alpha = opened.mode in ("RGBA", "LA", "PA") or (
            opened.mode == "P" and "transparency" in opened.info
        )
        image = opened.convert("RGBA" if has_alpha else "RGB")
    image.thumbnail((thumb_px, thumb_px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if has_alpha:
        image.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    else:
        image.save(buffer, format="JPEG", quality=jpeg_quality, optimize=True)
        mime = "image/jpeg"
    return Thumbnail(buffer.getvalue(), mime, image.width, image.height, source_size)


class ImageTable:
    """Thumbnails stored once each (two houses sharing a file share one entry).

    Entries are ``data:`` URIs, or with ``folder`` files ``<folder>/img/<n>.jpg|png`` written
    at once and referred to by their relative URL (a folder map loads them on demand).
    """

    def __init__(self, thumb_px: int, jpeg_quality: int, folder: Path | None = None) -> None:
        self.thumb_px = thumb_px
        self.jpeg_quality = jpeg_quality
        self.folder = folder
        self.entries: list[list[Any]] = []  # [uri, width, height]
        self._index: dict[Path, tuple[int, Thumbnail]] = {}

    def add(
        self, value: Any, row: int, house_id: str, column: str, problems: Problems
    ) -> tuple[int, Thumbnail | None]:
        """Index of the thumbnail of ``value`` (-1 if no image), reporting unreadable files."""
        if is_missing(value):
            return -1, None
        path = Path(str(value)).expanduser().resolve()
        if path in self._index:
            index, thumb = self._index[path]
            return index, thumb
        if not path.is_file():
            problems.add(row, house_id, column, f"image file not found: {path}")
            return -1, None
        try:
            thumb = thumbnail(path, self.thumb_px, self.jpeg_quality)
        except (UnidentifiedImageError, OSError) as err:
            problems.add(row, house_id, column, f"cannot read {path} as an image ({err})")
            return -1, None
        self.entries.append([self._store(thumb), thumb.width, thumb.height])
        self._index[path] = (len(self.entries) - 1, thumb)
        return len(self.entries) - 1, thumb

    def _store(self, thumb: Thumbnail) -> str:
        if self.folder is None:
            return thumb.uri
        name = f"img/{len(self.entries):06d}.{'png' if thumb.mime == 'image/png' else 'jpg'}"
        target = self.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(thumb.data)  # inside the map's temporary folder (atomic_directory)
        return name
