"""A batch job: inputs -> pipeline -> OUT, resumable, with errors.jsonl, progress and run.json.

One bad file never stops a job: its failure goes to OUT/errors.jsonl as one JSON line
(path, stage, reason), is printed, and counted; the other images go on. Faults of the job,
not of an image, stop it: OUT's filesystem refusing data (`xdepth.job.storage`: exit 74) and
SIGINT/SIGTERM (`xdepth.job.signals`: 130/143). At the end, however it ends, a summary (ok /
failed / skipped, wall time, images/s, model-only images/s, how long each stage waited
for input or on the next stage, and why it stopped) is printed and written to OUT/run.json.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from signal import Signals
from typing import IO, Any

from xdepth.job.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_STORAGE, signal_exit_code
from xdepth.job.imageio import DEFAULT_MAX_PIXELS, ImageReadError, read_image
from xdepth.job.inputs import InputItem, InputSource
from xdepth.job.outcomes import VideoLog, drive
from xdepth.job.output_folder import OutputFolder, settings_record
from xdepth.job.pipeline import Pipeline
from xdepth.job.run_report import ERRORS_FILE, RUN_FILE, describe
from xdepth.job.signals import Interrupted
from xdepth.job.storage import StorageFault, check_output, storage_fault
from xdepth.job.video_frames import video_path
from xdepth.model.backends.interface import Backend, as_backend
from xdepth.outputs.settings import PostSettings, SettingsError, background_kind
from xdepth.post import parse_policy
from xdepth.post.encoders import write_atomic

__all__ = [
    "JobLog",
    "RunSummary",
    "check_settings",
    "job_pipeline",
    "load_background",
    "open_job",
    "run",
    "write_run_file",
]
_ERRORS_IN_SUMMARY = 20


@dataclass
class RunSummary:
    """What a job did; printed at the end, written to OUT/run.json, returned to the caller.

    `model_seconds` is the time at least one inference was in flight, so model-only
    images/s equals the model's own rate when the pipeline keeps it busy; stage waits are
    thread-seconds starved of input and held up by the next stage. A video counts once in
    ok / failed / skipped, and its frames in the rates (`frames_done`).
    """

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    out: str = ""
    model: str = ""
    resumed: bool = False
    removed_temp_files: int = 0
    interrupted: bool = False
    signal: str | None = None  # the signal that interrupted the job (SIGINT, SIGTERM)
    stopped: dict[str, str] | None = None  # OUT refused data: {"code": "ENOSPC", "reason"}
    ray: dict[str, Any] | None = None  # the actor pool of a Ray job (xdepth.job.ray_job)
    precision: dict[str, Any] = field(default_factory=dict)  # asked for, computed, CPU
    frames: int = 0  # video frames written
    videos: list[dict[str, Any]] = field(default_factory=list)  # one record per video
    video_inputs: int = 0  # of the inputs counted in ok/failed/skipped, the videos
    videos_ok: int = 0

    @property
    def frames_done(self) -> int:
        """Images done plus video frames written: what the rates count (a photo is a frame)."""
        return self.ok - self.videos_ok + self.frames

    @property
    def images_per_s(self) -> float:
        return self.frames_done / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_images_per_s(self) -> float:
        return self.frames_done / self.model_seconds if self.model_seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """xdepth.job.exit_codes: storage fault, then signal, then failed images, else 0."""
        if self.stopped:
            return EXIT_STORAGE
        if self.interrupted:
            return signal_exit_code(Signals[self.signal or "SIGINT"])
        return EXIT_FAILED if self.failed else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 3),
            "model_seconds": round(self.model_seconds, 3),
            "model_images_per_s": round(self.model_images_per_s, 3),
            "stages": self.stages,
            "model": self.model,
            "precision": self.precision,
            "out": self.out,
            "resumed": self.resumed,
            "removed_temp_files": self.removed_temp_files,
            "interrupted": self.interrupted,
            "signal": self.signal,
            "stopped": self.stopped,
            "exit_code": self.exit_code,
            "errors_shown": self.errors[:_ERRORS_IN_SUMMARY],
            "frames": self.frames,
            "videos": self.videos,
        } | ({"ray": self.ray} if self.ray is not None else {})

    def describe(self) -> str:
        return describe(self)


def check_settings(inference: Backend, settings: PostSettings) -> None:
    """Refuse settings the model or this host cannot serve, before the first image.

    A metric cut needs a metric model; ``resize = "seed"`` (the seed preset's torch
    upsample) needs torch, which a runtime-only install does not have.
    """
    if parse_policy(settings.threshold).metric and inference.semantics != "metric_depth_m":
        raise SettingsError(
            f"--threshold {settings.threshold} cuts metric depth, but {inference.label} "
            "predicts relative inverse depth; use abs:N, nearest:P%, otsu or range:F"
        )
    if settings.resize == "seed" and not _torch_importable():
        raise SettingsError(
            "resize = \"seed\" (torch's bicubic upsample, bit for bit the seed's) needs torch: "
            "pip install 'xdepth[export]', or use a preset file with resize = \"fast\" "
            "(OpenCV's bicubic; the clip then differs from the seed's on about one pixel in a "
            "million)"
        )


def _torch_importable() -> bool:
    try:
        import torch  # noqa: F401  (loaded here once; the seed resize imports it anyway)
    except ImportError:
        return False
    return True


def load_background(settings: PostSettings, max_pixels: int = DEFAULT_MAX_PIXELS):
    """The --background image as uint8 RGB, or None when the background is not an image."""
    kind, value = background_kind(settings.background)
    if kind != "image" or "composite" not in settings.outputs:
        return None
    try:
        return read_image(value, max_pixels).rgb  # type: ignore[arg-type]
    except ImageReadError as exc:
        raise SettingsError(f"--background: {exc}") from None


class JobLog(VideoLog):
    """The caller's side of a job, shared by the local and the Ray runner: the counts of the
    summary, the progress bar, and OUT/errors.jsonl, written line by line as failures happen.

    As a context manager it times the job (from entry, or from `start` reset) and, however
    the job ends, closes the log and writes OUT/run.json. A signal marks it interrupted; a
    StorageFault marks it stopped and ends here (the summary carries its exit code).
    """

    def __init__(self, summary: RunSummary, total: int | None, quiet: bool) -> None:
        self.summary, self.quiet = summary, quiet
        self.bar = _progress_bar(total, quiet)
        self.handle: IO[str] = (Path(summary.out) / ERRORS_FILE).open("w", encoding="utf-8")
        self.start = time.perf_counter()

    def __enter__(self) -> JobLog:
        self.start = time.perf_counter()
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, _: object) -> bool:
        summary = self.summary
        if isinstance(exc, KeyboardInterrupt):
            summary.interrupted = True
            summary.signal = exc.name if isinstance(exc, Interrupted) else "SIGINT"
        if isinstance(exc, StorageFault):
            summary.stopped = {"code": exc.code, "reason": str(exc)}
        try:
            self.close()
        except OSError as error:  # the last errors.jsonl lines did not fit
            print(f"xdepth: cannot write {self.handle.name}: {error}", file=sys.stderr)
        summary.seconds = time.perf_counter() - self.start
        try:
            write_run_file(summary)
        except OSError as error:
            print(
                f"xdepth: cannot write {Path(summary.out) / RUN_FILE} ({error.strerror or error}); "
                f"{summary.ok + summary.skipped} images were finished",
                file=sys.stderr,
            )
        return isinstance(exc, StorageFault)

    def add(
        self,
        path: str,
        error: tuple[str, str] | None,
        *,
        skipped: bool = False,
        done: bool = True,
        frame: int | None = None,
        counted: bool = True,
        video: bool = False,
    ) -> None:
        """One image's or video's outcome: failed (error: stage, reason; for a video, the
        frame it reached), skipped, or ok when done; `counted` False when its frames
        already moved the bar."""
        summary = self.summary
        if video:
            summary.video_inputs += 1
            summary.videos_ok += bool(done and not (error or skipped))
        if error:
            stage, reason = error
            entry = {"path": path, "stage": stage, "reason": reason}
            if frame is not None:
                entry["frame"] = frame
            try:
                self.handle.write(json.dumps(entry) + "\n")
                self.handle.flush()
            except OSError as exc:
                raise storage_fault(exc, self.handle.name) or exc from None
            if not self.quiet:
                self.bar.write(f"xdepth: {stage} failed: {reason}")
            summary.failed += 1
            summary.errors.append(entry)
        elif skipped:
            summary.skipped += 1
        elif done:
            summary.ok += 1
        if counted:
            self.bar.update(1)
        if summary.failed:
            self.bar.set_postfix(failed=summary.failed, refresh=False)

    def video_started(self, expected_frames: int, path: Path | None = None) -> None:
        """A video's frames move the bar (one step each): they join its total."""
        del path  # the bar is the job's
        self.bar.unit = "frame"
        if expected_frames > 1:
            self.extend_total(expected_frames - 1)

    def extend_total(self, steps: int) -> None:
        """More (or, negative, fewer) steps for the bar to go."""
        if self.bar.total is not None and steps:
            self.bar.total += steps
            self.bar.refresh()

    def frame(self, moves_bar: bool = True) -> None:
        """A video frame encoded; `moves_bar` False when the bar has shown it already."""
        self.summary.frames += 1
        if moves_bar:
            self.bar.update(1)

    def video_ended(self, record: dict[str, Any]) -> None:
        self.summary.videos.append(record)

    def close(self) -> None:
        self.bar.close()
        self.handle.close()


