"""Synthetic birds: a CUB-200-2011 stand-in written in the official folder layout.

Modules, each importing only those before it: ``config`` (:class:`BirdsConfig`), ``classes``
(palette, attributes, :func:`make_classes`), ``parts`` (a bird's polygons), ``render``
(:func:`render_image`), ``writer`` (:func:`generate_birds`, :func:`write_birds`) and ``sheet``
(:func:`contact_sheet`). The layout written: ``data_specs/cub.md``.
"""

from __future__ import annotations

from houseprice.synth.birds.classes import (
    BEAK_COLOURS,
    BEAK_LENGTHS,
    BODY_SHAPES,
    COLOURS,
    EYE_RINGS,
    PALETTE,
    SIBLING_MUTATIONS,
    TAIL_SHAPES,
    WING_PATTERNS,
    BirdClass,
    class_folder,
    make_classes,
)
from houseprice.synth.birds.config import BirdsConfig
from houseprice.synth.birds.render import render_image
from houseprice.synth.birds.sheet import contact_sheet
from houseprice.synth.birds.writer import (
    GENERATOR_NAME,
    GENERATOR_VERSION,
    generate_birds,
    mask_bbox_xywh,
    write_birds,
)

__all__ = [
    "BEAK_COLOURS",
    "BEAK_LENGTHS",
    "BODY_SHAPES",
    "COLOURS",
    "EYE_RINGS",
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "PALETTE",
    "SIBLING_MUTATIONS",
    "TAIL_SHAPES",
    "WING_PATTERNS",
    "BirdClass",
    "BirdsConfig",
    "class_folder",
    "contact_sheet",
    "generate_birds",
    "make_classes",
    "mask_bbox_xywh",
    "render_image",
    "write_birds",
]
