"""Mask refinement (islands, holes, largest component) and feathering to a soft alpha."""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from xdepth.post._check import mask_array, positive_int

Placement = Literal["inside", "centered"]
_MASK_SIZES = {3: cv2.DIST_MASK_3, 5: cv2.DIST_MASK_5, 0: cv2.DIST_MASK_PRECISE}
_MIN_STEP = 0.955  # smallest per-pixel cost of OpenCV's L2 chamfer masks (3x3)
_CELL = 16  # presence of foreground/background is counted on cells of this size


def _components(mask_u8: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask_u8, connectivity=connectivity)
    return labels, stats[:, cv2.CC_STAT_AREA]


def remove_small_islands(mask: np.ndarray, min_area_px: int, connectivity: int = 8) -> np.ndarray:
    """Drop connected regions smaller than ``min_area_px`` (speckle from noisy depth)."""
    mask = mask_array(mask)
    min_area_px = positive_int(min_area_px, "min_area_px", minimum=0)
    labels, areas = _components(mask.view(np.uint8), connectivity)
    keep = areas >= min_area_px
    keep[0] = False
    if keep[1:].all():
        return mask.copy()
    return keep[labels]


def fill_holes(
    mask: np.ndarray, max_area_px: int | None = None, connectivity: int = 8
) -> np.ndarray:
    """Fill background regions enclosed by the mask (not touching the image border).

    ``max_area_px`` limits filling to holes up to that size (None fills all). The background
    uses the complementary connectivity (4 for an 8-connected mask), so a diagonal gap in
    the outline does not count as an opening.
    """
    mask = mask_array(mask)
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    labels, areas = _components((~mask).view(np.uint8), 12 - connectivity)
    hole = np.ones(areas.shape, bool)
    hole[0] = False  # label 0 is the mask itself
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        hole[np.unique(edge)] = False
    if max_area_px is not None:
        hole &= areas <= positive_int(max_area_px, "max_area_px", minimum=0)
    if not hole.any():
        return mask.copy()
    return mask | hole[labels]


def keep_largest_component(mask: np.ndarray, connectivity: int = 8) -> np.ndarray:
    """Keep only the largest connected region (ties: the first in raster order)."""
    mask = mask_array(mask)
    labels, areas = _components(mask.view(np.uint8), connectivity)
    if areas.size <= 1:
        return np.zeros_like(mask)
    return labels == 1 + int(np.argmax(areas[1:]))


def refine_mask(
    mask: np.ndarray,
    *,
    min_island_px: int = 0,
    fill: bool = False,
    max_hole_px: int | None = None,
    largest_only: bool = False,
) -> np.ndarray:
    """Islands, then holes, then largest component, each only when asked."""
    out = mask_array(mask)
    if min_island_px > 0:
        out = remove_small_islands(out, min_island_px)
    if fill:
        out = fill_holes(out, max_hole_px)
    if largest_only:
        out = keep_largest_component(out)
    return out if out is not mask else mask.copy()


