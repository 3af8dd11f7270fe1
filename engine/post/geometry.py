"""Geometry from depth: camera intrinsics, surface normals, coloured PLY point clouds.

Pinhole camera, square pixels, principal point at the image centre ((W-1)/2, (H-1)/2 in
pixel-index coordinates). Camera frame ``"opencv"``: x right, y down, z forward (metres
for metric depth). Normals are given in the viewer frame used by normal maps: x right,
y up, z towards the viewer, so a surface facing the camera is (0, 0, 1).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from xdepth.post._check import depth_array, image_array, mask_array, positive_int, same_size

DEFAULT_FOV_DEG = 55.0  # horizontal field of view assumed when neither EXIF nor user gives one
FULL_FRAME_WIDTH_MM = 36.0  # long side of the 35 mm film frame
FocalSource = Literal["exif", "user", "default"]
Frame = Literal["opencv", "opengl"]


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, with where the focal length came from."""

    f_px: float
    cx: float
    cy: float
    source: FocalSource
    note: str = ""

    def describe(self) -> str:
        """One line for file headers and logs."""
        text = f"f_px={self.f_px:.3f} cx={self.cx:.1f} cy={self.cy:.1f} source={self.source}"
        return f"{text} ({self.note})" if self.note else text


def focal_px_from_35mm(f_35mm: float, width_px: int, height_px: int | None = None) -> float:
    """EXIF FocalLengthIn35mmFilm to pixels: ``f_px = f_35mm / 36 * long_side_px``.

    The 36 mm of a full frame map to the image's long side (``width_px`` for landscape;
    pass ``height_px`` too and the longer of the two is used, right for portrait shots).
    Cameras define the 35 mm equivalent on the diagonal; for 3:2 and 4:3 sensors the
    long-side rule differs from it by under 4 %, and it is the convention most tools use.
    """
    if not (_is_number(f_35mm) and f_35mm > 0):
        raise ValueError(f"f_35mm must be a number > 0 (millimetres), got {f_35mm!r}")
    long_side = max(positive_int(width_px, "width_px"), positive_int(height_px or 1, "height_px"))
    return float(f_35mm) / FULL_FRAME_WIDTH_MM * long_side


def focal_px_from_fov(fov_deg: float, width_px: int) -> float:
    """Focal length in pixels for a horizontal field of view in degrees."""
    if not (_is_number(fov_deg) and 0 < fov_deg < 180):
        raise ValueError(f"fov_deg must lie strictly between 0 and 180, got {fov_deg!r}")
    return positive_int(width_px, "width_px") / 2.0 / math.tan(math.radians(fov_deg) / 2.0)


def intrinsics(
    width_px: int,
    height_px: int,
    *,
    f_px: float | None = None,
    f_35mm: float | None = None,
    fov_deg: float = DEFAULT_FOV_DEG,
) -> Intrinsics:
    """Intrinsics from, in order of trust: the user's ``f_px``, EXIF ``f_35mm``, a default FOV."""
    width_px = positive_int(width_px, "width_px")
    height_px = positive_int(height_px, "height_px")
    cx, cy = (width_px - 1) / 2.0, (height_px - 1) / 2.0
    if f_px is not None:
        if not (_is_number(f_px) and f_px > 0 and math.isfinite(f_px)):
            raise ValueError(f"f_px must be a finite number > 0, got {f_px!r}")
        return Intrinsics(float(f_px), cx, cy, "user")
    if f_35mm is not None:
        f = focal_px_from_35mm(f_35mm, width_px, height_px)
        return Intrinsics(f, cx, cy, "exif", f"35 mm equivalent {f_35mm:g} mm")
    f = focal_px_from_fov(fov_deg, width_px)
    return Intrinsics(f, cx, cy, "default", f"{fov_deg:g} deg horizontal field of view")


def inverse_to_depth(inv_depth: np.ndarray) -> np.ndarray:
    """Relative depth 1 / inv_depth (unknown scale); NaN where inv_depth <= 0 or non-finite."""
    x = depth_array(inv_depth, "inv_depth")
    out = np.full(x.shape, np.nan, np.float32)
    np.divide(np.float32(1.0), x, out=out, where=(x > 0) & np.isfinite(x))
    return out


