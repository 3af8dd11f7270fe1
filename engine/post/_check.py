"""Input checks shared by the post-process functions (arrays are checked where they enter)."""

from __future__ import annotations

import numpy as np

from xdepth.errors import whole_number


def depth_array(depth: object, name: str = "depth") -> np.ndarray:
    """Return `depth` as a 2-D float32 array (float16/float64 are converted, not copied twice)."""
    if not isinstance(depth, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(depth).__name__}")
    if depth.ndim != 2:
        raise ValueError(f"{name} must be 2-D (H x W), got shape {depth.shape}")
    if depth.size == 0:
        raise ValueError(f"{name} is empty (shape {depth.shape})")
    if not np.issubdtype(depth.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array (float32), got {depth.dtype}")
    return np.ascontiguousarray(depth, dtype=np.float32)  # OpenCV needs C order


def image_array(image: object, name: str = "image", channels: tuple[int, ...] = (3,)) -> np.ndarray:
    """Check a uint8 H x W x C image (RGB, or RGBA when 4 is allowed)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in channels or image.shape[0] * image.shape[1] == 0:
        want = " or ".join(f"H x W x {c}" for c in channels)
        raise ValueError(f"{name} must be {want} with H, W > 0, got shape {image.shape}")
    return np.ascontiguousarray(image)


def mask_array(mask: object, name: str = "mask") -> np.ndarray:
    """Check a bool H x W mask."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(mask).__name__}")
    if mask.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array, got {mask.dtype}")
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"{name} must be 2-D (H x W) and non-empty, got shape {mask.shape}")
    return np.ascontiguousarray(mask)


def same_size(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    """Raise when two arrays do not cover the same H x W."""
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(
            f"{a_name} is {a.shape[0]}x{a.shape[1]} (HxW) but {b_name} is "
            f"{b.shape[0]}x{b.shape[1]}; they must match"
        )


def alpha_u8(alpha: object, name: str = "alpha") -> np.ndarray:
    """Coverage as uint8 0..255 from a bool mask, uint8 alpha or float alpha in [0, 1].

    Float alpha is rounded to the nearest 1/255 (values outside [0, 1] or NaN are an error),
    so every compositor works on one exact integer representation.
    """
    if not isinstance(alpha, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(alpha).__name__}")
    if alpha.ndim != 2 or alpha.size == 0:
        raise ValueError(f"{name} must be 2-D (H x W) and non-empty, got shape {alpha.shape}")
    if alpha.dtype == np.bool_:
        return np.ascontiguousarray(alpha).view(np.uint8) * np.uint8(255)
    if alpha.dtype == np.uint8:
        return np.ascontiguousarray(alpha)
    if np.issubdtype(alpha.dtype, np.floating):
        lo, hi = float(np.min(alpha)), float(np.max(alpha))
        if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
            raise ValueError(f"{name} must lie in [0, 1], got values in [{lo}, {hi}]")
        scaled = np.multiply(alpha, np.float32(255.0), dtype=np.float32)
        return np.rint(scaled, out=scaled).astype(np.uint8)
    raise TypeError(f"{name} must be bool, uint8 or float, got {alpha.dtype}")


def positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Check an integer parameter such as a pixel count or kernel size (ValueError)."""
    return whole_number(value, name, minimum, ValueError)
