"""Model-input preprocessing from a card's fields, in numpy and Pillow (no torch).

It reproduces transformers' DPT image processor: Pillow resize of the uint8 image with the
card's resampling to the size the card implies (aspect ratio and multiple-of rules), then
rescale and normalise in float32.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from xdepth.model.cards import Preprocess

_PIL_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _to_multiple(value: float, multiple: int) -> int:
    """Round to a multiple, as the DPT processor does (never below `multiple`)."""
    rounded = round(value / multiple) * multiple
    return rounded if rounded >= multiple else math.ceil(value / multiple) * multiple


def model_size(image_hw: tuple[int, int], pre: Preprocess) -> tuple[int, int]:
    """The (height, width) an image of `image_hw` is resized to before inference."""
    in_h, in_w = image_hw
    scale_h, scale_w = pre.height / in_h, pre.width / in_w
    if pre.keep_aspect_ratio:
        # Scale as little as possible: fit whichever side changes least.
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h
    return (
        _to_multiple(scale_h * in_h, pre.ensure_multiple_of),
        _to_multiple(scale_w * in_w, pre.ensure_multiple_of),
    )


def resize_for_model(
    image_u8: np.ndarray, pre: Preprocess, size_hw: tuple[int, int] | None = None
) -> np.ndarray:
    """uint8 HxWx3 -> uint8 hxwx3 at the model's input size (or `size_hw` if given)."""
    h, w = size_hw or model_size(image_u8.shape[:2], pre)
    if (h, w) == image_u8.shape[:2]:
        return image_u8
    resized = Image.fromarray(image_u8).resize((w, h), _PIL_RESAMPLE[pre.resample])
    return np.asarray(resized)


def normalize(image_u8: np.ndarray, pre: Preprocess) -> np.ndarray:
    """uint8 HxWx3 -> float32 1x3xHxW, rescaled and normalised as the card says."""
    x = image_u8.astype(np.float32)
    if pre.do_rescale:
        x = x * np.float32(pre.rescale_factor)
    if pre.do_normalize:
        mean = np.asarray(pre.mean, dtype=np.float32)
        std = np.asarray(pre.std, dtype=np.float32)
        x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def preprocess(
    image_u8: np.ndarray, pre: Preprocess, size_hw: tuple[int, int] | None = None
) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 1x3xhxw model input."""
    return normalize(resize_for_model(image_u8, pre, size_hw), pre)
