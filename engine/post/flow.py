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


def motion(before: FrameSignature, after: FrameSignature, shape_hw: tuple[int, int]):
    """``(flow, explained)`` on a ``shape_hw`` grid: for each pixel of `after`, where it was
    in `before` (pixels, float32 H x W x 2), and whether the colours agree there (bool)."""
    height, width = shape_hw
    scale = min(1.0, _FLOW_PX / max(height, width))
    size = (max(16, round(width * scale)), max(16, round(height * scale)))  # DIS: >= 12
    g0 = cv2.resize(before.grey, size, interpolation=cv2.INTER_AREA)
    g1 = cv2.resize(after.grey, size, interpolation=cv2.INTER_AREA)
    flow = _dis().calc(g1, g0, None)
    back = warp(g0.astype(np.float32), flow, cv2.INTER_LINEAR)
    explained = (np.abs(back - g1) < _COLOUR_LEVELS) & inside(flow)
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


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int) -> np.ndarray:
    """``image(p + flow(p))`` for every pixel p, edges repeated."""
    gx, gy = _grid(*flow.shape[:2])
    return cv2.remap(
        image, gx + flow[..., 0], gy + flow[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE
    )


def inside(flow: np.ndarray) -> np.ndarray:
    height, width = flow.shape[:2]
    gx, gy = _grid(height, width)
    x, y = gx + flow[..., 0], gy + flow[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
