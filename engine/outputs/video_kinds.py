"""What `--outputs` writes for a video input: one entry per output kind that applies.

A video's outputs mirror its image counterparts under the same `--outputs` names (files
`<stem>.<suffix>`), plus frame sequences that exist for video only. Each entry says how a
frame's pixels are made from its DepthResult (in the post workers) and how they are
stored: a codec and pixel format for a video file, or a per-frame file extension for a
folder of numbered frames. Kinds with no video form (pfm, normals, ply, fb3d) are written
for images only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from xdepth.post import colorize, encode_npy, encode_png, to_uint16

if TYPE_CHECKING:
    from xdepth.outputs.result import DepthResult


@dataclass(frozen=True)
class VideoKind:
    """One `--outputs` name, as written for a video."""

    name: str
    suffix: str  # `<stem>.<suffix>`: a file, or a folder when `frame_ext` is set
    codec: str | None  # the encoder (xdepth.job.video_io.CODEC_OPTIONS); None: a folder
    pix_fmt: str  # the encoder's pixel format
    help: str
    frame: Callable[[DepthResult], np.ndarray | bytes]  # pixels, or a folder frame's bytes
    audio: bool = False  # the source's audio is copied in
    frame_ext: str = ""  # a folder of <index>.<frame_ext> files

    @property
    def folder(self) -> bool:
        return bool(self.frame_ext)


def _rgb(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels


def _depth16(r: DepthResult) -> np.ndarray:
    return to_uint16(r.depth, r.depth_range)


VIDEO_KINDS: dict[str, VideoKind] = {
    kind.name: kind
    for kind in (
        VideoKind("depth16", "depth16.mkv", "ffv1", "gray16le",
                  "lossless 16-bit FFV1 (gray16) in Matroska, white = near", _depth16),
        VideoKind("depth8", "depth8.mkv", "ffv1", "gray",
                  "lossless 8-bit FFV1, the seed's scale", lambda r: r.depth_u8),
        VideoKind("depth-color", "depth-color.mp4", "libx264", "yuv420p",
                  "false-colour depth, H.264 (libx264) MP4 for viewing, with the audio",
                  lambda r: colorize(r.depth, r.settings.colormap, r.depth_range), audio=True),
        VideoKind("mask", "mask.mkv", "ffv1", "gray", "the clip mask, 0 / 255, lossless FFV1",
                  lambda r: r.mask.view(np.uint8) * np.uint8(255)),
        VideoKind("composite", "composite.mp4", "libx264", "yuv420p",
                  "the foreground over --background, H.264 MP4, with the audio",
                  lambda r: _rgb(r.composite), audio=True),
        VideoKind("cutout", "cutout.webm", "libvpx-vp9", "yuva420p",
                  "VP9 WebM with alpha (decode with libvpx-vp9 to keep it)", lambda r: r.cutout),
        VideoKind("npy", "depth-npy", None, "", "per-frame float32 .npy, in a folder",
                  lambda r: encode_npy(r.depth), frame_ext="npy"),
        VideoKind("depth16-png", "depth16-png", None, "",
                  "video only: 16-bit PNG per frame, in a folder",
                  lambda r: encode_png(_depth16(r), level=r.settings.png_level), frame_ext="png"),
        VideoKind("cutout-png", "cutout-png", None, "",
                  "video only: RGBA PNG per frame (exact alpha), in a folder",
                  lambda r: encode_png(r.cutout, level=r.settings.png_level), frame_ext="png"),
    )
}  # fmt: skip


def video_kinds(outputs: tuple[str, ...]) -> list[VideoKind]:
    """The kinds among `outputs` that have a video form, in order."""
    return [VIDEO_KINDS[name] for name in outputs if name in VIDEO_KINDS]
