"""Videos with `xdepth run --ray`: each video is one actor's unit, run through the local
runner's own code, so every output file, errors.jsonl line and run.json video record is
the local run's, and a rerun resumes by the same rules.

The local run is a process of its own: within one process, libx264 has given other bytes
for the same frames once two of its encoders had run side by side, so H.264 files are
compared between processes that each encode their videos one after another from a fresh
start (the Ray actors are such processes).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pytest

ray = pytest.importorskip("ray")

from test_ray import (  # noqa: E402
    _errors,
    _outputs,
    cache_dir,
    local_ray,
    model_args,
    shipped_artifact,
)
from test_video_progress import (  # noqa: E402
    FRAMES,
    HEIGHT,
    IMAGES,
    WIDTH,
    bars,
    make_clip_folder,
    summary_line,
)

from xdepth.cli.main import main  # noqa: E402
from xdepth.job.ray_job import run_ray  # noqa: E402

__all__ = ["bars", "cache_dir", "local_ray", "model_args", "shipped_artifact"]
OUTPUTS = ["--outputs", "depth16,depth-color,mask,cutout,npy"]
POOL = ["--ray-actors", "2", "--ray-cpus-per-actor", "1", "--ray-batch-size", "1"]


def _videos(out: Path) -> list[dict[str, Any]]:
    """run.json's video records, with OUT's name taken out of their output paths."""
    videos = json.loads((out / "run.json").read_text())["videos"]
    for record in videos:
        record["outputs"] = [Path(p).relative_to(out).as_posix() for p in record["outputs"]]
    return videos


def _frames(path: Path) -> int:
    """How many frames a video output decodes to (each at the clips' size)."""
    with av.open(str(path)) as container:
        sizes = [(f.height, f.width) for f in container.decode(video=0)]
    assert set(sizes) == {(HEIGHT, WIDTH)}, path
    return len(sizes)


def test_videos_on_ray_give_the_local_runs_bytes_records_and_progress(
    local_ray: Any, model_args: list[str], bars: list[Any], tmp_path: Path, capsys
) -> None:
    folder = make_clip_folder(tmp_path / "in")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    args = ["run", str(folder), *model_args, *OUTPUTS]
    argv = [*args, "-o", str(local)]
    code = f"import sys; from xdepth.cli.main import main; sys.exit(main({argv!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert main([*args, "-o", str(on_ray), "--ray", *POOL]) == 1

    errors = _errors(on_ray)
    assert errors == _errors(local)
    by_name = {Path(e["path"]).name: e for e in errors}
    assert set(by_name) == {"cut.mkv", "notes.mp4"}
    assert all(e["stage"] == "read" for e in errors)
    broken = by_name["cut.mkv"]["frame"]
    assert 0 < broken < FRAMES

    expected = _outputs(local)
    stems = {"a": FRAMES, "cut": broken}
    npy = {f"{s}.depth-npy/{i:06d}.npy" for s, n in stems.items() for i in range(n)}
    kinds = ("depth16.mkv", "depth-color.mp4", "mask.mkv", "cutout.webm")
    files = {f"{s}.{k}" for s in stems for k in kinds}
    kinds = ("depth16.png", "depth-color.png", "mask.png", "cutout.png", "depth.npy")
    images = {f"{Path(i).with_suffix('')}.{k}" for i in IMAGES for k in kinds}
    assert set(expected) == npy | files | images
    assert _outputs(on_ray) == expected  # byte for byte, FFV1, H.264, VP9, PNG and npy
    assert _frames(on_ray / "a.depth16.mkv") == FRAMES
    assert _frames(on_ray / "cut.depth-color.mp4") == broken

    videos = _videos(on_ray)
    assert videos == _videos(local)
    assert [(Path(v["path"]).name, v["frames"], v["partial"]) for v in videos] == [
        ("a.mkv", FRAMES, False),
        ("cut.mkv", broken, True),
    ]
    assert FRAMES // 2 in videos[0]["cuts"]
    reports = [json.loads((out / "run.json").read_text()) for out in (local, on_ray)]
    counts = [tuple(r[k] for k in ("ok", "failed", "skipped", "frames")) for r in reports]
    assert counts[0] == counts[1] == (3, 2, 0, FRAMES + broken)

    pattern = summary_line(2, 3, FRAMES + broken, 3, 2)
    assert re.fullmatch(pattern, done.stdout.splitlines()[0])
    assert re.fullmatch(pattern, capsys.readouterr().out.splitlines()[0])
    (bar,) = bars  # the Ray driver's: every frame moved it
    assert (bar.n, bar.total, bar.unit) == (len(IMAGES) + FRAMES + broken + 1,) * 2 + ("frame",)


def test_ray_rerun_skips_finished_videos_and_redoes_an_unfinished_one(
    local_ray: Any, shipped_artifact: Path, cache_dir: Path, tmp_path: Path
) -> None:
    folder = make_clip_folder(tmp_path / "in")
    out = tmp_path / "out"
    options: dict[str, Any] = {"actors": 2, "cpus_per_actor": 1, "cache_dir": cache_dir}
    first = run_ray(shipped_artifact, [folder], out, quiet=True, **options)
    assert (first.ok, first.failed, first.video_inputs) == (3, 2, 3)
    done = _outputs(out)
    (out / "a.mask.mkv").unlink()  # as a kill -9 between two renames leaves it
    again = run_ray(shipped_artifact, [folder], out, quiet=True, **options)
    # a.mkv redone whole; the photos and the partial cut.mkv (its files are there) skipped
    assert (again.ok, again.skipped, again.failed, again.frames) == (1, 3, 1, FRAMES)
    assert [Path(v["path"]).name for v in again.videos] == ["a.mkv"]
    assert _outputs(out) == done
    assert [Path(e["path"]).name for e in _errors(out)] == ["notes.mp4"]
