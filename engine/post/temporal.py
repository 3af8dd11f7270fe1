"""Temporal stability for video: one depth scale from frame to frame, and the model's
frame-to-frame noise filtered along the motion (numpy + OpenCV).

A relative-depth model gives each frame's inverse depth its own unknown scale and shift,
and its own noise: normalising each frame by its own range makes the depth pump and the
mask jump. The `TemporalAligner` sees the frames in order, at the model's resolution, and
for each one:

1. follows the motion: dense optical flow (OpenCV's DIS) from this frame's grey image to
   the previous one carries the previous output onto this frame; pixels the flow cannot
   explain (newly seen, occluded, out of the frame: their colours disagree) have no history;
2. fits ``s * inv + t`` between this frame's and the previous frame's raw prediction
   (carried the same way) on the explained pixels, robustly (Huber weights, symmetric in
   the two: both are equally noisy, so the fit has no slope bias to compound over a long
   video), and chains it onto the previous frame's scale;
3. averages each explained pixel with its history (a recursive filter along the motion, as
   video denoisers do), keeping the new value where the two disagree by much of the depth
   span (something the flow missed);
4. normalises over a running range (an exponential average of the filtered frames' min and
   max) instead of each frame's own, so a threshold such as ``abs:45`` cuts at nearly the
   same inverse depth from frame to frame;
5. detects scene cuts (a colour histogram that jumps, a frame the motion cannot explain,
   or one that needs an implausible change of scale)
   and starts afresh there: the frame after a cut is normalised as a single image.

It cannot fix a model that changes its mind about the scene's layout (a surface that moves
from near to far between frames), nor errors that travel with the image content (a painted
shape the model reads as relief moves with the paint): filtering along the motion keeps
those, as it should keep real structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

_FIT_PIXELS = 16_384  # a regular subsample is plenty for two parameters
_HISTORY_WEIGHT = 0.7  # an explained pixel's share of its history in the filtered frame
_AGREE_SPAN = 0.5  # history fades as the difference nears this share of the depth span
_COLOUR_LEVELS = 8.0  # grey levels of colour error beyond which the flow is not trusted
_RANGE_WEIGHT = 0.02  # how fast the running range narrows, per frame
_HIST_BINS = 4  # per channel: 64 colour bins for cut detection
_CUT_HISTOGRAM = 0.5  # L1 distance between consecutive colour histograms (0..2)
_CUT_EXPLAINED = 0.5  # share of pixels the motion must explain, else a new shot
_MIN_SCALE = 0.2  # a frame that needs a larger change of scale starts a new shot
_GREY_PX = 320  # the longer side of the grey image kept for the flow
_FLOW_PX = 384  # the flow is computed at most at this size (then resized to the model's)
_HUBER = 1.345  # Huber's constant, in robust standard deviations


@dataclass(frozen=True)
class FrameSignature:
    """What the aligner needs of a frame's pixels: a colour histogram (cuts) and a small
    grey image (the motion since the previous frame)."""

    histogram: np.ndarray  # 64 bins, sum 1
    grey: np.ndarray  # uint8, longer side at most _GREY_PX


def frame_signature(rgb: np.ndarray) -> FrameSignature:
    """The signature of a uint8 RGB frame (about a millisecond at 1080p)."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 4096)))
    sample = rgb[::step, ::step].reshape(-1, 3) // (256 // _HIST_BINS)
    codes = (sample[:, 0].astype(np.int32) * _HIST_BINS + sample[:, 1]) * _HIST_BINS + sample[:, 2]
    hist = np.bincount(codes, minlength=_HIST_BINS**3).astype(np.float64)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = _fit_within(grey, _GREY_PX)
    return FrameSignature(hist / max(hist.sum(), 1.0), grey)


def _fit_within(image: np.ndarray, longest_px: int) -> np.ndarray:
    scale = longest_px / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def motion(before: FrameSignature, after: FrameSignature, shape_hw: tuple[int, int]):
    """``(flow, explained)`` on a ``shape_hw`` grid: for each pixel of `after`, where it was
    in `before` (pixels, float32 H x W x 2), and whether the colours agree there (bool)."""
    height, width = shape_hw
    scale = min(1.0, _FLOW_PX / max(height, width))
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    g0 = cv2.resize(before.grey, size, interpolation=cv2.INTER_AREA)
    g1 = cv2.resize(after.grey, size, interpolation=cv2.INTER_AREA)
    flow = _dis().calc(g1, g0, None)
    back = _warp(g0.astype(np.float32), flow, cv2.INTER_LINEAR)
    explained = (np.abs(back - g1) < _COLOUR_LEVELS) & _inside(flow)
    if size != (width, height):
        flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
        flow *= np.float32([width / size[0], height / size[1]])
        explained = cv2.resize(explained.view(np.uint8), (width, height), cv2.INTER_NEAREST) > 0
    return flow, explained


def _dis() -> cv2.DISOpticalFlow:
    """One DIS instance per call: instances keep state and must not be shared by threads."""
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)


@lru_cache(maxsize=4)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))