def surface_normals(
    depth: np.ndarray, ksize: int = 3, *, f_px: float | None = None, gradient_scale: float = 1.0
) -> np.ndarray:
    """Unit normals (H x W x 3 float32, viewer frame) from Sobel derivatives of ``depth``.

    With ``f_px``, ``depth`` is metric (larger = farther) and the normals are those of the
    back-projected 3-D surface. Without it, depth is taken in pixel units, times
    ``gradient_scale`` (image-space normals: n ~ (dz/du, -dz/dv, 1)); pass a negative scale
    for inverse depth. ``ksize`` is OpenCV's Sobel size (1, 3, 5, 7; -1 for Scharr);
    derivatives are divided by the kernel gain, so a ramp of slope s reads s. Borders
    replicate. Pixels without finite depth, or whose Sobel window touches one, get (0, 0, 0).
    """
    z = depth_array(depth)
    if ksize not in (-1, 1, 3, 5, 7):
        raise ValueError(f"ksize must be 1, 3, 5, 7 or -1 (Scharr), got {ksize!r}")
    z_u, z_v = _gradients(z, ksize)
    if f_px is None:
        if not (_is_number(gradient_scale) and math.isfinite(gradient_scale)):
            raise ValueError(f"gradient_scale must be a finite number, got {gradient_scale!r}")
        z_u *= np.float32(gradient_scale)
        z_v *= np.float32(gradient_scale)
        normals = np.stack([z_u, -z_v, np.ones_like(z)], axis=-1)
    else:
        if not (_is_number(f_px) and f_px > 0 and math.isfinite(f_px)):
            raise ValueError(f"f_px must be a finite number > 0, got {f_px!r}")
        normals = _camera_normals(z, z_u, z_v, float(f_px))
    length = np.sqrt(np.einsum("...i,...i->...", normals, normals))
    with np.errstate(invalid="ignore", divide="ignore"):
        normals /= length[..., None]
    normals[~(np.isfinite(normals).all(axis=-1) & np.isfinite(z))] = 0.0
    return normals


def normals_to_rgb(normals: np.ndarray) -> np.ndarray:
    """Normal-map colours: round((n + 1) * 127.5); facing the viewer = (128, 128, 255)."""
    if not isinstance(normals, np.ndarray) or normals.ndim != 3 or normals.shape[2] != 3:
        raise ValueError("normals must be an H x W x 3 array (from surface_normals)")
    scaled = (np.clip(normals, -1.0, 1.0, dtype=np.float32) + 1.0) * np.float32(127.5)
    return np.rint(scaled).astype(np.uint8)


