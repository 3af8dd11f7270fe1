"""Depth outputs: 16-bit PNG levels, float32 .npy and .pfm, the Facebook 3D photo pair.

Convention for every integer depth image xdepth writes: it stores relative INVERSE depth,
white = near. Level 0 is the far end of the range (``lo``), the top level (255 or 65535)
the near end (``hi``); values outside saturate, non-finite pixels are 0. Float outputs
(.npy, .pfm) keep the values as they are, NaN and inf included.
"""

from __future__ import annotations

import io
import re

import numpy as np

from xdepth.post._check import depth_array, image_array, same_size
from xdepth.post.encoders import encode_jpeg
from xdepth.post.normalize import finite_range, rescale

_PFM_HEADER = re.compile(rb"\A(P[fF])\s+(\d+)\s+(\d+)\s+(\S+)\s")


def to_uint16(inv_depth: np.ndarray, depth_range: tuple[float, float] | None = None) -> np.ndarray:
    """uint16 levels for a 16-bit grey PNG (white = near) over ``depth_range`` (lo, hi).

    The default range is the finite min-max of this map; pass one range for a batch or a
    video so that equal levels mean equal inverse depth across files.
    """
    x = depth_array(inv_depth, "inv_depth")
    lo, hi = depth_range if depth_range is not None else finite_range(x)
    return rescale(x, lo, hi, dtype=np.uint16)


def encode_npy(depth: np.ndarray) -> bytes:
    """float32 .npy bytes (``np.load`` reads them back exactly)."""
    buffer = io.BytesIO()
    np.save(buffer, depth_array(depth), allow_pickle=False)
    return buffer.getvalue()


def encode_pfm(depth: np.ndarray) -> bytes:
    """Grey PFM bytes: ``Pf``, width height, scale -1 (little-endian), rows bottom to top."""
    x = depth_array(depth)
    header = f"Pf\n{x.shape[1]} {x.shape[0]}\n-1\n".encode("ascii")
    return header + np.flipud(x).astype("<f4").tobytes()


def decode_pfm(data: bytes) -> np.ndarray:
    """PFM bytes as float32, top row first (grey ``Pf`` -> H x W, colour ``PF`` -> H x W x 3)."""
    match = _PFM_HEADER.match(data)
    if match is None:
        raise ValueError("not a PFM file: expected 'Pf' or 'PF', width, height and scale")
    kind, width, height, scale_text = match.groups()
    try:
        scale = float(scale_text)
    except ValueError:
        raise ValueError(f"PFM scale must be a number, got {scale_text!r}") from None
    if scale == 0:
        raise ValueError("PFM scale must be non-zero (its sign gives the byte order)")
    channels = 3 if kind == b"PF" else 1
    shape = (int(height), int(width), channels)
    count = shape[0] * shape[1] * channels
    body = data[match.end() :]
    if len(body) < 4 * count:
        raise ValueError(f"PFM data truncated: {len(body)} bytes for {count} floats")
    values = np.frombuffer(body, "<f4" if scale < 0 else ">f4", count=count).reshape(shape)
    out = np.flipud(values).astype(np.float32)
    return out[..., 0] if channels == 1 else out


def facebook_3d_pair(
    image: np.ndarray,
    inv_depth: np.ndarray,
    *,
    quality: int = 95,
    depth_range: tuple[float, float] | None = None,
) -> tuple[bytes, bytes]:
    """(photo.jpg, photo_depth.jpg) bytes for a Facebook 3D photo upload.

    Facebook pairs ``name.jpg`` with ``name_depth.jpg`` of the same size, a grey JPEG
    where white = near. ``inv_depth`` must already be at the image size.
    """
    image = image_array(image)
    x = depth_array(inv_depth, "inv_depth")
    same_size(image, x, "image", "inv_depth")
    lo, hi = depth_range if depth_range is not None else finite_range(x)
    depth_u8 = rescale(x, lo, hi, dtype=np.uint8)
    return encode_jpeg(image, quality), encode_jpeg(depth_u8, quality)
