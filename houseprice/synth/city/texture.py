"""Texture noise of the synthetic city's pictures, a pure function of the global pixel position.

This module owns the hash noise (fine grain) and the smooth value noise (on a lattice of
``cell`` pixels) that ``render`` multiplies into the painted colours. Both are sampled at
global raster indices, so a point of the world has the same pixels in every tile that
contains it.
"""

from __future__ import annotations

import numpy as np


def hash_noise(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Integer hash of lattice coordinates -> uniform floats in [-1, 1) (float32)."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.uint32) * np.uint32(0x8DA6B343) ^ iy.astype(np.uint32) * np.uint32(
            0xD8163841
        )
        h ^= np.uint32((seed * 0x9E3779B9) & 0xFFFFFFFF)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x7FEB352D)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x846CA68B)
        h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) / np.float32(1 << 23) - np.float32(1.0)


def value_noise(rows: np.ndarray, cols: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth noise (H, W) on a global lattice of ``cell`` pixels, sampled at global indices."""
    fy, fx = rows / cell, cols / cell
    iy, ix = np.floor(fy).astype(np.int64), np.floor(fx).astype(np.int64)
    ty, tx = (fy - iy).astype(np.float32), (fx - ix).astype(np.float32)
    ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)
    ly = np.arange(iy.min(), iy.max() + 2)
    lx = np.arange(ix.min(), ix.max() + 2)
    lat = hash_noise(lx[None, :], ly[:, None], seed)  # (h_l, w_l)
    a, b = iy - ly[0], ix - lx[0]
    v00, v01 = lat[np.ix_(a, b)], lat[np.ix_(a, b + 1)]
    v10, v11 = lat[np.ix_(a + 1, b)], lat[np.ix_(a + 1, b + 1)]
    top = v00 + (v01 - v00) * tx[None, :]
    bot = v10 + (v11 - v10) * tx[None, :]
    return top + (bot - top) * ty[:, None]


__all__ = ["hash_noise", "value_noise"]
