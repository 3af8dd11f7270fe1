"""Progress and the summary of `xdepth run` count a video's frames, not only its file.

`clip_folder` (also used by test_ray_video) holds two photos, a whole clip, a clip cut off
part-way (partial: the frames before the break are kept) and a file that is no video.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tqdm import tqdm

import xdepth.job.local as local
from xdepth.cli.main import main
from xdepth.eval.clips import make_clip, write_clip
from xdepth.eval.scenes import make_scene
from xdepth.model.cache import cached_artifact

FRAMES, HEIGHT, WIDTH = 12, 64, 96
IMAGES = ("b.png", "sub/c.png")
FLOAT = r"\d+\.\d\d"


def make_clip_folder(folder: Path) -> Path:
    """b.png, sub/c.png; a.mkv (12 frames, a scene cut at 6); cut.mkv (the first two
    thirds of a 12-frame clip's bytes); notes.mp4 (text)."""
    (folder / "sub").mkdir(parents=True)
    for seed, name in enumerate(IMAGES):
        Image.fromarray(make_scene(seed + 4, HEIGHT, WIDTH).rgb).save(folder / name)
    write_clip(make_clip("cut", 3, FRAMES, HEIGHT, WIDTH).rgb, folder / "a.mkv")
    whole = write_clip(make_clip("pan", 5, FRAMES, HEIGHT, WIDTH).rgb, folder / "cut.mkv")
    data = whole.read_bytes()
    whole.write_bytes(data[: len(data) * 2 // 3])
    (folder / "notes.mp4").write_text("this is not a video\n")
    return folder


@pytest.fixture
def clip_folder(tmp_path: Path) -> Path:
    return make_clip_folder(tmp_path / "in")


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every progress bar a job opens, shown (into a string) and kept for inspection."""
    opened: list[Any] = []

    def shown(total: int | None, quiet: bool) -> Any:
        bar = tqdm(total=total, unit="img", file=io.StringIO(), disable=False)
        opened.append(bar)
        return bar

    monkeypatch.setattr(local, "_progress_bar", shown)
    return opened


def summary_line(images: int, videos: int, frames: int, ok: int, failed: int) -> str:
    """The first line `xdepth run` prints, as a pattern (its timings vary)."""
    return (
        rf"{images} images, {videos} videos \({frames} frames\): {ok} ok, {failed} failed, "
        rf"0 skipped \(already done\) in {FLOAT} s: {FLOAT} frames/s end to end, "
        rf"{FLOAT} frames/s model only"
    )


def test_progress_and_summary_count_frames(
    clip_folder: Path, bars: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    artifact = cached_artifact("xdepth-tiny", precision="f32")
    out = tmp_path / "out"
    args = ["run", str(clip_folder), "-o", str(out), "--artifact", str(artifact)]
    assert main([*args, "--outputs", "depth16", "--quiet"]) == 1
    errors = {Path(e["path"]).name: e for e in map(json.loads, (out / "errors.jsonl").open())}
    broken = errors["cut.mkv"]["frame"]  # cut.mkv's frames before its break are kept
    assert 0 < broken < FRAMES and set(errors) == {"cut.mkv", "notes.mp4"}
    frames = FRAMES + broken
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(summary_line(2, 3, frames, 3, 2), lines[0]), lines[0]
    assert re.fullmatch(rf"2 videos decoded: {frames} frames written, 1 partial, \d+ scene cuts?",
                        lines[1]), lines[1]  # fmt: skip
    (bar,) = bars
    assert bar.unit == "frame"
    assert bar.n == len(IMAGES) + frames + 1  # photos, frames, and the file that is no video
    # Its total: each video's frames as its header gives them (Matroska: duration x rate;
    # cut.mkv's header still promises all of its 12).
    assert bar.total == len(IMAGES) + 2 * FRAMES + 1
