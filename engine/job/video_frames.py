"""A video as a source of frames for the pipeline, and the order its frames keep.

`expand_videos` turns each video among a job's inputs into its selected frames, decoded
one at a time as the pipeline's feed asks for them (the feed's window bounds how many are
alive), so a video enters the same pipelined engine as a folder of photos. A video that
cannot be opened becomes one rejected input (its reason names the file); one that breaks
mid-stream ends at the last good frame, and its clip records where and why.

Temporal alignment (`xdepth.post.temporal`) needs a video's frames in order, while
inference finishes them out of order: the `FrameSequencer` sits between inference and
post-processing, holds frames that arrive early, and aligns each frame (at the model's
resolution, a few milliseconds) once all its predecessors have been aligned.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from xdepth.job.imageio import DecodedImage, ImageReadError
from xdepth.job.inputs import InputItem, RejectedInput
from xdepth.job.video_io import (
    Damage,
    VideoDecoder,
    VideoInfo,
    VideoReadError,
    frame_rgb,
    is_video,
)
from xdepth.outputs.settings import PostSettings
from xdepth.post.flow import FrameSignature, frame_signature
from xdepth.post.temporal import LAG_FRAMES, FrameAlignment, TemporalAligner


@dataclass(eq=False)
class Clip:
    """One input video on its way through a job (shared by its frames)."""

    path: Path
    rel: Path | None
    info: VideoInfo
    aligner: TemporalAligner | None  # None: --temporal none
    frames: int = 0  # frames selected so far
    error: tuple[str, str] | None = None  # (stage, reason) when the stream broke
    broken_at: int | None = None  # the frame index the stream broke at


@dataclass(eq=False)
class VideoFrame:
    """One selected frame: decoded lazily to RGB by a reader thread (`decode`)."""

    clip: Clip
    index: int  # among the clip's selected frames, from 0
    seconds: float  # source time
    frame: av.VideoFrame | None
    last: bool = False
    size_hw: tuple[int, int] = (0, 0)  # upright, once decoded
    signature: FrameSignature | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.clip.path

    @property
    def rel(self) -> Path | None:
        return self.clip.rel

    def decode(self, max_pixels: int) -> DecodedImage:
        frame, self.frame = self.frame, None
        if frame is None:
            raise ImageReadError(f"{self.path}: frame {self.index} was already decoded")
        if frame.width * frame.height > max_pixels:
            raise ImageReadError(
                f"{self.path}: {frame.width}x{frame.height} frames exceed --max-pixels {max_pixels}"
            )
        rgb = frame_rgb(frame, self.clip.info.pixel_aspect)
        self.size_hw = (rgb.shape[0], rgb.shape[1])
        if self.clip.aligner is not None:
            self.signature = frame_signature(rgb)
        return DecodedImage(rgb, None)


def video_path(source: Any) -> Path | None:
    """The path of a source that is a video file (by name or content), else None."""
    if isinstance(source, InputItem):
        path = source.path
    elif isinstance(source, (str, Path)):
        path = Path(source)
    else:
        return None
    return path if path.is_file() and is_video(path) else None


def expand_videos(
    sources: Iterable[Any], settings: PostSettings, done: Callable[[InputItem], bool] | None = None
) -> Iterator[Any]:
    """`sources` with every video replaced by its frames; a video that `done` says is
    finished (a resumed job) is passed on as itself, for the pipeline to skip."""
    for source in sources:
        path = video_path(source)
        if path is None or (done is not None and isinstance(source, InputItem) and done(source)):
            yield source
            continue
        rel = source.rel if isinstance(source, InputItem) else None
        yield from _clip_frames(path, rel, settings)


def _clip_frames(path: Path, rel: Path | None, settings: PostSettings) -> Iterator[Any]:
    try:
        decoder = VideoDecoder(path)
    except VideoReadError as exc:
        yield RejectedInput(path, str(exc), stage="read")
        return
    with decoder:
        aligner = TemporalAligner() if settings.temporal == "align" else None
        clip = Clip(path, rel, decoder.info, aligner)
        decoder.seek(settings.start_s)
        pending: VideoFrame | None = None
        in_range = decoded = 0
        stopped_early = False
        seconds: float | None = None
        end_s = 0.0  # where the last decoded frame ends
        before_damage = 0  # selected frames that show before the first damaged packet
        try:
            for frame in decoder.frames():
                decoded += 1
                seconds = decoder.seconds(frame, seconds)
                end_s = seconds + _frame_duration_s(frame, clip.info.rate)
                if seconds < settings.start_s - 1e-6:
                    continue
                if settings.end_s is not None and seconds >= settings.end_s - 1e-6:
                    stopped_early = True
                    break
                in_range += 1
                if (in_range - 1) % settings.every:
                    continue
                if pending is not None:
                    yield pending
                pending = VideoFrame(clip, clip.frames, seconds, frame)
                clip.frames += 1
                if _before(decoder.damage, seconds):
                    before_damage = clip.frames
                if settings.max_frames is not None and clip.frames >= settings.max_frames:
                    stopped_early = True
                    break
        except VideoReadError as exc:
            clip.error, clip.broken_at = ("read", f"{exc} (at frame {clip.frames})"), clip.frames
        if clip.error is None and decoder.damage:
            clip.broken_at = before_damage
            clip.error = ("read", _damage_reason(path, decoder.damage, clip.broken_at))
        whole = settings.start_s == 0 and not stopped_early
        short = _short_of_header(clip.info, decoded, end_s) if whole else None
        if clip.error is None and short:
            clip.broken_at = clip.frames
            clip.error = ("read", f"{path}: the stream ends {short} (truncated?)")
        if pending is None:
            reason = clip.error[1] if clip.error else _no_frames_reason(path, decoded)
            yield RejectedInput(path, reason, stage="read")
            return
        pending.last = True
        yield pending


def _before(damage: Damage | None, seconds: float) -> bool:
    """Whether a frame shows before the first damaged packet (frames the decoder held back
    come out after the damage was seen; a damage of unknown time: those before it)."""
    if damage is None:
        return True
    return damage.at_s is not None and seconds < damage.at_s - 1e-6


def _damage_reason(path: Path, damage: Damage, frame: int) -> str:
    more = f"; {damage.packets} packets skipped in all, decoding went on"
    return f"{path}: {damage.reason} (at frame {frame}){more if damage.packets > 1 else ''}"


def _no_frames_reason(path: Path, decoded: int) -> str:
    if decoded:
        return f"{path}: no frames in the selected range (--start/--end)"
    return f"{path}: the stream holds no frames"


def _frame_duration_s(frame: av.VideoFrame, rate: Fraction) -> float:
    """How long a frame shows: its own duration where the stream gives it (variable
    frame rates), else one period of the average rate."""
    duration, time_base = getattr(frame, "duration", None), frame.time_base
    if duration and time_base:
        return float(duration * time_base)
    return float(1 / rate)


def _short_of_header(info: VideoInfo, decoded: int, end_s: float) -> str | None:
    """Where a whole stream ends (`end_s`: its last frame's end, from its first), if well
    before what its header declares: the frame count when it gives one, else the length
    (frames of a variable rate are not counted by the average rate); None when it does
    not end early."""
    if info.frames:
        if 0 < decoded < info.frames - 1:  # 1: rounding
            return f"after {decoded} of the {info.frames} frames its header declares"
        return None
    slack_s = max(2 / float(info.rate), 0.02 * info.duration_s)
    if decoded and info.duration_s and end_s < info.duration_s - slack_s:
        return f"at {end_s:.2f} s of the {info.duration_s:.2f} s its header declares"
    return None


class FrameSequencer:
    """Releases each video's frames in order, aligned; other tasks pass straight through.

    `arrive(task)` returns the tasks now ready, in order: none while a frame waits for an
    earlier one, or for the frames after it that its smoothing looks at (the aligner's
    lag, at most `max_lag` so that the frames it waits for fit in the job's window). A
    failed or cancelled frame still takes its turn (and is not aligned). `drain()`
    releases whatever is held (a stopping pipeline).
    """

    def __init__(self, max_lag: int = LAG_FRAMES) -> None:
        self.max_lag = max_lag
        self._lock = threading.Lock()
        self._held: dict[Clip, dict[int, Any]] = {}  # arrived before their turn
        self._next: dict[Clip, int] = {}
        self._settling: dict[Clip, deque[Any]] = {}  # in turn, awaiting their alignment

    def arrive(self, task: Any) -> list[Any]:
        frame = task.source
        if not isinstance(frame, VideoFrame) or frame.clip.aligner is None:
            return [task]
        clip = frame.clip
        with self._lock:
            held = self._held.setdefault(clip, {})
            held[frame.index] = task
            turn = self._next.get(clip, 0)
            settling = self._settling.setdefault(clip, deque())
            while turn in held:
                settling.append(held.pop(turn))
                self._align(settling[-1], settling)
                turn += 1
            self._next[clip] = turn
            ready = []
            while settling and settling[0].awaiting is None:
                ready.append(settling.popleft())
            if not held:
                del self._held[clip]
            if ready and ready[-1].source.last:
                self._next.pop(clip, None)
                self._settling.pop(clip, None)
        return ready

    def _align(self, task: Any, settling: deque[Any]) -> None:
        """Hands the task's depth to its video's aligner; the tasks it settles take theirs
        (a task waits, `awaiting` its depth's shape, until the aligner settles it)."""
        frame: VideoFrame = task.source
        aligner = frame.clip.aligner
        if frame.index == 0:
            aligner.lag_frames = min(aligner.lag_frames, self.max_lag)
        settled = []
        pushed = not (task.error or task.cancelled or task.depth is None)
        try:
            if pushed:
                shape = np.shape(task.depth)
                settled = aligner.push(frame.index, np.squeeze(task.depth), frame.signature)
                task.awaiting = shape
            if frame.last or not pushed:  # a failed frame holds a window slot too
                settled += aligner.finish()
        except Exception as exc:  # this frame's failure; the video's writer reports it
            task.fail("align", exc)
            if frame.last:  # nothing more will settle: the rest go as they are
                for waiting in settling:
                    waiting.awaiting = None
        by_index = {index: (depth, alignment) for index, depth, alignment in settled}
        for waiting in settling:
            if waiting.awaiting is not None and waiting.source.index in by_index:
                depth, waiting.alignment = by_index[waiting.source.index]
                waiting.depth, waiting.awaiting = depth.reshape(waiting.awaiting), None

    def drain(self) -> list[Any]:
        with self._lock:
            held = [task for tasks in self._settling.values() for task in tasks]
            held += [task for tasks in self._held.values() for task in tasks.values()]
            self._held.clear()
            self._next.clear()
            self._settling.clear()
        return held


def frame_alignment(task: Any) -> FrameAlignment | None:
    """The alignment the sequencer gave a task's frame, if any."""
    return getattr(task, "alignment", None)
