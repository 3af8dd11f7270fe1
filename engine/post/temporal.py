"""Temporal stability for video: one depth scale from frame to frame, and the model's
frame-to-frame noise smoothed along the motion, over the frames before and after
(numpy + OpenCV).

A relative-depth model gives each frame's inverse depth its own unknown scale and shift,
and its own noise: normalising each frame by its own range makes the depth pump and the
mask jump. The `TemporalAligner` sees the frames in order, at the model's resolution, and
for each one:

1. follows the motion (`xdepth.post.flow`): optical flow to the previous frame carries that
   frame's maps onto this one; pixels the flow cannot explain (newly seen, occluded, out of
   the frame: their colours disagree) have no history;
2. fits ``s * inv + t`` between this frame's and the previous frame's raw prediction on the
   explained pixels (`xdepth.post.scale_fit`: robust, symmetric in the two, its noise
   shrunk away) and chains it onto the previous frame's scale;
3. smooths each pixel along the motion with an exponential window over the frames before
   it and up to `lag_frames` after it (a forward filter, then a backward pass over the
   frames held back), keeping its own value where the two disagree by much of the depth
   span (something the flow missed). The window is centred, so a scene the model reads
   differently as the view moves is not smeared behind the motion, as a filter over past
   frames alone smears it; a frame leaves `lag_frames` frames after it arrives;
4. normalises over a running range (it starts at the extremes of a shot's first frames,
   widens within a few frames to take in a frame's extremes beyond it and narrows
   slowly) instead of each frame's own, so a threshold such as
   ``abs:45`` cuts at nearly the same inverse depth from frame to frame;
5. detects scene cuts (a colour histogram that jumps, a frame the motion cannot explain,
   or one that needs an implausible change of scale) and starts afresh there: the frames
   held back are released first, then the new shot begins on its own scale.

It cannot fix a model that changes its mind about the scene's layout (a surface that moves
from near to far between frames), nor errors that travel with the image content (a painted
shape the model reads as relief moves with the paint): smoothing along the motion keeps
those, as it should keep real structure.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from xdepth.post.flow import FrameSignature, Motion, motion
from xdepth.post.scale_fit import settled_fit

LAG_FRAMES = 6  # frames a frame waits for those after it (the backward pass's reach)
_HISTORY_WEIGHT = 0.7  # each neighbour's share, per frame away, in the exponential window
_AGREE_SPAN = 2.0  # a neighbour fades as the difference nears this share of the depth span
_SPAN_PIXELS = 16_384  # pixels sampled for a frame's depth span
_RANGE_WIDEN = 0.3  # share of the gap to a frame's wider extremes the range takes, per frame
_RANGE_NARROW = 0.02  # and to its narrower ones
_CUT_HISTOGRAM = 0.5  # L1 distance between consecutive colour histograms (0..2)
_CUT_EXPLAINED = 0.5  # share of pixels the motion must explain, else a new shot
_MIN_SCALE = 0.2  # a frame that needs a larger change of scale starts a new shot


@dataclass(frozen=True)
class FrameAlignment:
    """How one frame was put on the video's scale: ``scale * inv + shift``, shown over
    ``depth_range`` (lo, hi); ``cut`` marks a frame that starts a new shot."""

    scale: float = 1.0
    shift: float = 0.0
    depth_range: tuple[float, float] | None = None  # None: the frame's own min-max
    cut: bool = False


@dataclass(eq=False)
class _Frame:
    """A frame of the current shot, held until the frames after it have been seen."""

    index: int
    aligned: np.ndarray  # scale * inv + shift, holes filled from the history
    forward: np.ndarray  # smoothed over this frame and those before it
    span: float  # the spread of its values (5th to 95th percentile)
    scale: float
    shift: float
    signature: FrameSignature | None
    first: bool = False  # starts a shot (the video's first frame, or a cut)
    cut: bool = False
    holes: np.ndarray | None = None  # pixels the model gave no finite value
    ahead: Motion | None = None  # each pixel's place in the next frame (None: held still)


@dataclass
class TemporalAligner:
    """The running state of one video: `push` its frames in order, `finish` at its end;
    both return the frames now settled, in order, as ``(index, inv_depth, alignment)``."""

    lag_frames: int = LAG_FRAMES
    cuts: list[int] = field(default_factory=list)  # frame indices that started a new shot
    _held: deque[_Frame] = field(default_factory=deque)
    _newest: _Frame | None = None
    _raw: np.ndarray | None = None  # the newest raw prediction
    _gain: tuple[float, float] = (1.0, 0.0)  # its (scale, shift) onto the video's scale
    _range: tuple[float, float] | None = None

    def push(
        self, index: int, inv_depth: np.ndarray, signature: FrameSignature | None = None
    ) -> list[tuple[int, np.ndarray, FrameAlignment]]:
        """Frame `index` (model-resolution inverse depth); the frames it settles."""
        x = np.asarray(inv_depth, np.float32)
        prev = self._newest
        if prev is None or prev.aligned.shape != x.shape or _jump(prev.signature, signature):
            return self._start_shot(index, x, signature)
        seen = motion(prev.signature, signature, x.shape) if _both(prev, signature) else None
        carried, carried_raw, explained = _carry(seen, prev.forward, self._raw)
        explained &= np.isfinite(x)
        if explained.mean() < _CUT_EXPLAINED:  # the motion does not explain this frame
            return self._start_shot(index, x, signature)
        lo, hi = _finite_min_max(x)
        usable = explained & (x > lo) & (x < hi)  # values clamped at an end tell no scale
        step, offset = settled_fit(x, carried_raw, usable)
        if not _MIN_SCALE < step < 1 / _MIN_SCALE:
            return self._start_shot(index, x, signature)
        gain, bias = self._gain
        s, t = gain * step, gain * offset + bias
        self._raw, self._gain = x, (s, t)
        aligned = x * np.float32(s) + np.float32(t)
        holes = None if np.isfinite(aligned).all() else ~np.isfinite(aligned)
        if holes is not None:
            aligned = np.where(holes, carried, aligned)
        forward = _toward(aligned, carried, explained, prev.span)
        if self.lag_frames and prev in self._held:
            prev.ahead = (
                motion(signature, prev.signature, x.shape) if _both(prev, signature) else None
            )
        frame = _Frame(index, aligned, forward, _span(forward), s, t, signature, holes=holes)
        return self._hold(frame)

    def finish(self) -> list[tuple[int, np.ndarray, FrameAlignment]]:
        """Every frame still held, settled with the frames after it seen so far: at the
        video's end, or where a frame will not come (it failed); the shot goes on."""
        return self._release(keep=0)

    def _start_shot(self, index: int, x: np.ndarray, signature: FrameSignature | None):
        """A first frame, or the first after a cut: its own scale (the held frames of the
        shot before are released first)."""
        settled = self._release(keep=0)
        cut = self._newest is not None
        if cut:
            self.cuts.append(index)
        holes = None if np.isfinite(x).all() else ~np.isfinite(x)
        base = x if holes is None else np.where(holes, np.float32(_finite_min_max(x)[0]), x)
        self._raw, self._gain = base, (1.0, 0.0)
        frame = _Frame(index, base, base, _span(base), 1.0, 0.0, signature, True, cut, holes)
        return settled + self._hold(frame)

    def _hold(self, frame: _Frame) -> list[tuple[int, np.ndarray, FrameAlignment]]:
        self._newest = frame
        self._held.append(frame)
        return self._release(keep=self.lag_frames)

    def _release(self, keep: int) -> list[tuple[int, np.ndarray, FrameAlignment]]:
        """The oldest held frames beyond `keep`, each smoothed with the frames after it."""
        settled = []
        while len(self._held) > keep:
            frame = self._held.popleft()
            depth = _two_sided(frame, list(self._held))
            own = _finite_min_max(depth)
            if frame.first or self._range is None:
                self._range = _shot_range(own, self._held)
            else:
                self._range = _follow_range(self._range, own)
            if frame.holes is not None:
                depth[frame.holes] = np.nan
            alignment = FrameAlignment(frame.scale, frame.shift, self._range, frame.cut)
            settled.append((frame.index, depth, alignment))
        return settled


