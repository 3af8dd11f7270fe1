"""Video in and out with PyAV (FFmpeg's libraries, shipped in its wheel).

Decoding streams: `open_video` reads the header, `VideoDecoder.frames` yields decoded
frames one by one (the caller converts them to RGB, in reader threads), so memory never
depends on a video's length. Rotation metadata (phones) is applied, 10-bit and
yuv422/444 sources convert through swscale, odd sizes stay odd.

Encoding is deterministic: the same frames give the same bytes. Containers are written
with ``fflags=+bitexact`` (no random Matroska UIDs, no library version strings); FFV1 is
deterministic by design, and its bytes depend on its slices, not on the threads that encode
them, so it encodes its slices in parallel (a 1080p 16-bit frame takes 30-150 ms of CPU);
libx264 (the best H.264 encoder in the wheel) and libvpx-vp9 run on one thread each, as
their bytes depend on their thread count, and libx264 CPU-independent (below).
Every file is written under a temporary name in its folder, through a Python file (the
same write layer as `xdepth.post.encoders.write_atomic`: a full disk raises OSError
there), and renamed when the video is complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import cv2
import numpy as np

from xdepth.errors import XDepthError
from xdepth.model.hardware import core_count
from xdepth.post.encoders import TEMP_PREFIX

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})
_MATROSKA_MAGIC = b"\x1a\x45\xdf\xa3"
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
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


class VideoReadError(XDepthError, ValueError):
    """A file that should be a video cannot be read as one; the message names it."""


def sniff_video(path: Path) -> bool:
    """True when the file's first bytes are those of an MP4/MOV, Matroska/WebM or AVI."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return (
        head[4:8] in _MP4_BOXES
        or head.startswith(_MATROSKA_MAGIC)
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
    )


def is_video(path: Path) -> bool:
    """A video by its name (then a broken one is reported as a video) or by its content."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS or sniff_video(Path(path))


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says; frame sizes come from the frames (upright)."""

    rate: Fraction  # average frames per second (for encoders' rate control)
    time_base: Fraction
    frames: int  # the frame count the container declares (0: it declares none)
    audio: bool
    duration_s: float = 0.0  # the video stream's declared duration (0: unknown)

    @property
    def estimated_frames(self) -> int:
        """The frames to expect, for progress: the declared count, else the duration at
        the average rate (a variable frame rate may fall short of it); 0: unknown."""
        return self.frames or round(self.duration_s * float(self.rate))


class VideoDecoder:
    """One open video: `info`, then `frames()` once; close() (or `with`) when done."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            raise VideoReadError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        if size == 0:
            raise VideoReadError(f"{self.path}: empty file (0 bytes), not a video")
        try:
            self.container = av.open(str(self.path), metadata_errors="replace")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoReadError(f"{self.path}: not a readable video ({exc})") from None
        if not self.container.streams.video:
            audio = " (it holds audio only)" if self.container.streams.audio else ""
            self.container.close()
            raise VideoReadError(f"{self.path}: no video stream{audio}")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        rate = Fraction(self.stream.average_rate or self.stream.guessed_rate or Fraction(25))
        time_base = Fraction(self.stream.time_base or Fraction(1, 90000))
        self.info = VideoInfo(
            rate,
            time_base,
            int(self.stream.frames or 0),
            bool(self.container.streams.audio),
            self._declared_duration_s(time_base),
        )

    def _declared_duration_s(self, time_base: Fraction) -> float:
        """The video stream's duration as the header gives it: the stream's own, else its
        DURATION tag (Matroska), else the container's when there is no other stream (an
        audio track can run longer than the video); 0 when unknown."""
        if self.stream.duration:
            return float(self.stream.duration * time_base)
        tag = self.stream.metadata.get("DURATION", "")
        hours, _, rest = tag.partition(":")
        minutes, _, seconds = rest.partition(":")
        try:
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
        if self.container.duration and len(self.container.streams) == 1:
            return self.container.duration / av.time_base
        return 0.0

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def seek(self, seconds: float) -> None:
        """Jump to the key frame at or before `seconds` (frames before it are not decoded)."""
        if seconds > 0:
            with contextlib.suppress(av.FFmpegError):
                self.container.seek(int(seconds / self.info.time_base), stream=self.stream)

    def frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order; a broken stream raises VideoReadError.

        At a break (a packet cut short, as a truncated file ends, or one the decoder
        refuses) the decoder is drained first: it holds frames that wait for later packets
        (B-frames, frame threads), and they are good frames before the break."""
        reason: str | None = None
        try:
            for packet in self.container.demux(self.stream):
                if packet.is_corrupt:
                    reason = "a packet is cut short or corrupt (truncated file?)"
                    break
                yield from packet.decode()
        except (av.FFmpegError, OSError) as exc:
            reason = str(exc)
        if reason is None:
            return
        with contextlib.suppress(av.FFmpegError):
            yield from self.stream.codec_context.decode(None)
        raise VideoReadError(f"{self.path}: {reason}")


