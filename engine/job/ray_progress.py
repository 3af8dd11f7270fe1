"""A video's frames on the Ray driver's progress bar while an actor encodes them.

An actor's call returns when its video is done, hours later for a long one. So actors
tell a small tally actor each video's expected frames when it starts, and the frames done
every half second; a thread on the driver moves the bar from the tally. When the video's
row comes back, the driver settles the bar to the row's own figures: what the tally
already showed is not counted twice, and a video that ended early (a broken stream) takes
back the frames it promised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

EVERY_S = 0.5  # how often an actor reports, and the driver looks


class FrameTally:
    """A Ray actor (made with `ray.remote`): per video path, frames done and frames
    expected since the driver last took them."""

    def __init__(self) -> None:
        self._pending: dict[str, list[int]] = {}

    def add(self, path: str, frames: int = 0, expected: int = 0) -> None:
        entry = self._pending.setdefault(path, [0, 0])
        entry[0] += frames
        entry[1] += expected

    def take(self) -> dict[str, list[int]]:
        taken, self._pending = self._pending, {}
        return taken


class TallySender:
    """An actor's side: the video in progress, its frames sent at most every `every_s`
    (without waiting) and the rest at its end (waited for, so that the driver has them
    all before the video's row)."""

    def __init__(self, tally: Any, wait: Callable[[Any], Any], every_s: float = EVERY_S):
        self.tally, self.wait, self.every_s = tally, wait, every_s
        self.path: str | None = None
        self.unsent = 0
        self.sent_at = 0.0

    def started(self, path: str, expected_frames: int) -> None:
        self.flush()
        self.path, self.sent_at = path, time.monotonic()
        self.tally.add.remote(path, 0, expected_frames)

    def frame(self) -> None:
        self.unsent += 1
        now = time.monotonic()
        if self.path is not None and now - self.sent_at >= self.every_s:
            self.tally.add.remote(self.path, self.unsent)
            self.unsent, self.sent_at = 0, now

    def flush(self) -> None:
        if self.path is not None and self.unsent:
            self.wait(self.tally.add.remote(self.path, self.unsent))
        self.unsent = 0


class LiveFrames:
    """The driver's side: what the tally showed of each video, and the lock every change
    of the job's bar takes (the polling thread's and the rows')."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.lock = threading.Lock()
        self._shown: dict[str, list[int]] = {}  # path -> [frames, expected]

    def show(self, taken: dict[str, list[int]]) -> None:
        """The tally's news on the bar (call with `lock` held)."""
        for path, (frames, expected) in taken.items():
            shown = self._shown.setdefault(path, [0, 0])
            if expected:
                self.log.video_started(expected)
                shown[1] += expected
            if frames:
                self.log.bar.update(frames)
                shown[0] += frames

    def settle(self, path: str) -> tuple[int, int]:
        """(frames, expected) the bar already shows of a video whose row came back."""
        frames, expected = self._shown.pop(path, (0, 0))
        return frames, expected


class TallyPoller:
    """A driver thread that shows the tally every `every_s` until stopped."""

    def __init__(self, take: Callable[[], dict[str, list[int]]], live: LiveFrames) -> None:
        self.take, self.live = take, live
        self.stopping = threading.Event()
        self.broken = False
        self.thread = threading.Thread(target=self._run, name="xdepth-ray-progress", daemon=True)

    def __enter__(self) -> TallyPoller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()

    def poll(self) -> None:
        """The tally's news on the bar now (a row is about to settle against it). A tally
        that cannot be reached stops moving the bar, not the job: the rows still settle."""
        if self.broken:
            return
        try:
            taken = self.take()
        except Exception:  # Ray's errors for a lost actor are many; the bar is not the job
            self.broken = True
            return
        with self.live.lock:
            self.live.show(taken)

    def _run(self) -> None:
        while not self.stopping.wait(EVERY_S) and not self.broken:
            self.poll()