def _both(prev: _Frame, signature: FrameSignature | None) -> bool:
    return prev.signature is not None and signature is not None


def _carry(seen: Motion | None, *maps: np.ndarray) -> tuple[np.ndarray, ...]:
    """`maps` carried along the motion onto the newer frame, and which pixels it explains."""
    if seen is None:
        return (*maps, np.ones(maps[0].shape, bool))
    carried = [seen.carry(m) for m in maps]
    explained = seen.explained.copy()
    for m in carried:
        explained &= np.isfinite(m)
    return (*carried, explained)


def _two_sided(frame: _Frame, after: list[_Frame]) -> np.ndarray:
    """The frame's forward-smoothed map, joined by a backward pass over the frames after it
    (same weights): the centred exponential window ``w^|k|`` along the motion."""
    if not after:
        return frame.forward.copy()
    backward = after[-1].aligned
    for near, far in zip(after[-2::-1], after[:0:-1], strict=True):
        carried, explained = _carry(near.ahead, backward)
        backward = _toward(near.aligned, carried, explained, far.span)
    carried, explained = _carry(frame.ahead, backward)
    weight = _weight(frame.aligned, carried, explained, after[0].span)
    return ((frame.forward + weight * carried) / (1 + weight)).astype(np.float32)


def _toward(value: np.ndarray, carried: np.ndarray, explained: np.ndarray, span: float):
    """One step of the exponential filter: each pixel moved toward its neighbour's value
    carried along the motion, by the neighbour's `_weight`."""
    return value - _weight(value, carried, explained, span) * (value - carried)


