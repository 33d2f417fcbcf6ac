"""Tests for houseprice.maps.overlay: blend arithmetic, validation and the PNG writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from houseprice.maps import heatmap_overlay, overlay_figure, save_overlay_png


@pytest.fixture
def tile() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)


@pytest.fixture
def heat() -> np.ndarray:
    return np.linspace(0.0, 1.0, 120).reshape(12, 10)


def test_alpha_zero_returns_the_tile(tile: np.ndarray, heat: np.ndarray) -> None:
    np.testing.assert_array_equal(heatmap_overlay(tile, heat, alpha=0.0), tile)


def test_alpha_one_returns_colormap_colours(tile: np.ndarray, heat: np.ndarray) -> None:
    out = heatmap_overlay(tile, heat, alpha=1.0, cmap="jet")
    expected = np.rint(colormaps["jet"](heat)[..., :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    # jet: lowest relevance is dark blue, highest dark red
    assert out[0, 0, 2] > 100 and out[0, 0, 0] == 0
    assert out[-1, -1, 0] > 100 and out[-1, -1, 2] == 0


def test_half_blend_is_the_mean(tile: np.ndarray, heat: np.ndarray) -> None:
    out = heatmap_overlay(tile, heat, alpha=0.5, cmap="viridis").astype(np.float64)
    colour = colormaps["viridis"](heat)[..., :3] * 255
    expected = 0.5 * tile + 0.5 * colour
    assert np.max(np.abs(out - expected)) <= 0.5 + 1e-9


@pytest.mark.parametrize(
    ("make_tile", "make_heat", "message"),
    [
        (lambda t: t[..., 0], lambda h: h, "tile_rgb must be a"),
        (lambda t: t.astype(np.float32), lambda h: h, "uint8"),
        (lambda t: t, lambda h: h[:5], "matching the tile"),
        (lambda t: t, lambda h: h * 2.0, r"\[0, 1\]"),
        (lambda t: t, lambda h: np.where(h > 0.5, np.nan, h), "NaN"),
    ],
)
def test_bad_inputs_raise_clear_errors(
    tile: np.ndarray, heat: np.ndarray, make_tile, make_heat, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        heatmap_overlay(make_tile(tile), make_heat(heat))


def test_bad_alpha_and_cmap(tile: np.ndarray, heat: np.ndarray) -> None:
    with pytest.raises(ValueError, match="alpha"):
        heatmap_overlay(tile, heat, alpha=1.5)
    with pytest.raises(ValueError, match="colormap"):
        heatmap_overlay(tile, heat, cmap="no-such-map")


def test_pixel_aligned_png_is_the_exact_overlay(
    tmp_path: Path, tile: np.ndarray, heat: np.ndarray
) -> None:
    path = save_overlay_png(tile, heat, tmp_path / "sub" / "o.png", colorbar=False)
    saved = np.asarray(Image.open(path))
    np.testing.assert_array_equal(saved, heatmap_overlay(tile, heat))
    assert [p.name for p in path.parent.iterdir()] == ["o.png"]  # no temp file left behind


def test_colorbar_png_has_labelled_bar_and_title(
    tmp_path: Path, tile: np.ndarray, heat: np.ndarray
) -> None:
    fig = overlay_figure(tile, heat, colorbar=True, title="house 7")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "relevance" in labels
    assert fig.axes[0].get_title() == "house 7"
    path = save_overlay_png(tile, heat, tmp_path / "fig.png", colorbar=True, title="house 7")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > tile.shape[1] and image.height > tile.shape[0]


def test_signed_overlay_draws_raises_red_lowers_blue_and_nothing_as_the_tile() -> None:
    from houseprice.maps.overlay import LOWERS_RGB, RAISES_RGB, signed_overlay

    tile = np.full((4, 4, 3), 128, np.uint8)
    signed = np.zeros((4, 4))
    signed[0, 0], signed[3, 3], signed[1, 1] = 1.0, -1.0, 0.5
    out = signed_overlay(tile, signed, alpha=1.0)
    assert tuple(out[0, 0]) == RAISES_RGB and tuple(out[3, 3]) == LOWERS_RGB
    np.testing.assert_array_equal(out[2, 2], tile[2, 2])  # no effect: the tile itself
    half = np.rint(0.5 * 128 + 0.5 * np.array(RAISES_RGB)).astype(np.uint8)
    np.testing.assert_array_equal(out[1, 1], half)  # opacity grows with |value|
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        signed_overlay(tile, signed * 2)


def test_signed_png_has_a_two_colour_legend(tmp_path: Path) -> None:
    from houseprice.maps.overlay import LOWERS_RGB, RAISES_RGB

    tile = np.full((16, 16, 3), 200, np.uint8)
    signed = np.linspace(-1, 1, 256).reshape(16, 16)
    plain = save_overlay_png(tile, signed, tmp_path / "p.png", colorbar=False, signed=True)
    assert Image.open(plain).size == (16, 16)
    panel = np.asarray(
        Image.open(save_overlay_png(tile, signed, tmp_path / "l.png", title="H1", signed=True))
    )
    assert panel.shape[1] > 256 + 80  # room for the legend
    legend = panel[:, 256 + 6 :].reshape(-1, 3)
    colours = {tuple(c) for c in legend}
    assert RAISES_RGB in colours and LOWERS_RGB in colours
