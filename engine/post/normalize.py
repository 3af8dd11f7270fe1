"""Normalisation of relative inverse depth (larger = nearer) to display and mask scales.

Non-finite pixels (NaN, +-inf) are "no depth": they map to 0 in every output and never
take part in a range. A range with no spread (constant map) never divides by zero.
Work is done in row blocks that stay in cache, so a 12 MP map costs one pass over memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from xdepth.post._check import depth_array

Overflow = Literal["clip", "wrap"]
_BLOCK_ELEMS = 1 << 16  # 256 KiB of float32 per scratch block
_F255 = np.float32(255.0)


def finite_range(inv_depth: np.ndarray) -> tuple[float, float]:
    """(min, max) over the finite pixels; (0.0, 0.0) when there are none."""
    x = depth_array(inv_depth, "inv_depth")
    lo, hi = float(np.min(x)), float(np.max(x))
    if np.isfinite(lo) and np.isfinite(hi):
        return lo, hi
    finite = x[np.isfinite(x)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


def percentile_range(
    inv_depth: np.ndarray, low_pct: float = 2.0, high_pct: float = 98.0
) -> tuple[float, float]:
    """Percentiles of the finite pixels, robust to a few outliers (e.g. bicubic overshoot).

    Sorting dominates the cost: pass the model-resolution map, not the upsampled one.
    """
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ValueError(
            f"percentiles must satisfy 0 <= low < high <= 100, got {low_pct}, {high_pct}"
        )
    x = depth_array(inv_depth, "inv_depth")
    finite = x.ravel() if np.isfinite(np.sum(x, dtype=np.float64)) else x[np.isfinite(x)]
    if finite.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(finite, [low_pct, high_pct])
    return float(lo), float(hi)


def to_uint8_max(
    inv_depth: np.ndarray, max_value: float | None = None, *, overflow: Overflow = "clip"
) -> np.ndarray:
    """The seed's ``(x * 255 / np.max(x)).astype("uint8")``, bit for bit.

    Same float32 steps as numpy on a float32 array: round(x*255), then round(./max), then
    truncation. ``max_value`` fixes the scale (one scale for a batch or a video); by default
    it is the maximum of the finite pixels.

    Defined results where the seed's are not: a maximum <= 0 or no finite pixel gives all
    zeros; non-finite pixels give 0. Scaled values outside [0, 255] (bicubic undershoot
    below -max/255, or values above a fixed ``max_value``) are C-undefined casts in numpy:
    ``overflow="clip"`` (default) saturates them to 0..255; ``overflow="wrap"`` reproduces
    numpy's result on x86-64 (truncate to int32, keep the low byte), where an undershoot of
    -1 becomes 255, for parity checks against the seed.
    """
    x = depth_array(inv_depth, "inv_depth")
    if overflow not in ("clip", "wrap"):
        raise ValueError(f"overflow must be 'clip' or 'wrap', got {overflow!r}")
    # With the map's own finite maximum there is no NaN or +inf (np.max would return it),
    # and -inf clips to 0: the per-block finiteness check can be skipped.
    check_finite = True
    if max_value is None:
        peak = np.max(x)
        check_finite = not np.isfinite(peak)
        if check_finite:
            peak = np.float32(finite_range(x)[1])
    else:
        if not np.isfinite(max_value) or max_value <= 0:
            raise ValueError(f"max_value must be a finite number > 0, got {max_value!r}")
        peak = np.float32(max_value)
    out = np.zeros(x.shape, np.uint8)
    if not peak > 0:
        return out

    def scale(xb: np.ndarray, sb: np.ndarray, ob: np.ndarray, finite: bool) -> None:
        np.multiply(xb, _F255, out=sb)
        np.divide(sb, peak, out=sb)
        if overflow == "wrap":
            with np.errstate(invalid="ignore"):
                ob[...] = sb.astype(np.int32) & 0xFF
        else:
            _saturate(sb, _F255, finite)
            ob[...] = sb

    _blockwise(x, out, scale, check_finite=check_finite)
    return out


def uint8_cut(max_value: float, level: float) -> float:
    """Smallest float32 x whose ``to_uint8_max`` value (scale ``max_value``) exceeds ``level``.

    Lets a mask ``to_uint8_max(x) > level`` be taken as ``x >= cut`` straight from the
    float map, without building the uint8 map: the seed's steps are monotone in x, so the
    answer is exact (found by bisection over the float32 bit patterns).
    """
    if not np.isfinite(max_value) or max_value <= 0:
        raise ValueError(f"max_value must be a finite number > 0, got {max_value!r}")
    if not 0.0 <= level <= 255.0:
        raise ValueError(f"level must lie in [0, 255], got {level!r}")
    need = np.float32(np.floor(level) + 1.0)
    if need > 255:
        return float("inf")
    peak = np.float32(max_value)

    def reaches(bits: int) -> bool:
        x = np.array(bits, np.uint32).view(np.float32)
        return bool(x * _F255 / peak >= need)

    lo, hi = 0, int(np.array(np.inf, np.float32).view(np.uint32))  # reaches(hi) holds
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    return float(np.array(hi, np.uint32).view(np.float32))


def rescale(inv_depth: np.ndarray, lo: float, hi: float, dtype: type = np.uint8) -> np.ndarray:
    """Map [lo, hi] linearly to the full range of ``dtype`` (uint8, uint16 or float32 0..1).

    Values outside the range saturate; non-finite pixels give 0. The caller's range fixes
    the scale across a batch or a video; ``lo == hi`` (a constant map) gives all zeros.
    Integer outputs are rounded to nearest.
    """
    x = depth_array(inv_depth, "inv_depth")
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
        raise ValueError(f"range must be finite with lo <= hi, got lo={lo!r}, hi={hi!r}")
    dtype = np.dtype(dtype)
    tops = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}
    if dtype not in tops:
        raise ValueError(f"dtype must be uint8, uint16 or float32, got {dtype}")
    out = np.zeros(x.shape, dtype)
    if hi == lo:
        return out
    top = np.float32(tops[dtype])
    gain = np.float32(tops[dtype] / (hi - lo))
    offset = np.float32(lo)

    def scale(xb: np.ndarray, sb: np.ndarray, ob: np.ndarray, finite: bool) -> None:
        np.subtract(xb, offset, out=sb)
        np.multiply(sb, gain, out=sb)
        _saturate(sb, top, finite)
        if dtype != np.float32:
            np.rint(sb, out=sb)
        ob[...] = sb

    _blockwise(x, out, scale)
    return out


def normalize_minmax(inv_depth: np.ndarray, dtype: type = np.uint8) -> np.ndarray:
    """Min-max normalisation over the finite pixels (0 = farthest, top = nearest)."""
    return rescale(inv_depth, *finite_range(inv_depth), dtype=dtype)


def normalize_percentile(
    inv_depth: np.ndarray, low_pct: float = 2.0, high_pct: float = 98.0, dtype: type = np.uint8
) -> np.ndarray:
    """Normalisation between two percentiles; the tails saturate."""
    return rescale(inv_depth, *percentile_range(inv_depth, low_pct, high_pct), dtype=dtype)


def _saturate(block: np.ndarray, top: np.float32, finite: bool) -> None:
    """Clamp to [0, top] in place; NaN goes to 0 without a cast warning when not finite."""
    if finite:
        np.clip(block, np.float32(0.0), top, out=block)
    else:  # fmax/fmin drop NaN (and are 3x slower, so only here)
        np.fmax(block, np.float32(0.0), out=block)
        np.fmin(block, top, out=block)


def _blockwise(
    x: np.ndarray,
    out: np.ndarray,
    step: Callable[[np.ndarray, np.ndarray, np.ndarray, bool], None],
    *,
    check_finite: bool = True,
) -> None:
    """Run ``step(x_block, scratch, out_block, finite)`` over row blocks that stay in cache.

    Blocks holding a non-finite pixel are told so, and those pixels are set to 0 after.
    """
    width = x.shape[1]
    rows = max(1, _BLOCK_ELEMS // width)
    scratch = np.empty((rows, width), np.float32)
    for r0 in range(0, x.shape[0], rows):
        xb = x[r0 : r0 + rows]
        ob = out[r0 : r0 + rows]
        # One cheap reduction: the sum is non-finite if any pixel is (or, rarely, on overflow).
        finite = not check_finite or bool(np.isfinite(np.add.reduce(xb, axis=None)))
        step(xb, scratch[: xb.shape[0]], ob, finite)
        if not finite:
            ob[~np.isfinite(xb)] = 0
