"""Old import path of the synthetic-city API; import from :mod:`houseprice.synth.city` instead.

Kept only so that callers outside ``houseprice.synth`` (CLI, jobs, notebooks, benchmarks, the
bench) keep working until they import the package; it defines nothing of its own.
"""

from __future__ import annotations

from houseprice.synth.city import (
    HOUSE_COLUMNS,
    ORACLE_COLUMNS,
    CityConfig,
    SyntheticCity,
    contact_sheet,
    generate_city,
    simulate_city,
    tile_masks,
)

__all__ = [
    "HOUSE_COLUMNS",
    "ORACLE_COLUMNS",
    "CityConfig",
    "SyntheticCity",
    "contact_sheet",
    "generate_city",
    "simulate_city",
    "tile_masks",
]
