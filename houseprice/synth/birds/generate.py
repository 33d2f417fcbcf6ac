"""Old import path of the synthetic-birds API; import from :mod:`houseprice.synth.birds` instead.

Kept only so that callers outside ``houseprice.synth`` (CLI, the bench) keep working until they
import the package; it defines nothing of its own.
"""

from __future__ import annotations

from houseprice.synth.birds import (
    PALETTE,
    SIBLING_MUTATIONS,
    BirdClass,
    BirdsConfig,
    contact_sheet,
    generate_birds,
    make_classes,
    mask_bbox_xywh,
    render_image,
    write_birds,
)

__all__ = [
    "PALETTE",
    "SIBLING_MUTATIONS",
    "BirdClass",
    "BirdsConfig",
    "contact_sheet",
    "generate_birds",
    "make_classes",
    "mask_bbox_xywh",
    "render_image",
    "write_birds",
]