def frame_rgb(frame: av.VideoFrame) -> np.ndarray:
    """uint8 H x W x 3 RGB of a decoded frame, turned upright (any pixel format in).

    `frame.rotation` is the display matrix's counter-clockwise turn (a phone held upright
    records -90), as np.rot90 counts it."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


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
    ) -> None:
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
        height, width = size_hw
        if self.pad_even:
            width, height = width + width % 2, height + height % 2
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = pix_fmt
        self.rgb_to_i420 = pix_fmt == "yuv420p"
        self.stream.codec_context.time_base = 1 / rate
        threads = int(CODEC_OPTIONS.get(codec, {}).get("threads", "1"))
        self.stream.codec_context.thread_count = threads  # FFmpeg's own threads, too
        self.stream.codec_context.thread_type = "SLICE" if threads > 1 else "NONE"
        self.audio = _AudioCopy(audio_from, self.container) if audio_from else None

    def add(self, pixels: np.ndarray, index: int, seconds: float) -> None:
        """Encode frame `index` (uint16 gray, uint8 gray, RGB or RGBA); the source's audio
        up to its time `seconds` goes in first.

        Outputs run at the source's average rate (divided by --every), one frame per
        tick: variable-rate sources come out at a constant rate, with every frame."""
        if self.pad_even and (pixels.shape[0] % 2 or pixels.shape[1] % 2):
            pad = ((0, pixels.shape[0] % 2), (0, pixels.shape[1] % 2))
            pixels = np.pad(pixels, pad + ((0, 0),) * (pixels.ndim - 2), mode="edge")
        if self.rgb_to_i420 and pixels.ndim == 3 and pixels.shape[2] == 3:
            # OpenCV's BT.601 (video range, as swscale's default) takes a fifth of the CPU
            # swscale takes for RGB to 4:2:0 (3 ms against 15 at 1080p).
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(pixels, _RGB_TO_I420), format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(pixels, format=_array_format(pixels))
        frame.pts = index
        frame.time_base = self.stream.codec_context.time_base
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


def _array_format(pixels: np.ndarray) -> str:
    if pixels.ndim == 2:
        return "gray16le" if pixels.dtype == np.uint16 else "gray"
    return "rgba" if pixels.shape[2] == 4 else "rgb24"


class _AudioCopy:
    """The source's first audio stream, copied packet by packet (no re-encode) up to the
    video's time, so the output stays interleaved. A codec the container cannot hold
    (PCM in MP4, say) is left out: the video matters more than its sound."""

    def __init__(self, source: Path, out: Any) -> None:
        self.source = av.open(str(source))
        self.input = self.source.streams.audio[0]
        try:
            self.output = out.add_stream_from_template(self.input)
        except (av.FFmpegError, ValueError):
            self.output = None
        self.packets = self.source.demux(self.input)
        self.pending: Any = None
        self.out = out

    def copy_until(self, seconds: float | None) -> None:
        if self.output is None:
            return
        try:
            while True:
                packet = self.pending or next(self.packets)
                self.pending = None
                if packet.dts is None:
                    continue
                time = float(packet.dts * packet.time_base)
                if seconds is not None and time > seconds:
                    self.pending = packet
                    return
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
