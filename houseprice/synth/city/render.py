"""Drawing the synthetic city's world into an RGB raster and a label raster.

This module owns the look of the city: colours, label classes, the draw order, texture
strength per material, shadows and anti-aliasing. :func:`_paint` issues every drawing call, in
a fixed order (one helper per layer), to a :class:`Painter` that either paints colours (plus a
material map used for texture and shadows) or class ids, so the label mask and the picture come
from the same geometry. The RGB world is
painted in chunks at ``supersample`` times the output resolution and box-filtered down; texture
noise (``texture``) is a hash of the global pixel position, so a point of the world has the same
pixels in every tile that contains it (tiles are crops of the world raster).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from houseprice.synth.city.texture import hash_noise, value_noise
from houseprice.synth.city.world import World

# Label classes (the dataset.json ``mask_classes``).
GROUND, TARGET_HOUSE, OTHER_HOUSE, ROAD, HIGHWAY, DRIVEWAY, POOL, TREE, WATER, PARK = range(10)
MASK_CLASSES = {
    GROUND: "ground", TARGET_HOUSE: "target_house", OTHER_HOUSE: "other_house", ROAD: "road",
    HIGHWAY: "highway", DRIVEWAY: "driveway", POOL: "pool", TREE: "tree", WATER: "water",
    PARK: "park",
}  # fmt: skip

# Materials decide texture strength and whether shadows fall on a pixel.
M_GRASS, M_ASPHALT, M_CONCRETE, M_WATER, M_ROOF, M_POOL, M_TREE, M_SAND = range(8)
# Texture amplitude per material: (fine, medium ~3 m, coarse ~25 m) relative brightness noise.
_AMP = np.array(
    [[0.10, 0.12, 0.10], [0.05, 0.04, 0.04], [0.04, 0.03, 0.03], [0.015, 0.03, 0.06],
     [0.05, 0.03, 0.02], [0.015, 0.015, 0.0], [0.14, 0.10, 0.04], [0.08, 0.06, 0.05]],
    np.float32,
)  # fmt: skip

TINTS = [(84, 122, 58), (96, 128, 64), (118, 128, 76), (72, 108, 54), (104, 120, 70)]
ROOFS = [(82, 82, 88), (122, 118, 114), (118, 86, 66), (142, 78, 62), (170, 166, 158),
         (58, 58, 64), (96, 106, 98), (150, 120, 90)]  # fmt: skip
DRIVES = [(178, 174, 164), (104, 104, 108), (160, 140, 122)]
TREES = [(44, 78, 38), (54, 90, 42), (38, 68, 40), (62, 96, 46)]
PARK_GRASS, PATH = (104, 144, 68), (194, 184, 152)
SIDEWALK, LOCAL_ASPHALT, ARTERIAL_ASPHALT = (172, 170, 164), (96, 96, 100), (86, 86, 90)
HIGHWAY_ASPHALT, VERGE, MARKING, YELLOW = (
    (70, 70, 74),
    (106, 124, 72),
    (226, 226, 216),
    (204, 182, 82),
)
WATER_C, DEEP_WATER, BANK = (48, 84, 104), (40, 72, 94), (142, 140, 104)
POOL_C, POOL_LIGHT, DECK = (64, 178, 210), (98, 204, 228), (206, 196, 176)
FENCE = (66, 76, 52)

Window = tuple[float, float, float, float]  # x0, y0, x1, y1 of the painted part of the world


def _shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, round(v * f)))) for v in c)  # type: ignore[return-value]


class Painter:
    """Draws world geometry (metres) into images covering one window of the world.

    ``mode="rgb"`` paints colours, a material map and a shadow map; ``mode="class"`` paints
    label ids only, and ignores calls whose ``cls`` is None (pure decoration).
    """

    def __init__(
        self, mode: str, origin_m: tuple[float, float], px_per_m: float, size_px: tuple[int, int]
    ) -> None:
        self.mode = mode
        self.ox, self.oy = origin_m
        self.k = px_per_m
        w, h = size_px
        if mode == "rgb":
            self.rgb = Image.new("RGB", (w, h), TINTS[1])
            self.mat = Image.new("L", (w, h), M_GRASS)
            self.shadow = Image.new("L", (w, h), 0)
            self._d_rgb, self._d_mat = ImageDraw.Draw(self.rgb), ImageDraw.Draw(self.mat)
            self._d_sh = ImageDraw.Draw(self.shadow)
        elif mode == "class":
            self.cls = Image.new("L", (w, h), GROUND)
            self._d_cls = ImageDraw.Draw(self.cls)
        else:
            raise ValueError(f"Painter mode must be 'rgb' or 'class', got {mode!r}")

    def _px(self, pts: np.ndarray) -> list[tuple[float, float]]:
        p = (np.asarray(pts, float) - (self.ox, self.oy)) * self.k - 0.5
        return [tuple(q) for q in p.tolist()]

    def rects(self, r: np.ndarray, color: tuple | list, mat: int, cls: int | None) -> None:
        """Fill rectangles (N, 4); a pixel is inside when its centre is (half-open edges)."""
        r = np.asarray(r, float).reshape(-1, 4)
        ok = ~np.isnan(r[:, 0])
        if isinstance(color, list):
            color = [c for c, o in zip(color, ok.tolist(), strict=True) if o]
        r = r[ok]
        if (self.mode == "class" and cls is None) or len(r) == 0:
            return
        b = np.ceil((r - (self.ox, self.oy, self.ox, self.oy)) * self.k - 0.5).astype(np.int64)
        for j, (i0, j0, i1, j1) in enumerate(b.tolist()):
            if i1 <= i0 or j1 <= j0:
                continue
            box = [i0, j0, i1 - 1, j1 - 1]
            if self.mode == "class":
                self._d_cls.rectangle(box, fill=cls)
            else:
                self._d_rgb.rectangle(box, fill=color[j] if isinstance(color, list) else color)
                self._d_mat.rectangle(box, fill=mat)

    def polygon(self, pts: np.ndarray, color: tuple, mat: int, cls: int | None) -> None:
        if self.mode == "class":
            if cls is not None:
                self._d_cls.polygon(self._px(pts), fill=cls)
            return
        xy = self._px(pts)
        self._d_rgb.polygon(xy, fill=color)
        self._d_mat.polygon(xy, fill=mat)

    def line(
        self, pts: np.ndarray, width_m: float, color: tuple, mat: int, cls: int | None
    ) -> None:
        w = max(1, round(width_m * self.k))
        if self.mode == "class":
            if cls is not None:
                self._d_cls.line(self._px(pts), fill=cls, width=w, joint="curve")
            return
        xy = self._px(pts)
        self._d_rgb.line(xy, fill=color, width=w, joint="curve")
        self._d_mat.line(xy, fill=mat, width=w, joint="curve")

    def disks(self, xy: np.ndarray, r: np.ndarray, colors: list, mat: int, cls: int | None) -> None:
        if self.mode == "class" and cls is None:
            return
        c = (np.asarray(xy, float) - (self.ox, self.oy)) * self.k - 0.5
        rr = np.asarray(r, float) * self.k
        for j, ((x, y), q) in enumerate(zip(c.tolist(), rr.tolist(), strict=True)):
            box = [x - q, y - q, x + q, y + q]
            if self.mode == "class":
                self._d_cls.ellipse(box, fill=cls)
            else:
                self._d_rgb.ellipse(box, fill=colors[j])
                self._d_mat.ellipse(box, fill=mat)

    def shadow_polygon(self, pts: np.ndarray) -> None:
        if self.mode == "rgb":
            self._d_sh.polygon(self._px(pts), fill=255)

    def shadow_disks(self, xy: np.ndarray, r: np.ndarray) -> None:
        if self.mode != "rgb":
            return
        c = (np.asarray(xy, float) - (self.ox, self.oy)) * self.k - 0.5
        for (x, y), q in zip(c.tolist(), (np.asarray(r) * self.k).tolist(), strict=True):
            self._d_sh.ellipse([x - q, y - q, x + q, y + q], fill=255)


def _in_window(r: np.ndarray, win: Window, pad: float) -> np.ndarray:
    """Which rectangles (N, 4) intersect the window grown by ``pad`` metres."""
    x0, y0, x1, y1 = win
    return (r[:, 2] > x0 - pad) & (r[:, 0] < x1 + pad) & (r[:, 3] > y0 - pad) & (r[:, 1] < y1 + pad)


def _paint_ground(p: Painter, w: World, win: Window, lot_in: np.ndarray) -> None:
    """1. Lawns with per-lot tints and fences; 2. parks and their paths."""
    L = w.lots
    p.rects(L.rect[lot_in], [TINTS[t] for t in L.tint[lot_in]], M_GRASS, None)
    if p.mode == "rgb":
        for i in lot_in[L.fence[lot_in]]:
            x0, y0, x1, y1 = L.rect[i]
            p.line(
                np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]),
                0.3,
                FENCE,
                M_GRASS,
                None,
            )
    park_in = w.parks[_in_window(w.parks, win, 2.0)] if len(w.parks) else w.parks
    p.rects(park_in, PARK_GRASS, M_GRASS, PARK)
    for path in w.paths:
        if _in_window(np.r_[path.min(0), path.max(0)][None], win, 3.0)[0]:
            p.line(path, 2.5, PATH, M_SAND, PARK)


def _paint_streets(p: Painter, w: World, win: Window, kind: int) -> None:
    """Streets of one kind (0 local, 1 arterial, 2 bridge): sidewalks, pavement, centre line."""
    st = w.streets
    sel = (st.kind == kind) & _in_window(st.rect, win, 2.0)
    r, ax = st.rect[sel], st.axis[sel]
    asphalt = w.local_asphalt_m if kind == 0 else w.arterial_asphalt_m
    sidewalk = 1.75 if kind == 0 else 2.0
    if kind == 2:  # bridge deck: parapets, no boulevards
        p.rects(r, (150, 148, 142), M_CONCRETE, ROAD)
    paving = LOCAL_ASPHALT if kind == 0 else ARTERIAL_ASPHALT
    for j in range(len(r)):  # sidewalks along both edges of the right-of-way
        x0, y0, x1, y1 = r[j]
        if ax[j] == 0:  # runs east-west: strips stacked in y
            sides = [[x0, y0, x1, y0 + sidewalk], [x0, y1 - sidewalk, x1, y1]]
        else:
            sides = [[x0, y0, x0 + sidewalk, y1], [x1 - sidewalk, y0, x1, y1]]
        p.rects(np.array(sides), SIDEWALK, M_CONCRETE, ROAD)
    for j in range(len(r)):  # pavement in the middle, over crossing streets' sidewalks
        x0, y0, x1, y1 = r[j]
        if ax[j] == 0:
            c = (y0 + y1) / 2
            middle = [x0, c - asphalt / 2, x1, c + asphalt / 2]
        else:
            c = (x0 + x1) / 2
            middle = [c - asphalt / 2, y0, c + asphalt / 2, y1]
        p.rects(np.array(middle), paving, M_ASPHALT, ROAD)
    if kind >= 1 and p.mode == "rgb":  # double yellow centre line
        for j in range(len(r)):
            x0, y0, x1, y1 = r[j]
            if ax[j] == 0:
                c = (y0 + y1) / 2
                p.rects(
                    np.array([[x0, c - 0.35, x1, c - 0.15], [x0, c + 0.15, x1, c + 0.35]]),
                    YELLOW,
                    M_CONCRETE,
                    None,
                )
            else:
                c = (x0 + x1) / 2
                p.rects(
                    np.array([[c - 0.35, y0, c - 0.15, y1], [c + 0.15, y0, c + 0.35, y1]]),
                    YELLOW,
                    M_CONCRETE,
                    None,
                )


def _paint_network(p: Painter, w: World, win: Window) -> None:
    """3. Streets, highway verge; 4. water over the streets, bridges, the highway on top."""
    # Local streets end at the highway verge; arterials pass under the highway.
    window = np.array([win])
    highway_here = w.highway.distance_to_rects(window)[0] < w.verge_m + 2.0
    waters = [b for b in w.waters if b.distance_to_rects(window)[0] < w.bank_m + 2.0]
    _paint_streets(p, w, win, 0)
    if highway_here:
        p.polygon(w.highway.outline(w.verge_m), VERGE, M_GRASS, GROUND)
    _paint_streets(p, w, win, 1)
    # Water covers the streets except where arterials bridge it; the highway is on top.
    for band in waters:
        p.polygon(band.outline(w.bank_m), BANK, M_SAND, GROUND)
    for band in waters:
        p.polygon(band.outline(), WATER_C, M_WATER, WATER)
        if p.mode == "rgb":
            p.polygon(
                band.outline(-0.25 * float(band.half_width.mean())), DEEP_WATER, M_WATER, None
            )
    _paint_streets(p, w, win, 2)
    if highway_here:
        p.polygon(w.highway.outline(), HIGHWAY_ASPHALT, M_ASPHALT, HIGHWAY)
    if p.mode == "rgb" and highway_here:
        x0, y0, x1, y1 = win
        d = w.lane_dashes
        sel = (np.maximum(d[:, 0], d[:, 2]) > x0 - 5) & (np.minimum(d[:, 0], d[:, 2]) < x1 + 5)
        sel &= (np.maximum(d[:, 1], d[:, 3]) > y0 - 5) & (np.minimum(d[:, 1], d[:, 3]) < y1 + 5)
        for seg in d[sel]:
            p.line(seg.reshape(2, 2), 0.25, MARKING, M_CONCRETE, None)
        for ln in w.edge_lines:
            p.line(ln, 0.25, MARKING, M_CONCRETE, None)
        p.line(w.median_line, 0.9, (176, 176, 170), M_CONCRETE, None)


def _paint_lot_objects(p: Painter, w: World, lot_in: np.ndarray) -> None:
    """5. Driveways, pool decks and pools; 6. houses: shadows first (rgb only), then roofs."""
    L = w.lots
    p.rects(L.driveway[lot_in], [DRIVES[t] for t in L.drive_tone[lot_in]], M_CONCRETE, DRIVEWAY)
    pooled = lot_in[L.has_pool[lot_in]]
    p.rects(L.deck[pooled], DECK, M_CONCRETE, GROUND)
    p.rects(L.pool[pooled], POOL_C, M_POOL, POOL)
    if p.mode == "rgb" and len(pooled):
        inner = L.pool[pooled] + np.array([0.5, 0.5, -0.5, -0.5])
        p.rects(inner, POOL_LIGHT, M_POOL, None)
    if p.mode == "rgb":
        off = L.shadow_offset()
        for i in lot_in:
            x0, y0, x1, y1 = L.house[i]
            dx, dy = off[i]
            # The box's shadow: footprint swept towards the north-west (dx, dy < 0).
            hull = [[x0 + dx, y0 + dy], [x1 + dx, y0 + dy], [x1, y0], [x1, y1], [x0, y1]]
            p.shadow_polygon(np.array([*hull, [x0 + dx, y1 + dy]]))
    p.rects(L.house[lot_in], [ROOFS[t] for t in L.roof[lot_in]], M_ROOF, OTHER_HOUSE)
    if p.mode == "rgb":
        for i in lot_in:
            _roof(p, L.house[i], ROOFS[L.roof[i]], bool(L.ridge_ew[i]), bool(L.hip_roof[i]))
        p.rects(L.chimney[lot_in], (60, 56, 54), M_ROOF, None)


def _paint_trees(p: Painter, w: World, win: Window) -> None:
    """7. Trees: shadows (rgb only), crowns, sunlit tops."""
    tr = w.trees
    tree_in = np.flatnonzero(
        (tr.xy[:, 0] > win[0] - 14)
        & (tr.xy[:, 0] < win[2] + 14)
        & (tr.xy[:, 1] > win[1] - 14)
        & (tr.xy[:, 1] < win[3] + 14)
    )
    xy, r = tr.xy[tree_in], tr.r[tree_in]
    if p.mode == "rgb":
        p.shadow_disks(xy + tr.shadow_offset()[tree_in], r)
    p.disks(xy, r, [TREES[t] for t in tr.tone[tree_in]], M_TREE, TREE)
    if p.mode == "rgb":
        hi = [_shade(TREES[t], 1.3) for t in tr.tone[tree_in]]
        p.disks(xy + 0.28 * r[:, None], 0.55 * r, hi, M_TREE, None)


def _paint(p: Painter, w: World, win: Window) -> None:
    """Every drawing call of the city, in draw order (later calls cover earlier ones)."""
    lot_in = np.flatnonzero(_in_window(w.lots.rect, win, 16.0))
    _paint_ground(p, w, win, lot_in)
    _paint_network(p, w, win)
    _paint_lot_objects(p, w, lot_in)
    _paint_trees(p, w, win)


def _roof(p: Painter, h: np.ndarray, color: tuple, ridge_ew: bool, hip: bool) -> None:
    """Gable or hip roof faces: sun-facing (south/east) faces bright, others dark."""
    x0, y0, x1, y1 = h
    lit, dark, side_lit, side_dark = (
        _shade(color, 1.15),
        _shade(color, 0.72),
        _shade(color, 1.0),
        _shade(color, 0.85),
    )
    if ridge_ew:
        ym = (y0 + y1) / 2
        if hip:
            e = min((y1 - y0) / 2, (x1 - x0) / 2)
            p.polygon(
                np.array([[x0, y0], [x1, y0], [x1 - e, ym], [x0 + e, ym]]), dark, M_ROOF, None
            )
            p.polygon(np.array([[x0, y1], [x1, y1], [x1 - e, ym], [x0 + e, ym]]), lit, M_ROOF, None)
            p.polygon(np.array([[x0, y0], [x0 + e, ym], [x0, y1]]), side_dark, M_ROOF, None)
            p.polygon(np.array([[x1, y0], [x1 - e, ym], [x1, y1]]), side_lit, M_ROOF, None)
        else:
            p.rects(np.array([[x0, y0, x1, ym]]), dark, M_ROOF, None)
            p.rects(np.array([[x0, ym, x1, y1]]), lit, M_ROOF, None)
            p.rects(np.array([[x0, ym - 0.2, x1, ym + 0.2]]), _shade(color, 0.6), M_ROOF, None)
    else:
        xm = (x0 + x1) / 2
        if hip:
            e = min((x1 - x0) / 2, (y1 - y0) / 2)
            p.polygon(
                np.array([[x0, y0], [x0, y1], [xm, y1 - e], [xm, y0 + e]]), dark, M_ROOF, None
            )
            p.polygon(np.array([[x1, y0], [x1, y1], [xm, y1 - e], [xm, y0 + e]]), lit, M_ROOF, None)
            p.polygon(np.array([[x0, y0], [xm, y0 + e], [x1, y0]]), side_dark, M_ROOF, None)
            p.polygon(np.array([[x0, y1], [xm, y1 - e], [x1, y1]]), side_lit, M_ROOF, None)
        else:
            p.rects(np.array([[x0, y0, xm, y1]]), dark, M_ROOF, None)
            p.rects(np.array([[xm, y0, x1, y1]]), lit, M_ROOF, None)
            p.rects(np.array([[xm - 0.2, y0, xm + 0.2, y1]]), _shade(color, 0.6), M_ROOF, None)


# ----------------------------------------------------------------------------- rasters


def raster_size(world: World, m_per_px: float) -> int:
    return math.ceil(world.size_m / m_per_px)


def render_classes(world: World, m_per_px: float) -> np.ndarray:
    """Label raster (H, W) uint8 of the whole world at ``m_per_px``."""
    n = raster_size(world, m_per_px)
    p = Painter("class", (0.0, 0.0), 1.0 / m_per_px, (n, n))
    _paint(p, world, (0.0, 0.0, world.size_m, world.size_m))
    return np.asarray(p.cls).copy()


def render_rgb(
    world: World,
    m_per_px: float,
    *,
    supersample: int,
    noise_seed: int,
    chunk_px: int = 384,
    progress: bool = False,
) -> np.ndarray:
    """RGB raster (H, W, 3) uint8 of the whole world, painted chunk by chunk."""
    n = raster_size(world, m_per_px)
    out = np.empty((n, n, 3), np.uint8)
    s = supersample
    k = s / m_per_px  # sub-pixels per metre
    starts = [(r, c) for r in range(0, n, chunk_px) for c in range(0, n, chunk_px)]
    for r0, c0 in tqdm(starts, desc="painting city", disable=not progress, leave=False):
        h, w = min(chunk_px, n - r0), min(chunk_px, n - c0)
        win = (c0 * m_per_px, r0 * m_per_px, (c0 + w) * m_per_px, (r0 + h) * m_per_px)
        p = Painter("rgb", (win[0], win[1]), k, (w * s, h * s))
        _paint(p, world, win)
        rgb = np.asarray(p.rgb, np.float32)
        mat = np.asarray(p.mat)
        rows = np.arange(r0 * s, (r0 + h) * s)
        cols = np.arange(c0 * s, (c0 + w) * s)
        fine = hash_noise(cols[None, :], rows[:, None], noise_seed)
        medium = value_noise(rows, cols, 3.0 * k, noise_seed + 1)
        coarse = value_noise(rows, cols, 25.0 * k, noise_seed + 2)
        amp = _AMP[mat]  # (H, W, 3)
        factor = 1.0 + amp[..., 0] * fine + amp[..., 1] * medium + amp[..., 2] * coarse
        shadow = np.asarray(p.shadow, np.float32) / 255.0 * (mat != M_TREE)
        factor *= 1.0 - 0.38 * shadow
        rgb *= factor[..., None]
        rgb[..., 2] += 6.0 * shadow  # shadows are a little blue
        small = rgb.reshape(h, s, w, s, 3).mean(axis=(1, 3))
        out[r0 : r0 + h, c0 : c0 + w] = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    return out


def crop(
    raster: np.ndarray, centre_m: tuple[float, float], tile_px: int, m_per_px: float
) -> tuple[int, int]:
    """Top-left (row, col) of the ``tile_px`` window whose centre is nearest ``centre_m``."""
    x, y = centre_m
    r0 = math.floor(y / m_per_px - tile_px / 2 + 0.5)
    c0 = math.floor(x / m_per_px - tile_px / 2 + 0.5)
    if r0 < 0 or c0 < 0 or r0 + tile_px > raster.shape[0] or c0 + tile_px > raster.shape[1]:
        raise ValueError(f"tile centred at {centre_m} m does not fit in the world raster")
    return r0, c0
