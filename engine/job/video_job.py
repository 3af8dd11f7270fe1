"""The caller's side of a video in a job: its frames, in order, into its output files.

A `ClipWriter` opens one encoder per video output kind at the video's first finished
frame (its upright size is known then), each on a thread of its own
(`xdepth.job.encoder_thread`), hands them every frame the post workers prepared,
and at the last frame closes every file and only then renames them all from their
temporary names: a video's outputs appear together, complete, or not at all (a killed
job leaves temporary names, which the next run removes before it redoes that video).
A frame that failed ends the video's outputs (nothing of it is kept); a stream that broke
mid-way keeps the frames before the break, and the video is reported partial.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from xdepth.job.encoder_thread import EncoderThread
from xdepth.job.output_folder import OutputFolder
from xdepth.job.storage import storage_fault
from xdepth.job.video_frames import Clip
from xdepth.job.video_out import FrameFolderWriter, StreamWriter
from xdepth.outputs.settings import PostSettings
from xdepth.outputs.video_kinds import video_kinds


class ClipWriter:
    """One video's output files; `add` its frames in order, then `finish` (or `abort`)."""

    def __init__(self, clip: Clip, settings: PostSettings, folder: OutputFolder | None) -> None:
        self.clip, self.settings, self.folder = clip, settings, folder
        self.kinds = video_kinds(settings.outputs)
        self.writers: dict[str, Any] = {}
        self.frames = 0
        self.written: tuple[Path, ...] = ()
        self.rate = clip.info.rate / settings.every
        self.first_s = 0.0  # the first frame's source time: the outputs' 0

    def _open(self, size_hw: tuple[int, int], first_s: float) -> None:
        self.first_s = first_s
        info = self.clip.info
        rel = self.clip.rel or Path(self.clip.path.name)
        base = self.folder.folder_for(rel) if self.folder else self.clip.path.parent
        base.mkdir(parents=True, exist_ok=True)
        for kind in self.kinds:
            target = base / f"{rel.stem}.{kind.suffix}"
            writer: Any
            if kind.folder:
                writer = FrameFolderWriter(target, kind.frame_ext)
            else:
                audio = self.clip.path if kind.audio and info.audio else None
                writer = StreamWriter(
                    target,
                    kind.codec or "",
                    kind.pix_fmt,
                    size_hw,
                    self.rate,
                    audio,
                    time_base=info.time_base,
                    audio_start_s=info.start_s + first_s,
                )
            self.writers[kind.name] = EncoderThread(writer, target.name)

    def add(self, task: Any) -> None:
        """Encode one finished frame (its planes, prepared by a post worker)."""
        planes = task.planes or {}
        frame = task.frame
        if not self.writers:
            self._open(frame.size_hw, frame.seconds)
        for kind in self.kinds:
            writer = self.writers[kind.name]
            if kind.folder:
                writer.add(planes[kind.name])
            else:
                writer.add(planes[kind.name], frame.seconds - self.first_s)
        task.planes = None
        self.frames += 1

    def finish(self) -> tuple[Path, ...]:
        """Close every output, then rename them all into place."""
        for writer in self.writers.values():
            writer.close()
        self.written = tuple(writer.publish() for writer in self.writers.values())
        self.writers.clear()
        return self.written

    def abort(self) -> None:
        for writer in self.writers.values():
            with contextlib.suppress(Exception):
                writer.abort()
        self.writers.clear()


def write_error(exc: BaseException, target: Path) -> BaseException:
    """A storage fault (which stops the job) for OUT's refusals, else the error itself."""
    return storage_fault(exc, target) or exc


class VideoOutputs:
    """Every video of a job: frames in input order in, files, log lines and records out."""

    def __init__(self, settings: PostSettings, folder: OutputFolder, log: Any) -> None:
        self.settings, self.folder, self.log = settings, folder, log
        self.open: dict[Clip, ClipWriter] = {}
        self.dead: set[Clip] = set()

    def take(self, task: Any) -> bool:
        """Handle a finished task if it is a video frame (True), else leave it (False)."""
        frame = task.frame
        if frame is None:
            return False
        clip = frame.clip
        if clip in self.dead:
            return True
        writer = self.open.get(clip)
        if writer is None:
            writer = self.open[clip] = ClipWriter(clip, self.settings, self.folder)
            s = self.settings
            expected = -(-clip.info.estimated_frames // s.every)
            self.log.video_started(min(expected, s.max_frames or expected), clip.path)
        if task.cancelled:
            self._drop(clip)
            return True
        if task.error:
            self._drop(clip)
            stage, reason = task.error
            self.log.video_done(clip, (stage, f"{reason} (frame {frame.index})"), frame.index)
            return True
        try:
            writer.add(task)
            self.log.frame()
            if frame.last:
                written = writer.finish()  # on failure the clip is still open: _drop aborts it
                del self.open[clip]
                partial = clip.broken_at if clip.error else None
                self.log.video_done(clip, clip.error, partial, written)
        except OSError as exc:
            self._drop(clip)
            raise write_error(exc, self.folder.root) from exc
        return True

    def _drop(self, clip: Clip) -> None:
        self.dead.add(clip)
        writer = self.open.pop(clip, None)
        if writer is not None:
            writer.abort()

    def close(self) -> None:
        """A job that stops mid-video: its temporary files go (the next run redoes it)."""
        for clip in list(self.open):
            self._drop(clip)
