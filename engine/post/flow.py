"""Where each pixel of a video frame was in another frame: dense optical flow between
small grey copies of the frames (OpenCV's DIS), and which pixels it explains.

A frame's `FrameSignature` (a colour histogram for scene cuts, a grey image for the flow)
is taken once, by a reader thread, from the full-size frame; the flow is then computed at
most at _FLOW_PX and resized to the model's output grid, where the temporal filter works.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

_COLOUR_LEVELS = 8.0  # grey levels of colour error beyond which the flow is not trusted
_HIST_BINS = 4  # per channel: 64 colour bins for cut detection
_GREY_PX = 320  # the longer side of the grey image kept for the flow
_FLOW_PX = 384  # the flow is computed at most at this size (then resized to the model's)


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


@dataclass(frozen=True)
class Motion:
    """For each pixel of one frame, where it is in another (``map_x``, ``map_y``: pixels,
    float32 H x W, ready for `cv2.remap`), and whether the colours agree there."""

    map_x: np.ndarray
    map_y: np.ndarray
    explained: np.ndarray  # bool H x W

    @property
    def flow(self) -> np.ndarray:
        """The displacement, float32 H x W x 2 (x, y)."""
        gx, gy = _grid(*self.map_x.shape)
        return np.dstack([self.map_x - gx, self.map_y - gy])

    def carry(self, image: np.ndarray, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
        """`image` (on the other frame's grid) brought onto this frame's pixels, edges
        repeated."""
        return cv2.remap(
            image, self.map_x, self.map_y, interpolation, borderMode=cv2.BORDER_REPLICATE
        )


def motion(before: FrameSignature, after: FrameSignature, shape_hw: tuple[int, int]) -> Motion:
    """Where each pixel of `after` was in `before`, on a ``shape_hw`` grid."""
    height, width = shape_hw
    scale = min(1.0, _FLOW_PX / max(height, width))
    size = (max(16, round(width * scale)), max(16, round(height * scale)))  # DIS: >= 12
    g0 = cv2.resize(before.grey, size, interpolation=cv2.INTER_AREA)
    g1 = cv2.resize(after.grey, size, interpolation=cv2.INTER_AREA)
    flow = _dis().calc(g1, g0, None)
    coarse = _maps(flow)
    back = cv2.remap(
        g0.astype(np.float32), *coarse, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    explained = (np.abs(back - g1) < _COLOUR_LEVELS) & _inside(*coarse)
    if size != (width, height):
        flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
        flow *= np.float32([width / size[0], height / size[1]])
        explained = cv2.resize(
            explained.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST
        ).view(bool)
    return Motion(*_maps(flow), explained)


def _dis() -> cv2.DISOpticalFlow:
    """One DIS instance per call: instances keep state and must not be shared by threads."""
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)


@lru_cache(maxsize=4)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))


def _maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A displacement (H x W x 2) as absolute remap coordinates."""
    gx, gy = _grid(*flow.shape[:2])
    return gx + flow[..., 0], gy + flow[..., 1]


def _inside(map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    height, width = map_x.shape
    return (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