def point_cloud(
    depth: np.ndarray,
    camera: Intrinsics,
    image: np.ndarray | None = None,
    *,
    mask: np.ndarray | None = None,
    stride: int = 1,
    frame: Frame = "opencv",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Back-project pixels with finite depth > 0 (and in ``mask``) to N x 3 float32 points.

    Returns (xyz, rgb): rgb is N x 3 uint8 from ``image`` or None. ``stride`` keeps every
    n-th row and column. ``frame="opengl"`` flips y and z (y up, z towards the viewer).
    """
    z = depth_array(depth)
    stride = positive_int(stride, "stride")
    if frame not in ("opencv", "opengl"):
        raise ValueError(f"frame must be 'opencv' or 'opengl', got {frame!r}")
    valid = np.isfinite(z) & (z > 0)
    if mask is not None:
        mask = mask_array(mask)
        same_size(z, mask, "depth", "mask")
        valid &= mask
    if image is not None:
        image = image_array(image)
        same_size(z, image, "depth", "image")
    if stride > 1:
        sub = np.zeros_like(valid)
        sub[::stride, ::stride] = True
        valid &= sub
    rows, cols = np.nonzero(valid)
    zs = z[rows, cols]
    inv_f = np.float32(1.0 / camera.f_px)
    xyz = np.empty((zs.size, 3), np.float32)
    xyz[:, 0] = (cols.astype(np.float32) - np.float32(camera.cx)) * zs * inv_f
    xyz[:, 1] = (rows.astype(np.float32) - np.float32(camera.cy)) * zs * inv_f
    xyz[:, 2] = zs
    if frame == "opengl":
        xyz[:, 1:] *= -1
    rgb = image[rows, cols] if image is not None else None
    return xyz, rgb


def encode_ply(
    xyz: np.ndarray, rgb: np.ndarray | None = None, comments: tuple[str, ...] = ()
) -> bytes:
    """Binary little-endian PLY: float x, y, z and (with ``rgb``) uchar red, green, blue."""
    if not isinstance(xyz, np.ndarray) or xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError("xyz must be an N x 3 array")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if rgb is not None:
        if not isinstance(rgb, np.ndarray) or rgb.shape != xyz.shape or rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be an N x 3 uint8 array like xyz {xyz.shape}")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertices = np.empty(xyz.shape[0], dtype=fields)
    for axis, name in enumerate("xyz"):
        vertices[name] = xyz[:, axis]
    if rgb is not None:
        for axis, name in enumerate(("red", "green", "blue")):
            vertices[name] = rgb[:, axis]
    lines = ["ply", "format binary_little_endian 1.0"]
    for comment in comments:
        if "\n" in comment or "\r" in comment:
            raise ValueError(f"PLY comments must be single lines, got {comment!r}")
        lines.append(f"comment {comment}")
    lines.append(f"element vertex {xyz.shape[0]}")
    lines += [f"property {'float' if kind == '<f4' else 'uchar'} {name}" for name, kind in fields]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii") + vertices.tobytes()


def depth_to_ply(
    depth: np.ndarray,
    camera: Intrinsics,
    image: np.ndarray | None = None,
    *,
    metric: bool = True,
    mask: np.ndarray | None = None,
    stride: int = 1,
    frame: Frame = "opencv",
) -> bytes:
    """PLY bytes of the back-projected depth, with the camera and units in header comments.

    ``metric=True``: depth in metres. ``metric=False``: relative depth (e.g. from
    ``inverse_to_depth``), so the cloud's scale (and, for affine-invariant models, its
    shape along z) is only approximate.
    """
    xyz, rgb = point_cloud(depth, camera, image, mask=mask, stride=stride, frame=frame)
    units = "metric depth, metres" if metric else "relative depth, unknown scale"
    axes = "x right, y down, z forward" if frame == "opencv" else "x right, y up, z backward"
    comments = (
        "xdepth point cloud",
        f"depth: {units}",
        f"frame: {frame} ({axes})",
        f"camera: {camera.describe()}",
    )
    return encode_ply(xyz, rgb, comments)


def _gradients(z: np.ndarray, ksize: int) -> tuple[np.ndarray, np.ndarray]:
    """dz/du and dz/dv in depth units per pixel."""
    kx, ky = cv2.getDerivKernels(1, 0, ksize)
    kx, ky = kx.ravel(), ky.ravel()
    gain = float(np.dot(kx, np.arange(kx.size) - (kx.size - 1) / 2) * ky.sum())
    opts = {"ksize": ksize, "scale": 1.0 / gain, "borderType": cv2.BORDER_REPLICATE}
    return cv2.Sobel(z, cv2.CV_32F, 1, 0, **opts), cv2.Sobel(z, cv2.CV_32F, 0, 1, **opts)


def _camera_normals(z: np.ndarray, z_u: np.ndarray, z_v: np.ndarray, f_px: float) -> np.ndarray:
    """Normals of P(u, v) = ((u - cx) z / f, (v - cy) z / f, z): cross(dP/du, dP/dv)."""
    height, width = z.shape
    u = (np.arange(width, dtype=np.float32) - np.float32((width - 1) / 2))[None, :]
    v = (np.arange(height, dtype=np.float32) - np.float32((height - 1) / 2))[:, None]
    f = np.float32(f_px)
    pu = ((u * z_u + z) / f, v * z_u / f, z_u)
    pv = (u * z_v / f, (v * z_v + z) / f, z_v)
    n = np.stack(
        [
            pu[1] * pv[2] - pu[2] * pv[1],
            pu[2] * pv[0] - pu[0] * pv[2],
            pu[0] * pv[1] - pu[1] * pv[0],
        ],
        axis=-1,
    )
    # Face the camera (n . P < 0 in the camera frame), then flip y and z to the viewer frame.
    facing = (n[..., 0] * u + n[..., 1] * v) / f * z + n[..., 2] * z
    n[facing > 0] *= -1
    n[..., 1:] *= -1
    return n


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
