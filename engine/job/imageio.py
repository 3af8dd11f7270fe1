"""Reading images into uint8 RGB arrays, upright, with errors that name the file.

Every Pillow mode is converted to RGB on purpose, not by Pillow's default cast:

- ``L``, ``1``, ``P`` (opaque), ``RGBX``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's conversion.
- Transparency (``LA``, ``PA``, ``RGBA``, ``P`` with a transparent index): composited on
  black, so what the model sees is what a viewer shows on black and the clip's black
  background stays black. Premultiplied ``La`` and ``RGBa`` already are "on black".
- ``CMYK``: Pillow's ``R = (255 - C) (255 - K) / 255`` rule (Adobe's inverted CMYK JPEGs
  are un-inverted by Pillow's decoder); embedded ICC profiles are not applied.
- 16-bit (``I;16*``): divided by 257, so 65535 is white (Pillow's own cast saturates).
- ``I`` (32-bit integer): 0..255 kept, 0..65535 divided by 257 (16-bit data Pillow opens
  as ``I``), larger values scaled by the maximum; negatives are 0.
- ``F`` (float): 0..1 times 255, 0..255 kept, larger values by the maximum; NaN is 0.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from xdepth.errors import XDepthError, whole_number
from xdepth.post.composite import composite_color

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)
DEFAULT_MAX_PIXELS = 100_000_000  # larger images are refused as decompression bombs
_ALPHA_MODES = frozenset({"LA", "PA", "RGBA"})
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_UNDECODABLE = "unsupported pixel mode or sample format, or a damaged header"
_ORIENTATION_TAG = 0x0112


class ImageReadError(XDepthError, ValueError):
    """An input could not be read as an image; the message names the file and why."""


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image and what its EXIF says about the camera."""

    rgb: np.ndarray  # uint8 H x W x 3
    f_35mm: float | None  # EXIF FocalLengthIn35mmFilm, when present and > 0


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB as the module docstring lays out."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
        if mode == "RGB":
            return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_scale_to_u8(np.asarray(image), mode)).convert("RGB")
    if mode in ("RGBa", "La"):  # premultiplied: the colour channels already are "on black"
        channels = np.asarray(image)
        rgb = channels[..., :3] if mode == "RGBa" else np.repeat(channels[..., :1], 3, axis=2)
        return Image.fromarray(np.ascontiguousarray(rgb))
    if mode in _ALPHA_MODES:
        rgba = np.asarray(image.convert("RGBA"))
        return Image.fromarray(composite_color(rgba[..., :3].copy(), rgba[..., 3]))
    return image.convert("RGB")


def _scale_to_u8(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit integer and float grey levels -> uint8 (see the module docstring)."""
    x = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(x.max(initial=0.0))
    if mode.startswith("I;16"):
        x = x / 257.0
    elif mode == "F" and peak <= 1.0:
        x = x * 255.0
    elif peak > 65535.0 or (mode == "F" and peak > 255.0):
        x = x * (255.0 / peak)
    elif peak > 255.0:
        x = x / 257.0
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def exif_focal_35mm(image: Image.Image) -> float | None:
    """EXIF FocalLengthIn35mmFilm in millimetres, or None when absent or zero (unknown)."""
    try:
        value = image.getexif().get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.FocalLengthIn35mmFilm)
    except (OSError, ValueError, SyntaxError, TypeError):  # a damaged EXIF block: no focal
        return None
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    return None


def allow_pixels(max_pixels: int) -> None:
    """Let Pillow open images up to `max_pixels`; the limit itself is checked here.

    Pillow refuses images over twice its MAX_IMAGE_PIXELS on open; a larger limit asked for
    by the user raises Pillow's (never lowers it), so only this module's check applies.
    """
    whole_number(max_pixels, "max_pixels")
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and max_pixels > current:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _describe_unidentified(head: bytes) -> str:
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return f"a {name} file Pillow cannot decode ({_UNDECODABLE})"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return f"a WebP file Pillow cannot decode ({_UNDECODABLE})"
    return "not an image (unknown file format)"


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode an image file: upright (EXIF orientation applied), RGB, with its EXIF focal.

    Raises ImageReadError naming the file and the problem for anything that is not a
    complete, readable image of at most `max_pixels` pixels: missing, not a regular file
    (folder, FIFO, device), permission denied, empty, unknown format, truncated or corrupt
    data, an unsupported pixel mode, or too many pixels (a decompression bomb).
    """
    path = Path(path)
    allow_pixels(max_pixels)
    with open_image_file(path) as handle:
        return _decode(handle, path, max_pixels)


def open_image_file(path: Path) -> io.BufferedReader:
    """`path` opened for reading, checked to be a non-empty regular file; ImageReadError else.

    The checks look at the open file, not the name: a file may change between listing and
    reading (removed, replaced by a folder, or by a FIFO, which a plain open would wait on).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file (missing, or removed since listed)") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot open ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        os.close(fd)
        if info.st_size == 0 and stat.S_ISREG(info.st_mode):
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ImageReadError(f"{path}: {kind}, not an image file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _decode(handle: io.BufferedReader, path: Path, max_pixels: int) -> DecodedImage:
    try:
        with Image.open(handle) as image:
            pixels = image.width * image.height
            if pixels > max_pixels:
                raise ImageReadError(
                    f"{path}: {image.width}x{image.height} = {pixels} pixels exceeds the limit "
                    f"of {max_pixels} (possible decompression bomb; raise it with --max-pixels)"
                )
            image.load()
            f_35mm = exif_focal_35mm(image)
            return DecodedImage(np.asarray(to_rgb(_upright(image))), f_35mm)
    except UnidentifiedImageError:
        handle.seek(0)
        raise ImageReadError(f"{path}: {_describe_unidentified(handle.read(16))}") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: refused as a decompression bomb ({exc})") from None
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if "mode" in str(exc) and "not supported" in str(exc):
            raise ImageReadError(f"{path}: unsupported pixel mode ({exc})") from None
        raise ImageReadError(f"{path}: cannot decode ({exc})") from None


def load_rgb(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """uint8 H x W x 3 RGB of an image file, upright; see `read_image` for the errors."""
    return read_image(path, max_pixels).rgb


def image_from_array(array: np.ndarray) -> np.ndarray:
    """A caller's array as uint8 H x W x 3 RGB: grey, RGBA (on black) and 16-bit accepted."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.size == 0 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] > 4):
        raise ValueError(
            f"image must be H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA), got shape "
            f"{array.shape}"
        )
    if array.dtype == np.uint8:
        # Pillow infers L, LA, RGB or RGBA from the channel count.
        return np.asarray(to_rgb(Image.fromarray(np.ascontiguousarray(array))))
    if array.ndim == 2 and array.dtype == np.uint16:
        return np.asarray(Image.fromarray(_scale_to_u8(array, "I;16")).convert("RGB"))
    if array.ndim == 2 and np.issubdtype(array.dtype, np.floating):
        return np.asarray(Image.fromarray(_scale_to_u8(array, "F")).convert("RGB"))
    raise ValueError(
        f"image arrays must be uint8 (grey, RGB, RGBA), uint16 grey or float grey; got "
        f"{array.dtype} of shape {array.shape}"
    )


def image_from_pil(image: Image.Image) -> DecodedImage:
    """A caller's Pillow image: upright by its EXIF, converted to RGB, with its EXIF focal."""
    return DecodedImage(np.asarray(to_rgb(_upright(image))), exif_focal_35mm(image))


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF Orientation says (no copy when it is already upright)."""
    if image.getexif().get(_ORIENTATION_TAG, 1) in (1, None):
        return image
    return ImageOps.exif_transpose(image)
