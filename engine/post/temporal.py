"""Temporal stability for video: one depth scale from frame to frame (pure numpy).

A relative-depth model gives each frame's inverse depth its own unknown scale and shift,
so normalising each frame by its own range makes the depth pump and the mask jump. The
`TemporalAligner` sees the frames in order, at the model's resolution, and for each one:

1. moves the running reference (the previous filtered frame) with the camera (a global
   shift, by phase correlation of grey thumbnails), then fits ``s * inv + t`` to it by
   matching robust quantiles (moving edges, newly seen areas and the model's local
   mistakes barely move them);
2. filters each pixel with its history where the two agree (the model's frame-to-frame
   noise) and keeps the new value where they differ (something moved);
3. normalises over a running range (an exponential average of the aligned frames' min and
   max, the seed's scale) instead of the frame's own,
   so a threshold such as ``abs:45`` cuts at the same inverse depth from frame to frame;
4. detects scene cuts (a colour histogram that jumps, or a frame that the reference cannot
   explain) and starts afresh there: the frame after a cut is normalised as a single image.

It cannot fix a model that changes its mind about the scene's layout (a surface that moves
from near to far between frames): a scale and shift per frame only remove what is global.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

_FIT_PIXELS = 16_384  # a regular subsample is plenty for two parameters
_HISTORY_WEIGHT = 0.6  # a still pixel's share of its history in the filtered frame
_CHANGE_MADS = 4.0  # differences beyond this many median deviations are real changes
_RANGE_WEIGHT = 0.1  # how much it moves the running range
_HIST_BINS = 4  # per channel: 64 colour bins for cut detection
_CUT_HISTOGRAM = 0.5  # L1 distance between consecutive colour histograms (0..2)
_CUT_INLIERS = 0.5  # share of pixels the fit explains, below which the frame starts anew
_MIN_SCALE = 0.2  # a frame that needs a larger change of scale starts a new shot
_THUMB_PX = 64  # the grey thumbnail that measures the camera's motion
_MIN_RESPONSE = 0.1  # phase correlation peaks below this are not trusted


@dataclass(frozen=True)
class FrameAlignment:
    """How one frame was put on the video's scale: ``scale * inv + shift``, shown over
    ``depth_range`` (lo, hi); ``cut`` marks a frame that starts a new shot."""

    scale: float = 1.0
    shift: float = 0.0
    depth_range: tuple[float, float] | None = None  # None: the frame's own min-max
    cut: bool = False


@dataclass(frozen=True)
class FrameSignature:
    """What the aligner needs of a frame's pixels: a colour histogram (cuts) and a small
    grey thumbnail (the camera's motion since the previous frame)."""

    histogram: np.ndarray  # 64 bins, sum 1
    thumbnail: np.ndarray  # float32 _THUMB_PX x _THUMB_PX


def frame_signature(rgb: np.ndarray) -> FrameSignature:
    """The signature of a uint8 RGB frame (a few hundred microseconds at 1080p)."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 4096)))
    sample = rgb[::step, ::step].reshape(-1, 3) // (256 // _HIST_BINS)
    codes = (sample[:, 0].astype(np.int32) * _HIST_BINS + sample[:, 1]) * _HIST_BINS + sample[:, 2]
    hist = np.bincount(codes, minlength=_HIST_BINS**3).astype(np.float64)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    thumb = cv2.resize(grey, (_THUMB_PX, _THUMB_PX), interpolation=cv2.INTER_AREA)
    return FrameSignature(hist / max(hist.sum(), 1.0), thumb.astype(np.float32))


def camera_shift(before: FrameSignature, after: FrameSignature) -> tuple[float, float]:
    """The image's shift (dx, dy) from `before` to `after`, as a share of its width and
    height (phase correlation: a pan or a sideways move; 0 when unsure)."""
    window = _hann()
    (dx, dy), response = cv2.phaseCorrelate(before.thumbnail, after.thumbnail, window)
    if response < _MIN_RESPONSE:
        return 0.0, 0.0
    return dx / _THUMB_PX, dy / _THUMB_PX


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    return cv2.createHanningWindow((_THUMB_PX, _THUMB_PX), cv2.CV_32F)


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`image` moved by (dx, dy) pixels, edges repeated."""
    if dx == 0 and dy == 0:
        return image
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    size = (image.shape[1], image.shape[0])
    return cv2.warpAffine(
        image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def robust_fit(source: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """``(s, t, agreeing share)`` mapping `source` onto `target` (finite pixels).

    Scale and shift match the two maps' 10th, 50th and 90th percentiles: robust to the
    pixels that moved or were mispredicted, and unbiased where a least-squares slope of one
    noisy map on another shrinks a little at every frame and drifts over a long video.
    The share of pixels within 3 robust deviations of the fit tells a continuing shot
    from a new one."""
    x = source.ravel().astype(np.float64)
    y = target.ravel().astype(np.float64)
    step = max(1, x.size // _FIT_PIXELS)
    x, y = x[::step], y[::step]
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 8:
        return 1.0, 0.0, 0.0
    qx, qy = np.percentile(x, [10, 50, 90]), np.percentile(y, [10, 50, 90])
    if qx[2] <= qx[0]:
        return 1.0, float(qy[1] - qx[1]), 0.0
    s = (qy[2] - qy[0]) / (qx[2] - qx[0])
    t = qy[1] - s * qx[1]
    residual = np.abs(s * x + t - y)
    floor = max(float(np.median(residual)) * 1.4826, 1e-3 * (qy[2] - qy[0]), 1e-12)
    return float(s), float(t), float(np.mean(residual <= 3.0 * floor))


@dataclass
class TemporalAligner:
    """The running state of one video; `update` takes its frames in order."""

    cuts: list[int] = field(default_factory=list)  # frame indices that started a new shot
    _reference: np.ndarray | None = None
    _range: tuple[float, float] | None = None
    _signature: FrameSignature | None = None

    def update(
        self, index: int, inv_depth: np.ndarray, signature: FrameSignature | None = None
    ) -> tuple[np.ndarray, FrameAlignment]:
        """Frame `index` (model-resolution inverse depth) on the video's scale, filtered,
        with its alignment; the state moves on by it."""
        x = np.asarray(inv_depth, np.float32)
        cut = self._histogram_jump(signature)
        previous, self._signature = self._signature, signature
        fit = None
        if not cut and self._reference is not None and self._reference.shape == x.shape:
            if previous is not None and signature is not None:  # follow the camera
                dx, dy = camera_shift(previous, signature)
                height, width = x.shape
                self._reference = _shifted(self._reference, dx * width, dy * height)
            s, t, share = robust_fit(x, self._reference)
            if _MIN_SCALE < s < 1 / _MIN_SCALE and share >= _CUT_INLIERS:
                fit = (s, t)
        if fit is None:
            if self._reference is not None:
                self.cuts.append(index)
            return x, self._restart(x, cut=self._reference is not None)
        s, t = fit
        aligned = x * np.float32(s) + np.float32(t)
        aligned = self._filter(aligned)
        self._reference = aligned
        lo, hi = _finite_min_max(aligned)
        old_lo, old_hi = self._range  # type: ignore[misc]
        self._range = (
            (1 - _RANGE_WEIGHT) * old_lo + _RANGE_WEIGHT * lo,
            (1 - _RANGE_WEIGHT) * old_hi + _RANGE_WEIGHT * hi,
        )
        return aligned, FrameAlignment(s, t, self._range, cut=False)

    def _filter(self, aligned: np.ndarray) -> np.ndarray:
        """Average each pixel with its history where it agrees with it (the model's noise),
        keep it where it departs (something moved): a recursive filter that stops at
        changes, as video denoisers do. Agreement is measured against the frame's robust
        deviation from the reference."""
        ref = self._reference
        diff = aligned - ref
        finite = np.isfinite(diff)
        sample = np.abs(diff[finite])[:: max(1, diff.size // _FIT_PIXELS)]
        if sample.size == 0:
            return aligned
        tau = max(float(np.median(sample)) * _CHANGE_MADS, 1e-12)
        weight = _HISTORY_WEIGHT * np.exp(-np.square(np.where(finite, diff, np.inf) / tau))
        return (aligned - weight.astype(np.float32) * diff.astype(np.float32)).astype(np.float32)

    def _histogram_jump(self, signature: np.ndarray | None) -> bool:
        if signature is None or self._signature is None:
            return False
        return float(np.abs(signature.histogram - self._signature.histogram).sum()) > _CUT_HISTOGRAM

    def _restart(self, x: np.ndarray, cut: bool) -> FrameAlignment:
        """A first frame, or the first after a cut: its own scale, its own min-max."""
        lo, hi = _finite_min_max(x)
        self._reference = np.where(np.isfinite(x), x, np.float32(lo)).astype(np.float32)
        self._range = (lo, hi)
        return FrameAlignment(1.0, 0.0, None, cut=cut)


def _finite_min_max(x: np.ndarray) -> tuple[float, float]:
    finite = x[np.isfinite(x)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
