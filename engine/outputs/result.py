"""One image's depth and everything derived from it: mask, composites, maps, file bytes.

`DepthResult` holds the image and its inverse depth at the image's size; the mask, alpha,
cutout, composite, normals and the encoded files are computed on first use, so a caller
who wants only the depth pays only for the depth. Every step is deterministic: the same
image and depth give the same bytes.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from xdepth.outputs.kinds import OUTPUT_KINDS
from xdepth.outputs.settings import PostSettings, SettingsError, background_kind
from xdepth.post import (
    Intrinsics,
    blur_background,
    colorize,
    composite_color,
    cutout_rgba,
    encode_png,
    feather,
    grayscale_background,
    intrinsics,
    inverse_to_depth,
    parse_policy,
    refine_mask,
    replace_background,
    surface_normals,
    threshold_mask,
    to_uint8_max,
)

RELATIVE = "relative_inverse_depth"
METRIC = "metric_depth_m"
_PREVIEW_MAX_WIDTH_PX = 1536
_CHECKER_PX = 8


class DepthResult:
    """An image, its inverse depth (relative, or 1/m for metric models) and derived outputs."""

    def __init__(
        self,
        image: np.ndarray,
        inv_depth: np.ndarray,
        settings: PostSettings | None = None,
        *,
        semantics: str = RELATIVE,
        f_35mm: float | None = None,
        background_image: np.ndarray | None = None,
        path: Path | None = None,
        rel: Path | None = None,
        depth_range: tuple[float, float] | None = None,
    ) -> None:
        if inv_depth.shape != image.shape[:2]:
            raise ValueError(f"depth {inv_depth.shape} does not match image {image.shape[:2]}")
        if semantics not in (RELATIVE, METRIC):
            raise ValueError(f"semantics must be {RELATIVE!r} or {METRIC!r}, got {semantics!r}")
        self.image = image  # uint8 H x W x 3 RGB, upright
        self.depth = inv_depth  # float32 H x W
        self.settings = settings or PostSettings()
        self.semantics = semantics
        self.f_35mm = f_35mm
        self.path, self.rel = path, rel
        # A video frame's scale (lo, hi) shared with its neighbours; None: this map's own.
        self.depth_range = depth_range if depth_range and depth_range[1] > 0 else None
        self._background_image = background_image

    @property
    def metric(self) -> bool:
        return self.semantics == METRIC

    def with_settings(self, **changes: Any) -> DepthResult:
        """This image and depth under changed post settings (``threshold="otsu"``, ...).

        Masks, cutouts and files are derived from the depth alone, so trying another policy
        or feather costs no second inference.
        """
        try:
            settings = dataclasses.replace(self.settings, **changes)
        except TypeError as exc:
            raise SettingsError(f"bad settings: {exc}") from None
        return DepthResult(
            self.image,
            self.depth,
            settings,
            semantics=self.semantics,
            f_35mm=self.f_35mm,
            background_image=self._background_image,
            path=self.path,
            rel=self.rel,
            depth_range=self.depth_range,
        )

    @property
    def _peak(self) -> float | None:
        """The near end of the scale: the video's running maximum, or None (this map's)."""
        return self.depth_range[1] if self.depth_range else None

    @cached_property
    def depth_m(self) -> np.ndarray:
        """Metric depth in metres (NaN where there is none); metric models only."""
        if not self.metric:
            raise ValueError("this model predicts relative inverse depth: there is no metric depth")
        return inverse_to_depth(self.depth)

    @cached_property
    def depth_u8(self) -> np.ndarray:
        """The seed's max-scaled 8-bit depth, with the settings' overflow rule."""
        return to_uint8_max(self.depth, self._peak, overflow=self.settings.overflow)

    @cached_property
    def mask(self) -> np.ndarray:
        """bool H x W: the near pixels under the threshold policy, refined as configured."""
        s = self.settings
        policy = parse_policy(s.threshold)
        if policy.spec.uint8_scale and s.overflow == "wrap":
            mask = self.depth_u8 > np.float32(policy.value)
        elif policy.metric:
            mask = threshold_mask(self.depth_m, policy)
        else:
            mask = threshold_mask(self.depth, policy, max_value=self._peak)
        return refine_mask(
            mask,
            min_island_px=s.min_island_px,
            fill=s.fill_holes,
            max_hole_px=s.max_hole_px,
            largest_only=s.largest,
        )

    @cached_property
    def alpha(self) -> np.ndarray:
        """uint8 H x W coverage: the mask, feathered inward by `feather_px`."""
        return feather(self.mask, self.settings.feather_px)

    @cached_property
    def cutout(self) -> np.ndarray:
        """uint8 H x W x 4 RGBA: the image where the mask holds, transparent elsewhere.

        Straight alpha; the colour under fully transparent pixels is zeroed, as
        ``Image.composite(image, transparent, mask)`` does: viewers show the same picture,
        and the PNG is several times smaller and faster to encode.
        """
        visible = composite_color(self.image, self.alpha > 0)
        return cutout_rgba(visible, self.alpha)

    @cached_property
    def composite(self) -> np.ndarray:
        """uint8 H x W x 3 (H x W in mode "L"): the foreground over the settings' background."""
        s = self.settings
        coverage = self.mask if s.feather_px == 0 else self.alpha
        mode = s.composite_mode
        kind, value = background_kind(s.background)
        if kind == "color":
            return composite_color(self.image, coverage, value, mode=mode)  # type: ignore[arg-type]
        if kind == "blur":
            return blur_background(self.image, coverage, s.blur_sigma_px, mode=mode)
        if kind == "gray":
            return grayscale_background(self.image, coverage, mode=mode)
        if self._background_image is None:
            raise SettingsError(f"background image {value} was not loaded")
        return replace_background(self.image, coverage, self._background_image, mode=mode)

    @cached_property
    def camera(self) -> Intrinsics:
        """Pinhole intrinsics: EXIF 35 mm focal length when known, else the default FOV."""
        height, width = self.depth.shape
        return intrinsics(width, height, f_35mm=self.f_35mm)

    @cached_property
    def z(self) -> np.ndarray:
        """Depth along the optical axis: metres for metric models, relative (1 / inv) else."""
        return self.depth_m if self.metric else inverse_to_depth(self.depth)

    @cached_property
    def normals(self) -> np.ndarray:
        """float32 H x W x 3 unit normals (viewer frame) of the back-projected surface.

        Normals do not change when depth is scaled, so relative depth gives them as well.
        """
        return surface_normals(self.z, f_px=self.camera.f_px)

    def encode(self, kind: str) -> dict[str, bytes]:
        """`{"<suffix>": bytes}` for one output kind (xdepth.outputs.kinds)."""
        if kind not in OUTPUT_KINDS:
            raise SettingsError(f"unknown output {kind!r}; choose from {', '.join(OUTPUT_KINDS)}")
        spec = OUTPUT_KINDS[kind]
        return dict(zip(spec.suffixes, spec.encode(self), strict=True))

    def files(self) -> dict[str, bytes]:
        """Every output the settings ask for, as `{"<kind>.<ext>": bytes}`."""
        out: dict[str, bytes] = {}
        for kind in self.settings.outputs:
            if kind in OUTPUT_KINDS:  # the others are written for video only
                out |= self.encode(kind)
        return out

    def preview(self, max_width_px: int = _PREVIEW_MAX_WIDTH_PX) -> np.ndarray:
        """uint8 RGB strip: image | colour depth | cutout on a checkerboard."""
        height, width = self.depth.shape
        board = _checkerboard(height, width)
        a = self.alpha[..., None].astype(np.float32) / np.float32(255.0)
        on_board = np.rint(self.image * a + board * (1.0 - a)).astype(np.uint8)
        depth_rgb = colorize(self.depth, self.settings.colormap)
        strip = np.concatenate([self.image, depth_rgb, on_board], axis=1)
        if strip.shape[1] > max_width_px:
            scale = max_width_px / strip.shape[1]
            size = (max_width_px, max(1, round(strip.shape[0] * scale)))
            strip = cv2.resize(strip, size, interpolation=cv2.INTER_AREA)
        return strip

    def _repr_png_(self) -> bytes:
        """Notebooks show a result as image | depth | cutout, side by side."""
        return encode_png(self.preview())

    def __repr__(self) -> str:
        height, width = self.depth.shape
        where = f" {self.path}" if self.path else ""
        return f"<DepthResult{where} {width}x{height} {self.semantics}>"


def _checkerboard(height: int, width: int) -> np.ndarray:
    """Light grey squares, the usual backdrop that shows transparency."""
    yy, xx = np.indices((height, width))
    light = ((yy // _CHECKER_PX + xx // _CHECKER_PX) % 2).astype(bool)
    board = np.full((height, width, 3), 204, np.uint8)
    board[light] = 255
    return board
