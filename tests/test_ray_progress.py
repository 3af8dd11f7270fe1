"""A video's frames on the Ray driver's bar as an actor encodes them, settled exactly when
its row comes back (no Ray needed: the tally's two ends with stand-ins for its handle)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from tqdm import tqdm

from xdepth.job import local
from xdepth.job.local import JobLog, RunSummary
from xdepth.job.outcomes import replay
from xdepth.job.ray_progress import FrameTally, LiveFrames, TallySender


class Remote:
    """What `tally.add.remote(...)` does on a Ray actor handle: calls the method, here at
    once, and returns a reference (the call's arguments) for `ray.get`."""

    def __init__(self, method: Any, calls: list[tuple]) -> None:
        self.method, self.calls = method, calls

    def remote(self, *args: Any) -> tuple:
        self.method(*args)
        self.calls.append(args)
        return args


class Handle:
    def __init__(self, tally: FrameTally) -> None:
        self.calls: list[tuple] = []
        self.add = Remote(tally.add, self.calls)


def test_the_sender_reports_as_it_goes_and_everything_at_the_end() -> None:
    tally, waited = FrameTally(), []
    handle = Handle(tally)
    sender = TallySender(handle, waited.append, every_s=3600)  # nothing due before the end
    sender.started("a.mkv", 12)
    for _ in range(5):
        sender.frame()
    assert tally.take() == {"a.mkv": [0, 12]}  # the count promised, no frame yet
    sender.flush()
    assert tally.take() == {"a.mkv": [5, 0]} and waited == [("a.mkv", 5)]
    often = TallySender(handle, waited.append, every_s=0)
    often.started("b.mkv", 3)
    for _ in range(3):
        often.frame()
    often.flush()  # nothing left to wait for
    assert tally.take() == {"b.mkv": [3, 3]} and len(waited) == 1


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> JobLog:
    monkeypatch.setattr(
        local, "_progress_bar", lambda total, quiet: tqdm(total=total, file=io.StringIO())
    )
    return JobLog(RunSummary(out=str(tmp_path)), total=4, quiet=True)


def _row(path: str, frames: int, frame: int = -1, status: str = "ok") -> dict[str, Any]:
    return {"path": path, "frames": frames, "frame": frame, "record": "", "status": status,
            "video": True}  # fmt: skip


def test_rows_settle_what_the_bar_showed_without_counting_it_twice(log: JobLog) -> None:
    """Four inputs: a.mkv (12 frames, all encoded), b.mkv (its header says 12, it breaks
    at 5), c.mkv (fails before its first frame), d.png."""
    live = LiveFrames(log)
    live.show({"a.mkv": [7, 12], "b.mkv": [5, 12], "c.mkv": [0, 12]})
    assert (log.bar.n, log.bar.total) == (12, 4 + 3 * 11)  # as the frames go
    replay(log, _row("a.mkv", 12), None, live)
    replay(log, _row("b.mkv", 5, 5, "failed"), ("read", "broken"), live)
    replay(log, _row("c.mkv", 0, 0, "failed"), ("read", "broken"), live)
    log.add("d.png", None)
    assert (log.bar.n, log.bar.total) == (12 + 5 + 1 + 1,) * 2
    assert log.summary.frames == 17 and (log.summary.ok, log.summary.failed) == (2, 2)


def test_without_a_tally_rows_move_the_bar_as_before(log: JobLog) -> None:
    replay(log, _row("a.mkv", 12), None)
    replay(log, _row("b.mkv", 5, 5, "failed"), ("read", "broken"), LiveFrames(log))
    assert (log.bar.n, log.bar.total) == (17, 4 + 11 + 4)  # two inputs still to come
