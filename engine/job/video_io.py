"""Reading videos with PyAV (FFmpeg's libraries, shipped in its wheel); writing them is
`xdepth.job.video_out`.

`VideoDecoder` reads the header, then `frames` yields decoded frames one by one (the caller
converts them to RGB, in reader threads), so memory never depends on a video's length.
Rotation metadata (phones) is applied and non-square pixels are made square (the frame
as it displays), 10-bit and yuv422/444 sources convert through swscale, odd sizes stay
odd. Times are seconds from the stream's own start (a stream cut from a longer one can
start at 5 s: its first frame is still at 0).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from xdepth.errors import XDepthError

_MP4_FAMILY = {".mp4", ".mov", ".m4v", ".3gp"}
_MPEG_STREAMS = {".ts", ".mts", ".m2ts", ".mpg", ".mpeg"}  # broadcast, camcorders, DVD
VIDEO_EXTENSIONS = frozenset(_MP4_FAMILY | {".mkv", ".webm", ".avi"} | _MPEG_STREAMS)
MAYBE_VIDEO_EXTENSIONS = VIDEO_EXTENSIONS | {".gif"}  # an animated GIF is a video
_MATROSKA_MAGIC = b"\x1a\x45\xdf\xa3"
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


class VideoReadError(XDepthError, ValueError):
    """A file that should be a video cannot be read as one; the message names it."""


_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG
# MPEG transport stream packets (first byte 0x47): 188 bytes, or 192 with a 4-byte time
# first (Blu-ray, AVCHD camcorders' .m2ts / .mts).
_TS_LAYOUTS = ((0, 188), (4, 192))


def _head(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


_SNIFF_BYTES = 3 * 192  # three transport-stream packets


def _video_head(head: bytes) -> bool:
    """Whether a file's first bytes are those of an MP4/MOV, Matroska/WebM, AVI, an MPEG
    transport stream (three packets' sync bytes) or an MPEG program stream."""
    return (
        head[4:8] in _MP4_BOXES
        or head.startswith(_MATROSKA_MAGIC)
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or head.startswith(b"\x00\x00\x01\xba")  # MPEG-PS pack header
        or any(
            head[first : first + 3 * step : step] == b"GGG"  # three packets' sync bytes
            for first, step in _TS_LAYOUTS
        )
    )


def is_video(path: Path) -> bool:
    """A video by its name (then a broken one is reported as a video) or by its content;
    a JPEG or PNG is an image whatever its name says, and a GIF is a video when it is
    animated. One read of the file's first bytes (every input of a job comes here)."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return not _head(path, 8).startswith(_IMAGE_MAGIC)
    head = _head(path, _SNIFF_BYTES)
    if head.startswith(b"GIF8"):
        return _animated(path)
    return _video_head(head)


def _animated(path: Path) -> bool:
    """Whether an image file holds more than one frame (an unreadable one: no, and the
    image reader reports it)."""
    try:
        with Image.open(path) as image:
            return bool(getattr(image, "is_animated", False))
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


@dataclass
class Damage:
    """The packets a decoder skipped: how many, the first one's reason and its time from
    the stream's start (None: it had none)."""

    reason: str
    at_s: float | None
    packets: int = 1


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says; frame sizes come from the frames (upright)."""

    rate: Fraction  # average frames per second (for encoders' rate control)
    time_base: Fraction
    frames: int  # the frame count the container declares (0: it declares none)
    audio: bool
    duration_s: float = 0.0  # the video stream's declared length (0: unknown)
    start_s: float = 0.0  # the stream's own start time: frame times count from it
    pixel_aspect: Fraction = Fraction(1)  # a stored pixel's width / height

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
        start = self.stream.start_time
        start_s = float(start * time_base) if start is not None else 0.0
        aspect = self.stream.sample_aspect_ratio
        self.info = VideoInfo(
            rate,
            time_base,
            int(self.stream.frames or 0),
            bool(self.container.streams.audio),
            self._declared_duration_s(time_base, start_s),
            start_s,
            Fraction(aspect) if aspect and aspect > 0 else Fraction(1),
        )
        self._sought_s: float | None = None  # where `seek` went
        self.damage: Damage | None = None  # packets skipped

    def _declared_duration_s(self, time_base: Fraction, start_s: float) -> float:
        """The video stream's length as the header gives it: the stream's own duration,
        else its DURATION tag (Matroska), else the container's when there is no other
        stream (an audio track can run longer than the video); 0 when unknown. Matroska
        gives where the stream ends on its clock, not its length: a stream that starts
        late (cut from a longer recording) has its start taken off."""
        if self.stream.duration:
            return float(self.stream.duration * time_base)
        tag = self.stream.metadata.get("DURATION", "")
        hours, _, rest = tag.partition(":")
        minutes, _, seconds = rest.partition(":")
        try:
            declared = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            declared = 0.0
        if not declared and self.container.duration and len(self.container.streams) == 1:
            declared = self.container.duration / av.time_base
        if "matroska" in self.container.format.name and declared > start_s > 0:
            return declared - start_s
        return declared

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def seek(self, seconds: float) -> None:
        """Jump to the key frame at or before `seconds` from the start (frames before it
        are not decoded). Containers without an index (MPEG transport streams) seek by
        guessing a byte position and can land past it: `frames` then starts over from
        the beginning."""
        if seconds > 0:
            target = (seconds + self.info.start_s) / self.info.time_base
            with contextlib.suppress(av.FFmpegError):
                self.container.seek(int(target), stream=self.stream)
                self._sought_s = seconds

    def seconds(self, frame: av.VideoFrame, before_s: float | None) -> float:
        """A frame's time from the stream's start; one period after the frame before
        where it has none (frames drained from a decoder can come without a time base)."""
        time = frame.time
        if time is not None and np.isfinite(time):
            return float(time) - self.info.start_s
        return 0.0 if before_s is None else before_s + float(1 / self.info.rate)

    def frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order (see `_decoded`), from the key frame at or
        before where `seek` went, or from the start when the seek went past it."""
        decoded = self._decoded()
        first = next(decoded, None)
        if self._sought_s is not None and (
            first is None or self.seconds(first, None) > self._sought_s + float(1 / self.info.rate)
        ):
            decoded.close()
            self.container.seek(0)  # the beginning (backward from time 0)
            decoded = self._decoded()
        elif first is not None:
            yield first
        yield from decoded

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order.

        A packet the demuxer flags as cut short (a truncated file's last) or one the
        decoder refuses (damaged bytes) is skipped and decoding goes on, as players do:
        the frames after it are good from the next key frame on, and `damage` counts what
        was skipped. A container that cannot be read on ends the stream there, after the
        frames the decoder holds back (B-frames, frame threads), with VideoReadError."""
        try:
            for packet in self.container.demux(self.stream):
                if packet.is_corrupt:
                    self._damaged(packet, "a packet is cut short or corrupt (truncated file?)")
                    continue
                try:
                    yield from packet.decode()
                except av.FFmpegError as exc:
                    self._damaged(packet, f"a packet could not be decoded ({exc})")
        except (av.FFmpegError, OSError) as exc:
            with contextlib.suppress(av.FFmpegError, EOFError):
                yield from self.stream.codec_context.decode(None)
            raise VideoReadError(f"{self.path}: {exc}") from None

    def _damaged(self, packet: av.Packet, reason: str) -> None:
        if self.damage is not None:
            self.damage.packets += 1
            return
        at = packet.pts if packet.pts is not None else packet.dts
        at_s = None if at is None else float(at * self.info.time_base) - self.info.start_s
        self.damage = Damage(reason, at_s)


def frame_rgb(frame: av.VideoFrame, pixel_aspect: Fraction = Fraction(1)) -> np.ndarray:
    """uint8 H x W x 3 RGB of a decoded frame as it displays (any pixel format in):
    turned upright, and non-square pixels (`pixel_aspect`, a stored pixel's width over its
    height) made square by scaling the stored width, as players show them.

    `frame.rotation` is the display matrix's counter-clockwise turn (a phone held upright
    records -90), as np.rot90 counts it."""
    rgb = frame.to_ndarray(format="rgb24")
    if pixel_aspect != 1:
        width = max(1, round(rgb.shape[1] * pixel_aspect))
        shrink = width < rgb.shape[1]
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, (width, rgb.shape[0]), interpolation=interpolation)
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
