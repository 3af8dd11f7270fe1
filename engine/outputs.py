"""From a depth map to the clip and its files: the seed recipe's steps, on arrays.

`clip` is the seed notebook's post-process (max-scaled uint8 depth, threshold, mask), and
`encode_outputs` turns a clip into the bytes of each output file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from xdepth.post import colorize, cutout_rgba, encode_png, to_uint8_max, to_uint16
from xdepth.post.composite import composite_color

SEED_THRESHOLD_U8 = 45


@dataclass(frozen=True)
class ClipSettings:
    """What to keep and how to write it."""

    threshold: float = SEED_THRESHOLD_U8  # keep pixels whose max-scaled depth (0-255) is above
    colormap: str = "inferno"
    png_level: int = 1  # fast PNG compression; level 6 (Pillow's default) costs about 4x more
    # Bicubic upsampling undershoots below 0 next to sharp near edges. The seed's uint8 cast
    # wraps those pixels to 255, so they are kept as "near"; "clip" saturates them to 0.
    overflow: Literal["clip", "wrap"] = "clip"


SEED = ClipSettings(overflow="wrap")  # the seed notebook, bit for bit


@dataclass(frozen=True)
class ClipResult:
    """One image's depth and clip, all at the image's own size."""

    image: np.ndarray  # uint8 HxWx3 RGB
    depth: np.ndarray  # float32 HxW, the model's output (relative inverse depth)
    depth_u8: np.ndarray  # uint8 HxW, the seed's max-scaled depth
    mask: np.ndarray  # bool HxW, the kept (near) pixels

    @cached_property
    def cutout(self) -> np.ndarray:
        """uint8 HxWx4 RGBA: the image where the mask holds, transparent elsewhere."""
        return cutout_rgba(self.image, self.mask)


def clip(image_u8: np.ndarray, depth: np.ndarray, settings: ClipSettings) -> ClipResult:
    """The seed's steps: scale by the max to 0-255, keep what lies above the threshold."""
    if depth.shape != image_u8.shape[:2]:
        raise ValueError(f"depth {depth.shape} does not match image {image_u8.shape[:2]}")
    depth_u8 = to_uint8_max(depth, overflow=settings.overflow)
    return ClipResult(image_u8, depth, depth_u8, depth_u8 > settings.threshold)


def encode_outputs(result: ClipResult, settings: ClipSettings) -> dict[str, bytes]:
    """`{"<kind>.<ext>": bytes}` for the 16-bit depth, colour depth, mask and RGBA cutout."""
    level = settings.png_level
    return {
        "depth16.png": encode_png(to_uint16(result.depth), level=level),
        "depth-color.png": encode_png(colorize(result.depth, settings.colormap), level=level),
        "mask.png": encode_png(result.mask.astype(np.uint8) * np.uint8(255), level=level),
        "cutout.png": encode_png(result.cutout, level=level),
    }


def contact_sheet(results: list[ClipResult], settings: ClipSettings) -> np.ndarray:
    """One row per image: input | colour depth | cutout on grey (images of one size)."""
    rows = []
    for result in results:
        on_grey = composite_color(result.image, result.mask, (128, 128, 128))
        rows.append(
            np.concatenate(
                [result.image, colorize(result.depth, settings.colormap), on_grey], axis=1
            )
        )
    return np.concatenate(rows, axis=0)
