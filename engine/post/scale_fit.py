"""Fitting one relative inverse depth map to another by scale and shift, robustly, for
two maps that are equally noisy (consecutive frames' raw predictions).
"""

from __future__ import annotations

import numpy as np

_FIT_PIXELS = 16_384  # a regular subsample is plenty for two parameters
_HUBER = 1.345  # Huber's constant, in robust standard deviations


def robust_fit(source: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """``(s, t)`` with ``s * source + t ~ target`` (finite pixels), for two maps equally
    noisy (consecutive raw predictions).

    The slope is the ratio of the two spreads (reduced major axis): a least-squares slope
    of one noisy map on another shrinks by the noise's share of the variance, and chained
    from frame to frame that bias compounds into a drift. Huber weights (iteratively
    reweighted) keep the pixels that moved or were mispredicted from pulling the line.
    """
    x, y, _ = _fit_sample(np.ravel(source), np.ravel(target), None)
    s, t, _ = _huber_axis(x, y)
    return s, t


def settled_fit(source: np.ndarray, target: np.ndarray, usable: np.ndarray) -> tuple[float, float]:
    """`robust_fit` of two maps on their `usable` pixels, with the part of the change that
    cannot be told from the fit's own noise taken out.

    Chained from frame to frame, every fit's error stays in the scale for good (a random
    walk the eye sees as a slow pumping), so each change is shrunk towards none by its
    noise, ``c * c^2 / (c^2 + var)`` (Wiener), with the variance from a jackknife over
    3 x 3 blocks of the frame (the model's errors come in patches, not pixels). The change
    is a gain about the middle level ``m`` plus an offset there, nearly independent of each
    other. A real jump of the model's scale, well beyond the noise, passes intact.
    """
    height, width = usable.shape
    index = np.flatnonzero(usable)
    rows, cols = np.divmod(index[:: max(1, index.size // _FIT_PIXELS)], width)
    blocks = (rows * 3 // height) * 3 + cols * 3 // width
    x, y, blocks = _fit_sample(source[rows, cols], target[rows, cols], blocks)
    s, t, weight = _huber_axis(x, y)
    if x.size < 64:
        return s, t
    middle = float(np.median(x))
    estimates = []
    for block in range(9):  # the fit without each block, at the full fit's weights
        keep = blocks != block
        if keep.all() or not keep.any():
            continue
        bs, bt = _weighted_axis(x[keep], y[keep], weight[keep])
        estimates.append((bs - 1.0, bs * middle + bt - middle))
    if len(estimates) < 4:
        return s, t
    spread = np.asarray(estimates)
    variance = (len(spread) - 1) * spread.var(axis=0)  # jackknife
    change = np.array([s - 1.0, s * middle + t - middle])
    kept = change * change**2 / np.maximum(change**2 + variance, 1e-300)
    s = 1.0 + float(kept[0])
    return s, float(middle + kept[1] - s * middle)


def _fit_sample(x: np.ndarray, y: np.ndarray, tags: np.ndarray | None):
    """The finite pairs (float64), thinned to about _FIT_PIXELS: plenty for two numbers."""
    step = max(1, x.size // _FIT_PIXELS)
    x, y = x[::step].astype(np.float64), y[::step].astype(np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok], (tags[::step][ok] if tags is not None else None)


def _huber_axis(x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """The reduced-major-axis line under Huber weights (5 reweightings), and the weights."""
    weight = np.ones_like(y)
    if x.size < 8 or np.ptp(y) <= 0:
        return 1.0, 0.0, weight
    for _ in range(5):
        s, t = _weighted_axis(x, y, weight)
        residual = np.abs(y - (s * x + t))
        sigma = max(1.4826 * float(np.median(residual)), 1e-6 * float(np.ptp(y)), 1e-12)
        weight = np.minimum(1.0, _HUBER * sigma / np.maximum(residual, 1e-300))
    return (s, t, weight) if s > 0 else (1.0, 0.0, weight)


def _weighted_axis(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """The weighted reduced-major-axis line ``y ~ s * x + t``."""
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    cov = (w * (x - mx) * (y - my)).sum()
    s = float(np.sign(cov) * np.sqrt(vy / vx)) if vx > 0 and cov != 0 else 0.0
    return s, float(my - s * mx)
