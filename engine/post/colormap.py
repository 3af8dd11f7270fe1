"""False-colour depth maps from shipped 256-entry tables (matplotlib's, byte for byte).

No matplotlib at run time: ``_colormap_data.py`` holds the tables (regenerate offline with
``_gen_colormaps.py``). Colouring is one ``cv2.applyColorMap`` lookup on uint8 levels.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from xdepth.post._check import depth_array
from xdepth.post._colormap_data import TABLES_HEX
from xdepth.post.normalize import finite_range, rescale

COLORMAPS: tuple[str, ...] = tuple(TABLES_HEX)


@cache
def colormap_lut(name: str) -> np.ndarray:
    """The (256, 3) uint8 RGB table of ``name`` (read-only)."""
    if name not in TABLES_HEX:
        raise ValueError(f"unknown colour map {name!r}; available: {', '.join(COLORMAPS)}")
    table = np.frombuffer(bytes.fromhex(TABLES_HEX[name]), np.uint8).reshape(256, 3)
    table.flags.writeable = False
    return table


def apply_colormap(levels_u8: np.ndarray, name: str = "inferno") -> np.ndarray:
    """RGB image of uint8 levels (0 = far end of the table, 255 = near end)."""
    if not isinstance(levels_u8, np.ndarray) or levels_u8.dtype != np.uint8:
        raise TypeError("levels_u8 must be a uint8 array (use colorize for float depth)")
    if levels_u8.ndim != 2 or levels_u8.size == 0:
        raise ValueError(f"levels_u8 must be 2-D and non-empty, got shape {levels_u8.shape}")
    lut = colormap_lut(name).reshape(256, 1, 3)
    # applyColorMap indexes a user table channel by channel and keeps its channel order.
    return cv2.applyColorMap(np.ascontiguousarray(levels_u8), np.ascontiguousarray(lut))


def colorize(
    inv_depth: np.ndarray,
    name: str = "inferno",
    depth_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Colour relative inverse depth: near = the table's bright/top end.

    ``depth_range`` (lo, hi) fixes the scale for a batch or video; by default the finite
    min-max. Non-finite pixels take the table's first colour.
    """
    x = depth_array(inv_depth, "inv_depth")
    lo, hi = depth_range if depth_range is not None else finite_range(x)
    return apply_colormap(rescale(x, lo, hi, dtype=np.uint8), name)
