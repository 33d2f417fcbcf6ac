"""Mapping a user's table's columns onto the house-record contract (data_specs/import.md).

This module owns :func:`match_columns`: explicit ``contract=source`` pairs first, then
case-insensitive automatic matching of common names (``SalePrice`` -> ``price``, ``Lat`` ->
``latitude``, ``Gr_Liv_Area`` -> ``area_sqft`` ...). Names are compared after lower-casing and
dropping everything that is not a letter or digit, so ``Sale Price``, ``sale_price`` and
``SalePrice`` are the same name. The mapping says, per contract column, which source column
feeds it and how it was found, so the CLI can print it. Building the contract rows from the
mapping is :mod:`houseprice.data.houses.rows`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from houseprice.errors import UserInputError, quote, shorten

#: Values read as missing in the numeric and date columns (case-insensitive).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
REJECTED_COLUMNS = ["source_row", "house_id", "column", "value", "reason"]

#: Contract columns the importer fills from a user's file, each with the names it recognises
#: (normalised; the first alias found in the file wins). ``image``/``mask`` are never matched
#: automatically: the importer writes them itself from ``--imagery``/``--tiles``.
ALIASES: dict[str, tuple[str, ...]] = {
    "house_id": (
        "houseid", "id", "parcelid", "pid", "parcel", "parcelnumber", "apn", "saleid",
        "propertyid", "uid", "objectid", "fid",
    ),
    "latitude": ("latitude", "lat", "y", "northing", "pointy", "ycoord", "ycoordinate"),
    "longitude": (
        "longitude", "lon", "lng", "long", "x", "easting", "pointx", "xcoord", "xcoordinate",
    ),
    "bedrooms": ("bedrooms", "beds", "bed", "bedroom", "nbedrooms", "bedroomabvgr", "numbedrooms"),
    "bathrooms": ("bathrooms", "baths", "bath", "bathroom", "nbathrooms", "numbathrooms"),
    "sold_date": (
        "solddate", "saledate", "date", "datesold", "sold", "saledt", "dateofsale", "salesdate",
    ),
    "area_sqft": (
        "areasqft", "sqft", "area", "livingarea", "grlivarea", "sqftliving", "livingsqft",
        "floorarea", "squarefeet", "sqfeet", "totalsqft",
    ),
    "price": ("price", "saleprice", "soldprice", "salesprice", "saleamount", "salesamount"),
}  # fmt: skip

#: Contract columns a user may name with ``--column`` (the importer writes image/mask itself).
MAPPABLE = tuple(ALIASES)


def normalise(name: str) -> str:
    """The comparison form of a column name: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


@dataclass(frozen=True)
class Match:
    """One contract column and the source column that feeds it (``how``: explicit/auto)."""

    contract: str
    source: str
    how: str  # "explicit" | "auto"


@dataclass
class ColumnMapping:
    """The result of :func:`match_columns`: matched columns, extras and renamed extras."""

    matches: dict[str, Match]
    extras: list[str]  # source columns kept as attributes, in file order
    renamed: dict[str, str] = field(default_factory=dict)  # extra source name -> kept name
    notes: dict[str, str] = field(default_factory=dict)  # contract column fed otherwise -> how

    def source_of(self, contract: str) -> str | None:
        m = self.matches.get(contract)
        return m.source if m else None

    def explicit(self, contract: str) -> bool:
        m = self.matches.get(contract)
        return m is not None and m.how == "explicit"

    def lines(self) -> list[str]:
        """Human-readable mapping, one line per contract column (what the CLI prints)."""
        out = []
        for name in MAPPABLE:
            m = self.matches.get(name)
            how = f"{quote(m.source)} ({m.how})" if m else shorten(self.notes.get(name, "(none)"))
            out.append(f"  {name:<10} <- {how}")
        if self.extras:
            kept = [self.renamed.get(c, c) for c in self.extras]
            out.append(f"  extra columns kept as attributes: {shorten(', '.join(map(str, kept)))}")
        for src, new in self.renamed.items():
            out.append(f"  {quote(src)} renamed to {quote(new)} (its name is a contract column)")
        return out


def parse_column_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``["price=SalePrice", ...]`` (the CLI's ``--column``) as a ``{contract: source}`` dict."""
    out: dict[str, str] = {}
    for p in pairs:
        contract, sep, source = str(p).partition("=")
        if not sep or not contract.strip() or not source.strip():
            raise UserInputError(
                f"--column {quote(p)}: expected contract=source, e.g. price=SalePrice"
            )
        out[contract.strip()] = source.strip()
    return out


def match_columns(
    columns: Iterable[str],
    explicit: Mapping[str, str] | None = None,
    *,
    origin: str = "records",
    skip: Iterable[str] = (),
    omit: Iterable[str] = (),
) -> ColumnMapping:
    """Map the file's ``columns`` to the contract.

    ``explicit`` pairs (``{contract: source}``) win; every other contract column takes the
    first of its :data:`ALIASES` found in the file (case and punctuation ignored). A source
    column feeds at most one contract column. ``skip`` names columns never matched nor kept
    (the geometry column); ``omit`` names contract columns not matched automatically (the
    coordinates, when a geometry column gives them). Raises :class:`UserInputError` for an
    unknown contract name or a source column that is not in the file (listing its columns).
    """
    cols = [str(c) for c in columns]
    skipped = {str(s) for s in skip}
    available = [c for c in cols if c not in skipped]
    explicit = dict(explicit or {})
    listing = shorten(", ".join(repr(c) for c in available))
    matches: dict[str, Match] = {}
    used: set[str] = set()
    for contract, source in explicit.items():
        if contract not in ALIASES:
            raise UserInputError(
                f"--column {shorten(contract)}={shorten(source)}: {quote(contract)} is not a "
                "contract column you can "
                f"map (one of: {', '.join(MAPPABLE)})"
            )
        if source not in available:
            raise UserInputError(
                f"{origin}: --column {contract}={shorten(source)}: no column {quote(source)} in "
                "the file "
                f"(columns: {listing})"
            )
        if source in used:
            raise UserInputError(f"--column: source column {quote(source)} is mapped twice")
        matches[contract] = Match(contract, source, "explicit")
        used.add(source)
    by_norm: dict[str, str] = {}
    for c in available:
        by_norm.setdefault(normalise(c), c)  # first column of a normalised name wins
    omitted = set(omit)
    for contract, aliases in ALIASES.items():
        if contract in matches or contract in omitted:
            continue
        for alias in aliases:
            source = by_norm.get(alias)
            if source is not None and source not in used:
                matches[contract] = Match(contract, source, "auto")
                used.add(source)
                break
    extras = [c for c in available if c not in used]
    reserved = set(ALIASES) | {"image", "mask", "geometry"}
    renamed: dict[str, str] = {}
    taken = set(extras)
    for c in extras:
        if c in reserved:
            new = f"source_{c}"
            while new in taken:
                new = f"source_{new}"
            renamed[c] = new
            taken.add(new)
    return ColumnMapping(matches=matches, extras=extras, renamed=renamed)


# ------------------------------------------------------------------------------------------
# Mapping a source table onto the contract: values, coordinates, refusals


__all__ = [
    "ALIASES",
    "MAPPABLE",
    "MISSING_TOKENS",
    "REJECTED_COLUMNS",
    "ColumnMapping",
    "Match",
    "match_columns",
    "normalise",
    "parse_column_pairs",
]
