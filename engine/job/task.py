"""One input's task on its way through the pipeline, and the time each stage spends."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xdepth.errors import XDepthError
from xdepth.job.inputs import InputItem, RejectedInput
from xdepth.job.video_frames import VideoFrame
from xdepth.outputs.result import DepthResult
from xdepth.post.temporal import FrameAlignment


@dataclass(eq=False)
class Task:
    """One image on its way through the pipeline."""

    index: int
    source: Any  # InputItem, RejectedInput, a path, a PIL image or an array
    image: np.ndarray | None = None
    f_35mm: float | None = None
    model_input: np.ndarray | None = None
    depth: np.ndarray | None = None
    result: DepthResult | None = None
    written: tuple[Path, ...] = ()
    error: tuple[str, str] | None = None  # (stage, reason)
    skipped: bool = False
    cancelled: bool = False
    alignment: FrameAlignment | None = None  # a video frame's place on its video's scale
    awaiting: tuple[int, ...] | None = None  # a video frame's depth shape, until aligned
    planes: dict[str, Any] | None = None  # a video frame's pixels per output kind
    slot_freed: bool = False  # held by the sequencer, its post slot already given back

    @property
    def path(self) -> Path | None:
        if isinstance(self.source, (InputItem, RejectedInput, VideoFrame)):
            return self.source.path
        return Path(self.source) if isinstance(self.source, (str, Path)) else None

    @property
    def rel(self) -> Path | None:
        return self.source.rel if isinstance(self.source, (InputItem, VideoFrame)) else None

    @property
    def frame(self) -> VideoFrame | None:
        return self.source if isinstance(self.source, VideoFrame) else None

    def fail(self, stage: str, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, XDepthError) else f"{type(exc).__name__}: {exc}"
        where = self.path
        if where is not None and str(where) not in reason:
            reason = f"{where}: {reason}"
        self.error = (stage, reason)


@dataclass
class StageStats:
    """Thread-seconds a stage spent working, starved of input, and held up by the next stage."""

    name: str
    workers: int
    busy_s: float = 0.0
    wait_input_s: float = 0.0
    wait_next_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, busy: float = 0.0, wait_input: float = 0.0, wait_next: float = 0.0) -> None:
        with self._lock:
            self.busy_s += busy
            self.wait_input_s += wait_input
            self.wait_next_s += wait_next

    def as_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "busy_s": round(self.busy_s, 3),
            "waited_for_input_s": round(self.wait_input_s, 3),
            "waited_on_next_stage_s": round(self.wait_next_s, 3),
        }
