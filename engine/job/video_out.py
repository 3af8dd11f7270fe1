"""Writing videos with PyAV: one output file per `StreamWriter` (or a frame folder),
complete under its final name or not at all.

Encoding is deterministic: the same frames give the same bytes. Containers are written
with ``fflags=+bitexact`` (no random Matroska UIDs, no library version strings); FFV1 is
deterministic by design, and its bytes depend on its slices, not on the threads that encode
them, so it encodes its slices in parallel (a 1080p 16-bit frame takes 30-150 ms of CPU);
libx264 (the best H.264 encoder in the wheel) and libvpx-vp9 run on one thread each, as
their bytes depend on their thread count, and libx264 CPU-independent (below).
Frames keep the source's times (on its own time base, from the first frame written), so a
variable frame rate, a gap or `--every` keeps the picture in step with the source and its
sound. Every file is written under a temporary name in its folder, through a Python file
(the same write layer as `xdepth.post.encoders.write_atomic`: a full disk raises OSError
there), and renamed when the video is complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import cv2
import numpy as np

from xdepth.model.hardware import core_count
from xdepth.post.encoders import TEMP_PREFIX

_BITEXACT = {"fflags": "+bitexact"}
_RGB_TO_I420 = cv2.COLOR_RGB2YUV_I420
# One thread: x264's bytes depend on its thread count.
_X264_THREADS = "1"
# FFV1's slice threads (8 would cover every slice of a 4K frame at its default count).
_FFV1_THREADS = min(core_count(), 8)
# The encoder settings of each codec: chosen for exact, repeatable bytes.
CODEC_OPTIONS: dict[str, dict[str, str]] = {
    "ffv1": {"threads": str(_FFV1_THREADS)},
    # cpu-independent: x264's own switch for bytes that repeat across CPUs; without it its
    # SIMD paths read uninitialised memory on frames whose width is not a multiple of 64,
    # and two encoders in different threads gave different bytes (about 9 % slower).
    "libx264": {
        "preset": "veryfast",
        "crf": "18",
        "threads": _X264_THREADS,
        "x264-params": "cpu-independent=1",
    },
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0", "threads": "1"},
}
_CONTAINERS = {".mkv": "matroska", ".mp4": "mp4", ".webm": "webm"}


def temp_path(target: Path) -> Path:
    """A fresh temporary name beside `target`, swept by `remove_stale_temp_files`."""
    return target.parent / f"{TEMP_PREFIX}{target.name}.{secrets.token_hex(6)}"


def new_file(path: Path) -> BinaryIO:
    """A new file opened for writing (never an existing one), as write_atomic opens its own."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")


