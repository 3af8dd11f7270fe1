"""The look-ahead of `--temporal align` in the pipeline: a frame waits for the frames after
it, within the job's in-flight window (so no window is too small to finish), and a frame
that fails in the middle of a video takes its turn without holding the others back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_backend_seam import AsyncFakeBackend, FakeBackend

from xdepth.api import DepthEngine
from xdepth.eval.clips import make_clip, write_clip
from xdepth.post.temporal import LAG_FRAMES

FAILING_FRAME = 9  # the fake model refuses a red 13 at the frame's top-left pixel


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rgb = make_clip("pan", 3).rgb.copy()
    rgb[:, 0, 0, 0] = 40
    rgb[FAILING_FRAME, 0, 0, 0] = 13
    return write_clip(rgb, tmp_path_factory.mktemp("lag") / "pan.mkv")


@pytest.mark.parametrize("backend_type", [FakeBackend, AsyncFakeBackend], ids=["sync", "async"])
@pytest.mark.parametrize("max_in_flight", [1, 2, 4, None])
def test_every_frame_comes_out_in_order_whatever_the_window(
    clip_path: Path, backend_type: type, max_in_flight: int | None
) -> None:
    engine = DepthEngine(backend_type(), outputs=("mask",), max_in_flight=max_in_flight)
    results = list(engine.map([clip_path], errors="skip"))
    assert len(results) == 23  # 24 frames, one refused by the model
    assert all(r.depth_range is not None for r in results)  # every other frame aligned
    assert all(r.depth.shape == (64, 96) for r in results)


def test_the_window_bounds_the_look_ahead(clip_path: Path) -> None:
    """With room for it, a frame is smoothed with the frames after it; in a window of one
    it cannot wait for them, and comes out as a filter over the past alone would give."""
    depths = {}
    for window in (1, 2, None):
        engine = DepthEngine(FakeBackend(), outputs=("mask",), max_in_flight=window)
        depths[window] = np.stack([r.depth for r in engine.map([clip_path], errors="skip")])
    assert LAG_FRAMES > 1
    assert not np.allclose(depths[None], depths[1])  # the frames after each one count
    assert not np.allclose(depths[2], depths[1])  # one frame of look-ahead fits in two
    assert not np.allclose(depths[2], depths[None])  # and only one


def test_a_failure_in_the_middle_is_reported_at_its_turn(clip_path: Path) -> None:
    engine = DepthEngine(FakeBackend(), outputs=("mask",))
    stream = engine.map([clip_path])
    for _ in range(FAILING_FRAME):
        next(stream)
    with pytest.raises(Exception, match="refuses red 13"):
        next(stream)
