"""What becomes of each input of a job, and who hears of it.

`drive` is the one loop every runner uses to send a job's inputs through the pipeline:
images are written by the post workers, a video's frames are encoded in order by its
`VideoOutputs`, and each input's outcome goes to a log. The local runner's log is
`xdepth.job.local.JobLog` (progress bar, errors.jsonl, run.json); a Ray actor's is
`Outcomes`, which keeps the same calls as data for the driver, whose JobLog then hears
them. So a video on Ray is decoded, aligned and encoded by exactly the local code path.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdepth.job.inputs import InputItem, RejectedInput
from xdepth.job.output_folder import OutputFolder
from xdepth.job.pipeline import Pipeline, Task
from xdepth.job.ray_progress import LiveFrames, TallySender
from xdepth.job.video_frames import expand_videos, video_path
from xdepth.job.video_job import VideoOutputs
from xdepth.outputs.settings import PostSettings

__all__ = ["Outcome", "Outcomes", "VideoLog", "drive", "is_video_input", "replay", "video_record"]


def drive(
    pipeline: Pipeline,
    sources: Iterable[Any],
    settings: PostSettings,
    folder: OutputFolder,
    log: Any,
    done: Callable[[InputItem], bool],
) -> None:
    """Run `sources` through `pipeline` into `folder`, telling `log` every outcome; `done`
    says which videos are finished already (passed on whole, for the pipeline to skip)."""
    videos = VideoOutputs(settings, folder, log)
    frames = expand_videos(sources, settings, done)
    try:
        for task in pipeline.results(frames, ordered=True):
            if videos.take(task):
                continue
            path = str(task.path or f"#{task.index}")
            log.add(
                path,
                task.error,
                skipped=task.skipped,
                done=not task.cancelled,
                video=is_video_input(task),
            )
    finally:
        videos.close()


def is_video_input(task: Task) -> bool:
    """Whether a task that is no frame stands for a video: one that could not be opened
    (refused at stage "read", which only videos are), or a finished one passed on whole."""
    source = task.source
    if isinstance(source, RejectedInput):
        return source.stage == "read"
    return task.skipped and video_path(source) is not None


def video_record(
    clip: Any, error: tuple[str, str] | None, frame: int | None, written: tuple[Path, ...]
) -> dict[str, Any]:
    """A video's entry in run.json's `videos`: complete, partial (broke at `frame`, the
    frames before it kept) or failed (nothing written)."""
    return {
        "path": str(clip.path),
        "frames": clip.frames if written else 0,
        "partial": bool(error and written),
        "broken_at_frame": frame if error else None,
        "cuts": list(clip.aligner.cuts) if clip.aligner else [],
        "outputs": [str(p) for p in written],
    }


@dataclass
class Outcome:
    """One input's end, as a Ray actor reports it to the driver."""

    status: str  # ok, failed, skipped, or cancelled (the job stopped before it ended)
    stage: str = ""
    reason: str = ""
    frame: int | None = None  # the frame a video broke at
    frames: int = 0  # a video's frames encoded
    record: dict[str, Any] | None = None  # a video's run.json entry
    video: bool = False


class VideoLog(ABC):
    """What a log does when a video ends, for JobLog and Outcomes alike; each has its own
    `add` (an input's outcome) and `video_ended` (the video's run.json record)."""

    @abstractmethod
    def add(self, path: str, error: tuple[str, str] | None, **how: Any) -> None:
        """Record one input's outcome."""

    @abstractmethod
    def video_ended(self, record: dict[str, Any]) -> None:
        """Record a finished video's run.json entry."""

    def video_done(
        self,
        clip: Any,
        error: tuple[str, str] | None,
        frame: int | None,
        written: tuple[Path, ...] = (),
    ) -> None:
        """A video ended: complete, partial (its stream broke at `frame`: the frames before
        it are kept) or failed (nothing written); its frames already moved the bar."""
        self.video_ended(video_record(clip, error, frame, written))
        self.add(str(clip.path), error, frame=frame, counted=False, video=True)


class Outcomes(VideoLog):
    """The log `drive` talks to in a Ray actor: JobLog's calls, kept per input path.

    A video's frames arrive in order and one video at a time (`drive` orders its tasks),
    so the frames counted since the video started are that video's.
    """

    def __init__(self, sender: TallySender | None = None) -> None:
        self.by_path: dict[str, Outcome] = {}
        self._frames = 0
        self.sender = sender  # tells the driver's bar of each frame as it goes

    def add(self, path: str, error: tuple[str, str] | None, **how: Any) -> None:
        """JobLog.add's outcome (`how`: skipped, done, frame, video; `counted` is for the
        driver's progress bar, which it moves itself)."""
        skipped, done = how.get("skipped", False), how.get("done", True)
        frame, video = how.get("frame"), how.get("video", False)
        status = "failed" if error else "skipped" if skipped else "ok" if done else "cancelled"
        outcome = self.by_path.setdefault(path, Outcome(status))
        outcome.status, outcome.frame, outcome.video = status, frame, video
        if error:
            outcome.stage, outcome.reason = error

    def video_started(self, expected_frames: int, path: Path | None = None) -> None:
        self._frames = 0
        if self.sender is not None and path is not None:
            self.sender.started(str(path), expected_frames)

    def frame(self) -> None:
        self._frames += 1
        if self.sender is not None:
            self.sender.frame()

    def video_ended(self, record: dict[str, Any]) -> None:
        if self.sender is not None:
            self.sender.flush()
        self.by_path[record["path"]] = Outcome("ok", frames=self._frames, record=record)


def replay(
    log: Any, row: dict[str, Any], error: tuple[str, str] | None, live: LiveFrames | None = None
) -> None:
    """A Ray actor's row for one input, told to the driver's JobLog as `drive` tells a
    local one: a video's frames move the bar and count in the summary, its record goes to
    run.json's `videos`, and a video that broke names its frame in errors.jsonl. What
    `live` showed of the video as it went is settled against the row, not counted again."""
    frames, frame = int(row["frames"]), int(row["frame"])
    if row["record"]:
        log.video_ended(json.loads(str(row["record"])))
    shown, expected = live.settle(str(row["path"])) if live is not None else (0, 0)
    if expected:  # the bar took the header's count; the row has the truth
        log.extend_total(max(frames, 1) - expected)
    elif frames:
        log.video_started(frames)
    for index in range(frames):
        log.frame(moves_bar=index >= shown)
    log.add(
        str(row["path"]),
        error,
        skipped=row["status"] == "skipped",
        frame=frame if frame >= 0 else None,
        counted=not frames,
        video=bool(row["video"]),
    )
