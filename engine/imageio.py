"""Reading images into uint8 RGB arrays, upright, with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from xdepth.errors import XDepthError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)
DEFAULT_MAX_PIXELS = 100_000_000  # larger images are refused as decompression bombs


class ImageReadError(XDepthError, ValueError):
    """An input could not be read as an image; the message names the file and why."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB, compositing transparency on black and scaling 16-bit/float."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16"):
            values = values / 257.0  # 16-bit full range -> 8-bit full range
        elif image.mode == "I":
            values = values / 257.0 if values.max(initial=0) > 255 else values
        else:  # "F": assume 0..1 if it fits, else 0..255
            values = values * 255.0 if values.max(initial=0) <= 1.0 else values
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to uint8 HxWx3 RGB with EXIF orientation applied.

    Raises ImageReadError naming the file and the problem for anything that is not a
    complete, readable image within `max_pixels`.
    """
    path = Path(path)
    if not os.access(path, os.R_OK):
        reason = "no such file" if not path.exists() else "permission denied"
        raise ImageReadError(f"{path}: {reason}")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            pixels = image.width * image.height
            if pixels > max_pixels:
                raise ImageReadError(
                    f"{path}: {image.width}x{image.height} = {pixels} pixels exceeds the "
                    f"limit of {max_pixels} (raise it with --max-pixels)"
                )
            image.load()
            upright = ImageOps.exif_transpose(image)
            return np.asarray(to_rgb(upright))
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image Pillow can identify") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, ImageReadError):
            raise
        raise ImageReadError(f"{path}: cannot decode ({exc})") from None
