"""The output kinds `--outputs` names: one entry each, with its files, needs and encoder.

An output kind declares the file suffixes it writes (`<stem>.<suffix>`), what it reads
(`depth`, `mask`, `image`), a line for `--help` and the README, and an encoder that turns
one DepthResult into the bytes of those files, in that order. Settings, resume (which
files make an image complete), `--help` and DepthResult.encode all read this registry, so
a new kind is an encoder and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from xdepth.post import (
    colorize,
    depth_to_ply,
    encode_npy,
    encode_pfm,
    encode_png,
    facebook_3d_pair,
    normals_to_rgb,
    to_uint16,
)

if TYPE_CHECKING:
    from xdepth.outputs.result import DepthResult


@dataclass(frozen=True)
class OutputKind:
    """One `--outputs` name."""

    name: str
    suffixes: tuple[str, ...]
    needs: frozenset[str]  # of "depth", "mask", "image"
    help: str
    encode: Callable[[DepthResult], tuple[bytes, ...]]  # one per suffix


def _png(result: DepthResult, pixels: np.ndarray) -> bytes:
    return encode_png(pixels, level=result.settings.png_level)


def _ply(r: DepthResult) -> tuple[bytes, ...]:
    return (depth_to_ply(r.z, r.camera, r.image, metric=r.metric, stride=r.settings.ply_stride),)


def _fb3d(r: DepthResult) -> tuple[bytes, ...]:
    return facebook_3d_pair(r.image, r.depth, quality=r.settings.jpeg_quality)


_DEPTH, _MASK, _IMAGE = "depth", "mask", "image"
OUTPUT_KINDS: dict[str, OutputKind] = {
    kind.name: kind
    for kind in (
        OutputKind("depth16", ("depth16.png",), frozenset({_DEPTH}),
                   "16-bit PNG of inverse depth, white = near, min-max of the image",
                   lambda r: (_png(r, to_uint16(r.depth, r.depth_range)),)),
        OutputKind("depth8", ("depth8.png",), frozenset({_DEPTH}),
                   "the seed's max-scaled 8-bit depth (its overflow rule)",
                   lambda r: (_png(r, r.depth_u8),)),
        OutputKind("depth-color", ("depth-color.png",), frozenset({_DEPTH}),
                   "false-colour depth (--colormap)",
                   lambda r: (_png(r, colorize(r.depth, r.settings.colormap, r.depth_range)),)),
        OutputKind("npy", ("depth.npy",), frozenset({_DEPTH}),
                   "float32 inverse depth as predicted (1/m for metric models)",
                   lambda r: (encode_npy(r.depth),)),
        OutputKind("pfm", ("depth.pfm",), frozenset({_DEPTH}),
                   "the same as a PFM", lambda r: (encode_pfm(r.depth),)),
        OutputKind("mask", ("mask.png",), frozenset({_MASK}), "the clip mask, 0 / 255",
                   lambda r: (_png(r, r.mask.view(np.uint8) * np.uint8(255)),)),
        OutputKind("cutout", ("cutout.png",), frozenset({_MASK, _IMAGE}),
                   "RGBA: the image, the (feathered) mask as alpha, hidden colour 0",
                   lambda r: (_png(r, r.cutout),)),
        OutputKind("composite", ("composite.png",), frozenset({_MASK, _IMAGE}),
                   "the foreground over --background", lambda r: (_png(r, r.composite),)),
        OutputKind("normals", ("normals.png",), frozenset({_DEPTH}), "surface normal map",
                   lambda r: (_png(r, normals_to_rgb(r.normals)),)),
        OutputKind("ply", ("points.ply",), frozenset({_DEPTH, _IMAGE}),
                   "coloured point cloud (EXIF focal length when present)", _ply),
        OutputKind("fb3d", ("fb3d.jpg", "fb3d_depth.jpg"), frozenset({_DEPTH, _IMAGE}),
                   "Facebook 3D photo pair", _fb3d),
    )
}  # fmt: skip