def feather(
    mask: np.ndarray,
    radius_px: float,
    *,
    placement: Placement = "inside",
    mask_size: int = 5,
) -> np.ndarray:
    """Soft uint8 alpha with a linear ramp ``radius_px`` wide at the mask's edge.

    ``"inside"``: the ramp lies inside the mask (alpha = min(d / radius, 1), d the distance
    to the nearest background pixel), so no pixel outside the mask becomes visible;
    ``"centered"``: the ramp straddles the edge (0.5 at the edge), which looks softer but
    lets a halo of the background through. Distances come from ``cv2.distanceTransform``
    (L2, ``mask_size`` 3, 5 or 0 for exact). Only tiles near an edge are transformed, which
    gives the full-image result (distances beyond the ramp do not matter) at a fraction of
    the cost; ``radius_px = 0`` returns the hard mask as 0/255.
    """
    mask = mask_array(mask)
    if not (math.isfinite(radius_px) and radius_px >= 0):
        raise ValueError(f"radius_px must be a finite number >= 0, got {radius_px!r}")
    if placement not in ("inside", "centered"):
        raise ValueError(f"placement must be 'inside' or 'centered', got {placement!r}")
    if mask_size not in _MASK_SIZES:
        raise ValueError(f"mask_size must be 3, 5 or 0 (exact), got {mask_size!r}")
    fg = mask.view(np.uint8)
    alpha = np.multiply(fg, np.uint8(255))
    if radius_px == 0:
        return alpha
    margin = math.ceil(radius_px / _MIN_STEP) + 2
    tile = _CELL * max(8, -(-margin // _CELL))
    centered = placement == "centered"
    # Tiles that fit in cache beat one whole-image transform even when edges are everywhere.
    for y0, y1, x0, x1 in _edge_tiles(fg, tile, margin, with_background=centered):
        ey0, ey1 = max(0, y0 - margin), min(fg.shape[0], y1 + margin)
        ex0, ex1 = max(0, x0 - margin), min(fg.shape[1], x1 + margin)
        core = (slice(y0 - ey0, y1 - ey0), slice(x0 - ex0, x1 - ex0))
        alpha[y0:y1, x0:x1] = _ramp(fg[ey0:ey1, ex0:ex1], core, radius_px, centered, mask_size)
    return alpha


def _ramp(
    fg: np.ndarray, core: tuple[slice, slice], radius_px: float, centered: bool, mask_size: int
) -> np.ndarray:
    """Alpha of the ``core`` part of ``fg`` (0/1 uint8) from its distance transforms."""
    d_in = cv2.distanceTransform(fg, cv2.DIST_L2, _MASK_SIZES[mask_size])[core]
    if not centered:
        # Cap first: no background in reach leaves FLT_MAX, which would not saturate.
        np.minimum(d_in, np.float32(radius_px), out=d_in)
        return cv2.convertScaleAbs(d_in, alpha=255.0 / radius_px)
    d_out = cv2.distanceTransform(1 - fg, cv2.DIST_L2, _MASK_SIZES[mask_size])[core]
    # Signed distance of the pixel centre from the edge, half a pixel from either side.
    signed = np.where(d_in > 0, d_in - 0.5, 0.5 - d_out)
    ramp = np.clip(0.5 + signed / np.float32(radius_px), 0.0, 1.0) * np.float32(255)
    return np.rint(ramp).astype(np.uint8)


def _edge_tiles(
    fg: np.ndarray, tile: int, margin: int, *, with_background: bool
) -> list[tuple[int, int, int, int]]:
    """Tiles (y0, y1, x0, x1) whose alpha can differ from the hard mask.

    A tile needs its distances when it holds foreground and background lies within
    ``margin`` of it (and, for a centred ramp, the converse). Presence is counted on 16-px
    cells, so uniform tiles next to a far-away edge are skipped.
    """
    height, width = fg.shape
    cy, cx = -(-height // _CELL), -(-width // _CELL)
    col_starts = np.arange(0, width, _CELL)
    counts = np.empty((cy, cx), np.int64)
    for i in range(cy):
        band = fg[i * _CELL : (i + 1) * _CELL]
        col_sums = cv2.reduce(band, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[0]
        counts[i] = np.add.reduceat(col_sums, col_starts)
    cell_h = np.minimum(_CELL, height - np.arange(cy) * _CELL)
    cell_w = np.minimum(_CELL, width - col_starts)
    has_fg = _prefix(counts > 0)
    has_bg = _prefix(counts < np.outer(cell_h, cell_w))
    step, reach = tile // _CELL, -(-margin // _CELL)
    ty, tx = np.meshgrid(np.arange(0, cy, step), np.arange(0, cx, step), indexing="ij")
    core = (ty, np.minimum(ty + step, cy), tx, np.minimum(tx + step, cx))
    grown = (
        np.maximum(ty - reach, 0),
        np.minimum(ty + step + reach, cy),
        np.maximum(tx - reach, 0),
        np.minimum(tx + step + reach, cx),
    )
    need = (_box_sum(has_fg, *core) > 0) & (_box_sum(has_bg, *grown) > 0)
    if with_background:
        need |= (_box_sum(has_bg, *core) > 0) & (_box_sum(has_fg, *grown) > 0)
    return [
        (y * _CELL, min(height, (y + step) * _CELL), x * _CELL, min(width, (x + step) * _CELL))
        for y, x in zip(ty[need].tolist(), tx[need].tolist(), strict=True)
    ]


def _prefix(flags: np.ndarray) -> np.ndarray:
    """2-D inclusive prefix sum with a zero first row and column."""
    out = np.zeros((flags.shape[0] + 1, flags.shape[1] + 1), np.int64)
    np.cumsum(np.cumsum(flags, axis=0), axis=1, out=out[1:, 1:])
    return out


def _box_sum(
    prefix: np.ndarray, y0: np.ndarray, y1: np.ndarray, x0: np.ndarray, x1: np.ndarray
) -> np.ndarray:
    """Sum of the flags in cells [y0, y1) x [x0, x1), for arrays of boxes."""
    return prefix[y1, x1] - prefix[y0, x1] - prefix[y1, x0] + prefix[y0, x0]