def _warp(image: np.ndarray, flow: np.ndarray, interpolation: int) -> np.ndarray:
    """``image(p + flow(p))`` for every pixel p, edges repeated."""
    gx, gy = _grid(*flow.shape[:2])
    return cv2.remap(
        image, gx + flow[..., 0], gy + flow[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE
    )


def _inside(flow: np.ndarray) -> np.ndarray:
    height, width = flow.shape[:2]
    gx, gy = _grid(height, width)
    x, y = gx + flow[..., 0], gy + flow[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


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


@dataclass(frozen=True)
class FrameAlignment:
    """How one frame was put on the video's scale: ``scale * inv + shift``, shown over
    ``depth_range`` (lo, hi); ``cut`` marks a frame that starts a new shot."""

    scale: float = 1.0
    shift: float = 0.0
    depth_range: tuple[float, float] | None = None  # None: the frame's own min-max
    cut: bool = False


@dataclass
class TemporalAligner:
    """The running state of one video; `update` takes its frames in order."""

    cuts: list[int] = field(default_factory=list)  # frame indices that started a new shot
    _reference: np.ndarray | None = None  # the previous output (filtered, on the scale)
    _raw: np.ndarray | None = None  # the previous raw prediction
    _gain: tuple[float, float] = (1.0, 0.0)  # the previous raw's (scale, shift) onto the scale
    _range: tuple[float, float] | None = None
    _signature: FrameSignature | None = None

    def update(
        self, index: int, inv_depth: np.ndarray, signature: FrameSignature | None = None
    ) -> tuple[np.ndarray, FrameAlignment]:
        """Frame `index` (model-resolution inverse depth) on the video's scale, filtered,
        with its alignment; the state moves on by it."""
        x = np.asarray(inv_depth, np.float32)
        previous, self._signature = self._signature, signature
        if (
            self._reference is None
            or self._reference.shape != x.shape
            or _jump(previous, signature)
        ):
            return x, self._restart(index, x)
        if previous is not None and signature is not None:
            flow, explained = motion(previous, signature, x.shape)
            carried = _warp(self._reference, flow, cv2.INTER_CUBIC)
            carried_raw = _warp(self._raw, flow, cv2.INTER_CUBIC)
        else:  # no pixels to follow: the camera is taken as still
            carried, carried_raw, explained = self._reference, self._raw, np.ones(x.shape, bool)
        explained &= np.isfinite(x) & np.isfinite(carried) & np.isfinite(carried_raw)
        if explained.mean() < _CUT_EXPLAINED:  # the motion does not explain this frame
            return x, self._restart(index, x)
        lo, hi = _finite_min_max(x)
        usable = explained & (x > lo) & (x < hi)  # values clamped at an end tell no scale
        step, offset = settled_fit(x, carried_raw, usable)
        if not _MIN_SCALE < step < 1 / _MIN_SCALE:
            return x, self._restart(index, x)
        gain, bias = self._gain
        s, t = gain * step, gain * offset + bias
        self._raw, self._gain = x, (s, t)
        aligned = x * np.float32(s) + np.float32(t)
        filtered = _filter(aligned, carried, explained)
        self._reference = np.where(np.isfinite(filtered), filtered, carried).astype(np.float32)
        self._range = _follow_range(self._range, _finite_min_max(filtered))  # type: ignore[arg-type]
        return filtered, FrameAlignment(s, t, self._range, cut=False)

    def _restart(self, index: int, x: np.ndarray) -> FrameAlignment:
        """A first frame, or the first after a cut: its own scale, its own min-max."""
        cut = self._reference is not None
        if cut:
            self.cuts.append(index)
        lo, hi = _finite_min_max(x)
        self._reference = np.where(np.isfinite(x), x, np.float32(lo)).astype(np.float32)
        self._raw, self._gain = self._reference, (1.0, 0.0)
        self._range = (lo, hi)
        return FrameAlignment(1.0, 0.0, None, cut=cut)


def _filter(aligned: np.ndarray, carried: np.ndarray, explained: np.ndarray) -> np.ndarray:
    """Each explained pixel averaged with its history along the motion; the history fades
    where the two differ by much of the depth span (a change the flow did not see)."""
    finite = carried[explained]
    if finite.size == 0:
        return aligned
    lo, hi = np.percentile(finite[:: max(1, finite.size // _FIT_PIXELS)], [5, 95])
    span = max(float(hi - lo), 1e-12)
    diff = np.where(explained, aligned - carried, np.float32(np.inf))
    weight = _HISTORY_WEIGHT * np.exp(-np.square(diff / np.float32(_AGREE_SPAN * span)))
    return np.where(explained, aligned - weight * (aligned - carried), aligned).astype(np.float32)


def _follow_range(old: tuple[float, float], new: tuple[float, float]) -> tuple[float, float]:
    """The running range: it widens at once to take in a frame's values (no clipping, and
    no pumping while an object approaches), and narrows slowly when they draw back."""
    (old_lo, old_hi), (lo, hi) = old, new
    lo = lo if lo < old_lo else old_lo + _RANGE_WEIGHT * (lo - old_lo)
    hi = hi if hi > old_hi else old_hi + _RANGE_WEIGHT * (hi - old_hi)
    return lo, hi


def _jump(before: FrameSignature | None, after: FrameSignature | None) -> bool:
    """A scene cut by colour: consecutive histograms far apart."""
    if before is None or after is None:
        return False
    return float(np.abs(after.histogram - before.histogram).sum()) > _CUT_HISTOGRAM


def _finite_min_max(x: np.ndarray) -> tuple[float, float]:
    finite = x[np.isfinite(x)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
