"""The classes of the synthetic birds: palette, part attributes and sibling groups.

This module owns what distinguishes one synthetic species from another: the shared colour
palette (birds and backgrounds use the same colours, so colour alone does not localise the
bird), the attribute vocabularies (beak, eye ring, wing pattern, tail, body), :class:`BirdClass`
and :func:`make_classes`, which builds classes in sibling groups of four: a random base class
and three siblings that each differ from it in one small part only, as real bird species often
do.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

RGB = tuple[int, int, int]

# One palette for birds and backgrounds, so colour alone does not localise the bird.
PALETTE: dict[str, RGB] = {
    "black": (25, 25, 28),
    "white": (238, 236, 228),
    "grey": (135, 135, 135),
    "brown": (115, 72, 38),
    "tan": (205, 175, 125),
    "red": (200, 35, 35),
    "orange": (240, 135, 25),
    "yellow": (245, 215, 45),
    "olive": (125, 135, 45),
    "green": (45, 145, 65),
    "blue": (40, 85, 205),
    "teal": (35, 165, 170),
}
COLOURS = tuple(PALETTE)
BEAK_COLOURS = ("black", "yellow", "orange", "grey", "red")
EYE_RINGS = ("none", "white", "yellow", "red", "blue")
WING_PATTERNS = ("plain", "bars", "spots")
TAIL_SHAPES = ("fan", "forked", "pointed", "square")
BODY_SHAPES = ("slim", "round")
BEAK_LENGTHS = ("short", "long")
# Attributes a sibling class may change (small parts only).
SIBLING_MUTATIONS = (
    "beak_color",
    "beak_length",
    "eye_ring",
    "crest",
    "wing_pattern",
    "pattern_color",
    "tail_shape",
    "head_color",
)
LEG_COLOUR: RGB = (70, 55, 45)
EYE_COLOUR: RGB = (10, 10, 12)


@dataclass(frozen=True)
class BirdClass:
    """Visual attributes of one class (colours are PALETTE names)."""

    class_id: int
    name: str
    group: int  # sibling group (4 consecutive classes)
    base_class_id: int  # the group's base class (itself for the base)
    differs_in: str  # attribute changed from the base class ("" for the base)
    body_shape: str
    body_color: str
    belly_color: str
    wing_color: str
    wing_pattern: str
    pattern_color: str  # "none" when the wing is plain
    head_color: str
    crest: bool
    tail_shape: str
    tail_color: str
    beak_length: str
    beak_color: str
    eye_ring: str  # "none" or a PALETTE name

    def signature(self) -> tuple[Any, ...]:
        """The visual attributes only (two classes may never share a signature)."""
        skip = {"class_id", "name", "group", "base_class_id", "differs_in"}
        return tuple(getattr(self, f.name) for f in fields(self) if f.name not in skip)


def class_folder(class_id: int) -> str:
    """``001.Synth_Bird_001``-style folder name (CUB: ``001.Black_footed_Albatross``)."""
    return f"{class_id:03d}.Synth_Bird_{class_id:03d}"


def _pick(rng: np.random.Generator, options: tuple[str, ...], *exclude: str) -> str:
    allowed = [o for o in options if o not in exclude]
    return allowed[int(rng.integers(len(allowed)))]


def _random_base(rng: np.random.Generator) -> dict[str, Any]:
    body = _pick(rng, COLOURS)
    wing = _pick(rng, COLOURS) if rng.random() < 0.7 else body
    pattern = _pick(rng, WING_PATTERNS)
    head = _pick(rng, COLOURS)
    return {
        "body_shape": _pick(rng, BODY_SHAPES),
        "body_color": body,
        "belly_color": _pick(rng, COLOURS) if rng.random() < 0.6 else body,
        "wing_color": wing,
        "wing_pattern": pattern,
        "pattern_color": "none" if pattern == "plain" else _pick(rng, COLOURS, wing),
        "head_color": head,
        "crest": bool(rng.random() < 0.3),
        "tail_shape": _pick(rng, TAIL_SHAPES),
        "tail_color": wing if rng.random() < 0.5 else _pick(rng, COLOURS),
        "beak_length": _pick(rng, BEAK_LENGTHS),
        "beak_color": _pick(rng, BEAK_COLOURS, head),
        "eye_ring": _pick(rng, EYE_RINGS, head) if rng.random() < 0.5 else "none",
    }


def _mutate(rng: np.random.Generator, attrs: dict[str, Any], key: str) -> dict[str, Any] | None:
    """Copy of ``attrs`` with only ``key`` (and its dependent colour) changed; None if n/a."""
    out = dict(attrs)
    if key == "beak_color":
        out[key] = _pick(rng, BEAK_COLOURS, attrs[key], attrs["head_color"])
    elif key == "beak_length":
        out[key] = _pick(rng, BEAK_LENGTHS, attrs[key])
    elif key == "eye_ring":
        out[key] = _pick(rng, EYE_RINGS, attrs[key], attrs["head_color"])
    elif key == "crest":
        out[key] = not attrs[key]
    elif key == "wing_pattern":
        out[key] = _pick(rng, WING_PATTERNS, attrs[key])
        if out[key] == "plain":
            out["pattern_color"] = "none"
        elif attrs["pattern_color"] == "none":
            out["pattern_color"] = _pick(rng, COLOURS, attrs["wing_color"])
    elif key == "pattern_color":
        if attrs["wing_pattern"] == "plain":
            return None
        out[key] = _pick(rng, COLOURS, attrs[key], attrs["wing_color"])
    elif key == "tail_shape":
        out[key] = _pick(rng, TAIL_SHAPES, attrs[key])
    elif key == "head_color":
        taken = (attrs[key], attrs["beak_color"], attrs["eye_ring"])
        out[key] = _pick(rng, COLOURS, *taken)
    else:
        raise KeyError(f"unknown sibling mutation {key!r}")
    return out


def make_classes(n_classes: int, seed: int) -> list[BirdClass]:
    """Deterministic fine-grained classes: groups of a random base plus one-part siblings."""
    rng = np.random.default_rng([seed, 0xB1D5])
    classes: list[BirdClass] = []
    seen: set[tuple[Any, ...]] = set()

    def add(attrs: dict[str, Any], group: int, base_id: int, differs_in: str) -> bool:
        cid = len(classes) + 1
        cls = BirdClass(
            class_id=cid,
            name=class_folder(cid),
            group=group,
            base_class_id=base_id,
            differs_in=differs_in,
            **attrs,
        )
        if cls.signature() in seen:
            return False
        seen.add(cls.signature())
        classes.append(cls)
        return True

    group = 0
    while len(classes) < n_classes:
        base = _random_base(rng)
        base_id = len(classes) + 1
        if not add(base, group, base_id, ""):
            continue
        keys = [str(k) for k in rng.permutation(SIBLING_MUTATIONS)]
        for key in keys:
            if len(classes) >= n_classes or len(classes) - base_id + 1 >= 4:
                break
            attrs = _mutate(rng, base, key)
            if attrs is not None:
                add(attrs, group, base_id, key)
        group += 1
    return classes


__all__ = [
    "BEAK_COLOURS",
    "BEAK_LENGTHS",
    "BODY_SHAPES",
    "COLOURS",
    "EYE_COLOUR",
    "EYE_RINGS",
    "LEG_COLOUR",
    "PALETTE",
    "RGB",
    "SIBLING_MUTATIONS",
    "TAIL_SHAPES",
    "WING_PATTERNS",
    "BirdClass",
    "class_folder",
    "make_classes",
]