def write_run_file(summary: RunSummary) -> None:
    """OUT/run.json: the summary, replaced atomically."""
    report = json.dumps(summary.as_dict(), indent=2) + "\n"
    write_atomic(Path(summary.out) / RUN_FILE, report.encode())


def open_job(
    inference: Backend, settings: PostSettings, out: str | Path, overwrite: bool, max_pixels: int
) -> tuple[OutputFolder, RunSummary, Any]:
    """Every runner's checks before its first image: settings the model can serve, the
    --background image (or None), and OUT for these settings (to open) with its summary."""
    check_settings(inference, settings)
    background = load_background(settings, max_pixels)
    folder = OutputFolder(out, settings_record(inference.identity(), settings), overwrite)
    summary = RunSummary(out=str(out), model=inference.label, precision=inference.precision())
    return folder, summary, background


def job_pipeline(
    inference: Backend, settings: PostSettings, folder: OutputFolder, **options: Any
) -> Pipeline:
    """The pipeline of a job writing into `folder`: images whose outputs are complete are
    skipped, the others written atomically. `options` are Pipeline's (readers, ...)."""
    return Pipeline(
        inference,
        settings,
        writer=lambda task, files: folder.write(task.rel, files),
        skip=lambda task: task.frame is None and job_done(folder, settings, task.source),
        **options,
    )


