"""Configuration of the synthetic-birds generator: :class:`BirdsConfig`.

This module owns every number a generated birds dataset depends on (stored in its
``dataset.json``) and the checks of those numbers. The profile sizes (quick / standard /
paper) live in :mod:`houseprice.profiles`.
"""

from __future__ import annotations

from dataclasses import dataclass

from houseprice.errors import UserInputError


@dataclass(frozen=True)
class BirdsConfig:
    """Everything the generated dataset depends on (stored in dataset.json)."""

    n_classes: int = 200
    images_per_class: int = 60
    image_px: int = 128
    seed: int = 0
    jpeg_quality: int = 90
    supersample: int = 2  # draw at this multiple, then box-downsample (anti-aliasing)
    area_range: tuple[float, float] = (0.10, 0.60)  # bird box area / image area
    max_rotation_deg: float = 30.0
    colour_jitter: int = 12  # per-part, per-image RGB jitter (palette colours are >= 60 apart)
    noise_sigma: float = 4.0  # Gaussian pixel noise, in 0..255 units
    inside_prob: float = 0.8  # else the box may stick out of the image by <= 20% per side

    def validate(self) -> None:
        """Raise :class:`~houseprice.errors.UserInputError` naming the first bad field."""
        if self.n_classes < 2:
            raise UserInputError(
                f"n_classes must be >= 2 (train/test halves); got {self.n_classes}"
            )
        if self.images_per_class < 1:
            raise UserInputError(f"images_per_class must be >= 1; got {self.images_per_class}")
        if self.image_px < 16:
            raise UserInputError(f"image_px must be >= 16; got {self.image_px}")
        if not 1 <= self.jpeg_quality <= 95:
            raise UserInputError(f"jpeg_quality must be in [1, 95]; got {self.jpeg_quality}")
        if self.supersample < 1:
            raise UserInputError(f"supersample must be >= 1; got {self.supersample}")
        lo, hi = self.area_range
        if not 0.0 < lo <= hi <= 0.9:
            raise UserInputError(f"area_range needs 0 < min <= max <= 0.9; got {self.area_range}")


__all__ = ["BirdsConfig"]
