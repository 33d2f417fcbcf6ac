"""The synthetic city: a procedurally generated city with price drivers visible in its tiles.

Modules, each importing only those before it: ``config`` (:class:`CityConfig`, constants),
``geometry`` (fields, bands, rectangles), ``layout`` (streets, blocks, lots, river, highway),
``objects`` (houses, pools, trees), ``world`` (:func:`build_world`), ``texture`` and ``render``
(pictures and label rasters), ``simulate`` (sales and prices, tile masks), ``writer``
(:func:`generate_city`) and ``sheet`` (:func:`contact_sheet`). The model in words:
``data_specs/synth_city.md``.
"""

from __future__ import annotations

from houseprice.synth.city.config import HOUSE_COLUMNS, ORACLE_COLUMNS, CityConfig
from houseprice.synth.city.render import MASK_CLASSES, render_classes, render_rgb
from houseprice.synth.city.sheet import contact_sheet
from houseprice.synth.city.simulate import SyntheticCity, simulate_city, tile_masks
from houseprice.synth.city.world import World, build_world
from houseprice.synth.city.writer import GENERATOR_NAME, GENERATOR_VERSION, generate_city

__all__ = [
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "HOUSE_COLUMNS",
    "MASK_CLASSES",
    "ORACLE_COLUMNS",
    "CityConfig",
    "SyntheticCity",
    "World",
    "build_world",
    "contact_sheet",
    "generate_city",
    "render_classes",
    "render_rgb",
    "simulate_city",
    "tile_masks",
]