def job_done(folder: OutputFolder, settings: PostSettings, item: Any) -> bool:
    """Whether an input's outputs are all in OUT already (a video's, or an image's)."""
    if not isinstance(item, InputItem):
        return False
    video = video_path(item) is not None
    suffixes = settings.video_suffixes if video else settings.file_suffixes
    return folder.complete(item.rel, suffixes)


def _progress_bar(total: int | None, quiet: bool) -> Any:
    """A terminal bar, or a widget in a Jupyter kernel (tqdm.auto picks).

    `disable=None` is tqdm's "silent unless stderr is a terminal" in the terminal, and
    "always shown" for the notebook widget, whose output is never a terminal.
    """
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit="img",
        desc="xdepth",
        disable=True if quiet else None,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def run(
    backend: Any,
    inputs: InputSource | Iterable[InputItem],
    out: str | Path,
    settings: PostSettings | None = None,
    *,
    overwrite: bool = False,
    quiet: bool = False,
    readers: int = 2,
    post_workers: int = 2,
    max_in_flight: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_free: int | None = None,
) -> RunSummary:
    """Process `inputs` into `out`; see the module docstring. Raises on usage errors only.

    `min_free`: bytes OUT's filesystem must have free to start (None: the next few images'
    outputs, estimated; 0: no check). A full disk later stops the job: the summary's
    `stopped` says why, and its `exit_code` is EXIT_STORAGE.
    """
    settings = settings or PostSettings()
    inference = as_backend(backend)
    source = inputs if isinstance(inputs, InputSource) else InputSource(list(inputs))
    source = source.excluding(out)
    check_output(out, source.items, settings, min_free)
    folder, summary, background = open_job(inference, settings, out, overwrite, max_pixels)
    with folder:
        summary.resumed = folder.resuming
        summary.removed_temp_files = len(folder.removed_temp_files)
        pipeline = job_pipeline(
            inference,
            settings,
            folder,
            readers=readers,
            post_workers=post_workers,
            max_in_flight=max_in_flight,
            max_pixels=max_pixels,
            background_image=background,
        )
        busy_before = inference.clock.seconds
        with JobLog(summary, source.total, quiet) as log:
            try:
                drive(pipeline, source, settings, folder, log, partial(job_done, folder, settings))
            finally:
                summary.model_seconds = inference.clock.seconds - busy_before
                summary.stages = {name: s.as_dict() for name, s in pipeline.stats.items()}
    return summary