class StreamWriter:
    """One output video file: frames in, a complete file under its final name at `finish`."""

    def __init__(
        self,
        target: Path,
        codec: str,
        pix_fmt: str,
        size_hw: tuple[int, int],
        rate: Fraction,
        audio_from: Path | None = None,
        *,
        time_base: Fraction | None = None,
        audio_start_s: float = 0.0,
    ) -> None:
        """`rate` is the average frame rate (for rate control); frames are placed by their
        times on `time_base` (the source's; default one tick a frame at `rate`); the
        source's audio is copied from its time `audio_start_s` (the first frame's)."""
        self.target, self.temp = target, temp_path(target)
        self.pad_even = codec == "libx264"  # 4:2:0 H.264 needs even sides
        fmt = _CONTAINERS[target.suffix]
        self.file = new_file(self.temp)
        try:
            self.container = av.open(self.file, "w", format=fmt, options=_BITEXACT)
        except BaseException:
            self.file.close()
            self.temp.unlink()
            raise
        self.stream = self.container.add_stream(
            codec, rate=rate, options=dict(CODEC_OPTIONS.get(codec, {}))
        )
        self.size_hw = height, width = size_hw
        if self.pad_even:
            width, height = width + width % 2, height + height % 2
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = pix_fmt
        if pix_fmt.startswith("yuv"):
            _tag_colours(self.stream.codec_context)
        self.rgb_to_i420 = pix_fmt == "yuv420p"
        self.time_base = time_base or 1 / rate
        self.stream.codec_context.time_base = self.time_base
        self.last_pts = -1
        threads = int(CODEC_OPTIONS.get(codec, {}).get("threads", "1"))
        self.stream.codec_context.thread_count = threads  # FFmpeg's own threads, too
        self.stream.codec_context.thread_type = "SLICE" if threads > 1 else "NONE"
        self.audio = _AudioCopy(audio_from, self.container, audio_start_s) if audio_from else None

    def add(self, pixels: np.ndarray, seconds: float) -> None:
        """Encode a frame (uint16 gray, uint8 gray, RGB or RGBA) to show at `seconds` from
        the output's start; the source's audio up to then goes in first. Times that
        round to the same tick are moved a tick apart (a muxer refuses equal times)."""
        if pixels.shape[:2] != self.size_hw:
            pixels = letterbox(pixels, self.size_hw)
        if self.pad_even and (pixels.shape[0] % 2 or pixels.shape[1] % 2):
            pad = ((0, pixels.shape[0] % 2), (0, pixels.shape[1] % 2))
            pixels = np.pad(pixels, pad + ((0, 0),) * (pixels.ndim - 2), mode="edge")
        if self.rgb_to_i420 and pixels.ndim == 3 and pixels.shape[2] == 3:
            # OpenCV's BT.601 (video range, as swscale's default) takes a fifth of the CPU
            # swscale takes for RGB to 4:2:0 (3 ms against 15 at 1080p).
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(pixels, _RGB_TO_I420), format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(pixels, format=_array_format(pixels))
        frame.pts = self.last_pts = max(round(seconds / self.time_base), self.last_pts + 1)
        frame.time_base = self.time_base
        if self.audio is not None:
            self.audio.copy_until(seconds)
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and the rest of the audio, and close the file."""
        self.container.mux(self.stream.encode(None))
        if self.audio is not None:
            self.audio.copy_until(None)
            self.audio.close()
        self.container.close()
        self.file.close()

    def publish(self) -> Path:
        """Rename the closed file to its final name."""
        os.replace(self.temp, self.target)
        return self.target

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()
        with contextlib.suppress(OSError):
            self.file.close()  # its last bytes may not fit either
        if self.audio is not None:
            self.audio.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


def letterbox(pixels: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """`pixels` scaled to fit `size_hw` with their shape kept, centred on zeros (black,
    far, transparent): a stream whose frames change size (a browser's recording adapting
    to its bandwidth, joined files) goes on in its first frames' size, undistorted."""
    height, width = size_hw
    scale = min(height / pixels.shape[0], width / pixels.shape[1])
    fit_w = min(width, max(1, round(pixels.shape[1] * scale)))
    fit_h = min(height, max(1, round(pixels.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    fitted = cv2.resize(pixels, (fit_w, fit_h), interpolation=interpolation)
    out = np.zeros((height, width, *pixels.shape[2:]), pixels.dtype)
    top, left = (height - fit_h) // 2, (width - fit_w) // 2
    out[top : top + fit_h, left : left + fit_w] = fitted.reshape(fit_h, fit_w, *pixels.shape[2:])
    return out


def _tag_colours(context: Any) -> None:
    """Say how RGB became YUV: OpenCV's and swscale's BT.601 matrix at video range, from
    sRGB (BT.709 primaries, sRGB transfer). Untagged HD video is shown as BT.709 by
    browsers and players, which would shift every colour of a 720p or larger output."""
    context.colorspace = 6  # AVCOL_SPC_SMPTE170M (BT.601)
    context.color_range = 1  # AVCOL_RANGE_MPEG (16-235)
    context.color_primaries = 1  # AVCOL_PRI_BT709 (sRGB's)
    context.color_trc = 13  # AVCOL_TRC_IEC61966_2_1 (sRGB)


def _array_format(pixels: np.ndarray) -> str:
    if pixels.ndim == 2:
        return "gray16le" if pixels.dtype == np.uint16 else "gray"
    return "rgba" if pixels.shape[2] == 4 else "rgb24"


class _AudioCopy:
    """The source's first audio stream, copied packet by packet (no re-encode) up to the
    video's time, so the output stays interleaved: from the source time `start_s` (the
    first frame's; packets that start before it are left out), moved to start at 0 as
    the picture does. A codec the container cannot hold (PCM in MP4, say) is left out:
    the video matters more than its sound."""

    def __init__(self, source: Path, out: Any, start_s: float = 0.0) -> None:
        self.source = av.open(str(source))
        self.input = self.source.streams.audio[0]
        try:
            self.output = out.add_stream_from_template(self.input)
        except (av.FFmpegError, ValueError):
            self.output = None
        self.packets = self.source.demux(self.input)
        self.pending: Any = None
        self.out, self.start_s = out, start_s

    def copy_until(self, seconds: float | None) -> None:
        if self.output is None:
            return
        try:
            while True:
                packet = self.pending or next(self.packets)
                self.pending = None
                if packet.dts is None or packet.pts is None:
                    continue
                time = float(packet.pts * packet.time_base) - self.start_s
                if time < 0:
                    continue
                if seconds is not None and time > seconds:
                    self.pending = packet
                    return
                shift = round(self.start_s / packet.time_base)
                packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
                packet.stream = self.output
                self.out.mux(packet)
        except (StopIteration, av.FFmpegError):
            self.output = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.source.close()


class FrameFolderWriter:
    """A numbered frame sequence (PNG or npy), in a temporary folder renamed when complete."""

    def __init__(self, target: Path, ext: str) -> None:
        self.target, self.temp, self.ext = target, temp_path(target), ext
        self.temp.mkdir()
        self.count = 0

    def add(self, data: bytes) -> None:
        with new_file(self.temp / f"{self.count:06d}.{self.ext}") as handle:
            handle.write(data)
        self.count += 1

    def close(self) -> None:
        """Nothing to flush: every frame is a file of its own."""

    def publish(self) -> Path:
        if self.target.is_dir():
            shutil.rmtree(self.target)
        os.replace(self.temp, self.target)
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)