def _weight(value: np.ndarray, carried: np.ndarray, explained: np.ndarray, span: float):
    """A neighbour's weight per pixel: _HISTORY_WEIGHT where explained, fading as it
    differs from the pixel's own value by much of the depth span (a change the flow did
    not see), 0 where unexplained."""
    weight = np.subtract(value, carried, dtype=np.float32)
    weight *= np.float32(1.0 / (_AGREE_SPAN * max(span, 1e-12)))
    np.square(weight, out=weight)
    np.negative(weight, out=weight)
    np.exp(weight, out=weight)
    weight *= np.float32(_HISTORY_WEIGHT)
    weight[~explained] = 0.0
    return weight


def _span(x: np.ndarray) -> float:
    """The spread of a map's values (5th to 95th percentile of a regular sample)."""
    sample = x.ravel()[:: max(1, x.size // _SPAN_PIXELS)]
    sample = sample[np.isfinite(sample)]
    return float(np.ptp(np.percentile(sample, [5, 95]))) if sample.size else 1.0


def _shot_range(own: tuple[float, float], held: deque[_Frame]) -> tuple[float, float]:
    """Where a shot's range starts: the extremes of its first frame and of those held after
    it in the same shot (up to `lag_frames`), so that it rarely has to widen (and clip
    meanwhile) over the shot's first frames, as one frame's extremes would make it."""
    lows, highs = [own[0]], [own[1]]
    for frame in held:
        if frame.first:
            break
        lo, hi = _finite_min_max(frame.forward)
        lows.append(lo)
        highs.append(hi)
    return min(lows), max(highs)


def _follow_range(old: tuple[float, float], new: tuple[float, float]) -> tuple[float, float]:
    """The running range: it widens within a few frames to take in a frame's extremes
    (values beyond it show at the end of the scale meanwhile, as a camera's exposure
    adapts), so one frame's stray extreme does not shift every grey level; it narrows
    slowly when the values draw back."""
    (old_lo, old_hi), (lo, hi) = old, new
    lo = old_lo + (_RANGE_WIDEN if lo < old_lo else _RANGE_NARROW) * (lo - old_lo)
    hi = old_hi + (_RANGE_WIDEN if hi > old_hi else _RANGE_NARROW) * (hi - old_hi)
    return lo, hi


def _jump(before: FrameSignature | None, after: FrameSignature | None) -> bool:
    """A scene cut by colour (consecutive histograms far apart), or frames of another size
    (the stream changed size: its motion cannot be followed across)."""
    if before is None or after is None:
        return False
    if before.grey.shape != after.grey.shape:
        return True
    return float(np.abs(after.histogram - before.histogram).sum()) > _CUT_HISTOGRAM


def _finite_min_max(x: np.ndarray) -> tuple[float, float]:
    finite = x[np.isfinite(x)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
