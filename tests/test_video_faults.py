"""Faults of a job in the middle of a video: `kill -9` of a real `xdepth run` process, and a
disk that fills while a video's outputs are being encoded. Either way a rerun of the same
command finishes the job with the bytes of a run that never stopped, and leaves nothing
temporary behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_faults import FullDisk  # the write layer that refuses bytes past a budget

from xdepth.cli.main import main
from xdepth.eval.clips import make_clip, write_clip
from xdepth.model.cache import cached_artifact
from xdepth.post.encoders import TEMP_PREFIX

HEIGHT, WIDTH = 64, 96
OUTPUTS = ("--outputs", "depth16,composite,depth16-png")  # FFV1, H.264, a frame folder
SUFFIXES = ("depth16.mkv", "composite.mp4", "depth16-png")
BOOKKEEPING = {".xdepth-job.json", ".xdepth-job.lock", "run.json", "errors.jsonl"}


@pytest.fixture(scope="module")
def artifact() -> Path:
    return cached_artifact("xdepth-tiny", precision="f32")


def _command(artifact: Path, folder: Path, out: Path) -> list[str]:
    return ["run", str(folder), "-o", str(out), "--artifact", str(artifact), "--quiet", *OUTPUTS]


def _process(artifact: Path, folder: Path, out: Path, cache: Path) -> subprocess.Popen:
    """`xdepth run` in a process of its own (its OpenVINO compile cache in `cache`)."""
    command = [sys.executable, "-m", "xdepth.cli.main", *_command(artifact, folder, out)]
    env = dict(os.environ, XDEPTH_CACHE=str(cache))
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def _finished(proc: subprocess.Popen) -> int:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return proc.returncode


def _outputs(out: Path) -> dict[str, bytes]:
    """Every output file's bytes (frame folders file by file), by relative path."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in BOOKKEEPING
    }


def _clips(folder: Path, frames_b: int) -> None:
    """a.mkv, short, then b.mkv, which the job is in the middle of when it stops."""
    folder.mkdir()
    write_clip(make_clip("pan", 11, 8, HEIGHT, WIDTH).rgb, folder / "a.mkv")
    write_clip(make_clip("dolly", 12, frames_b, HEIGHT, WIDTH).rgb, folder / "b.mkv")


def test_kill_9_mid_video_then_a_rerun_gives_the_bytes_of_an_uninterrupted_run(
    artifact: Path, tmp_path: Path
) -> None:
    folder, cache = tmp_path / "in", tmp_path / "ov-cache"
    frames_b = 120
    _clips(folder, frames_b)
    _finished(_process(artifact, folder, tmp_path / "reference", cache))
    reference = _outputs(tmp_path / "reference")

    out = tmp_path / "out"
    proc = _process(artifact, folder, out, cache)
    # b's frame folder fills a file per frame under its temporary name: kill once it holds
    # a few (a is finished by then: a video's frames reach the writers in order).
    deadline = time.monotonic() + 120
    while True:
        folders = list(out.glob(f"{TEMP_PREFIX}b.depth16-png.*"))
        with contextlib.suppress(FileNotFoundError):  # renamed: b finished (asserted below)
            if folders and len(os.listdir(folders[0])) >= 8:
                break
        if proc.poll() is not None:
            pytest.fail(f"the job ended before it could be killed: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "no frames of b.mkv written in 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    proc.stderr.close()
    assert sorted(p.name for p in out.glob("a.*")) == sorted(f"a.{s}" for s in SUFFIXES)
    assert not list(out.glob("b.*"))  # nothing of b under a final name
    left = {p.name[len(TEMP_PREFIX) :].split(".")[1] for p in out.glob(f"{TEMP_PREFIX}*")}
    assert {"depth16", "composite", "depth16-png"} <= left  # b's, mid-write

    _finished(_process(artifact, folder, out, cache))
    report = json.loads((out / "run.json").read_text())
    assert report["resumed"] and report["removed_temp_files"] >= 3
    assert (report["ok"], report["skipped"], report["frames"]) == (1, 1, frames_b)
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))
    assert _outputs(out) == reference


def test_a_disk_that_fills_mid_video_stops_the_job_and_a_rerun_finishes_it(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    folder = tmp_path / "in"
    _clips(folder, 12)
    _finished(_process(artifact, folder, tmp_path / "reference", tmp_path / "ov-cache"))
    reference = _outputs(tmp_path / "reference")
    size = {
        stem: sum(len(data) for name, data in reference.items() if name.startswith(f"{stem}."))
        for stem in "ab"
    }
    out = tmp_path / "out"
    disk = FullDisk(out, budget=size["a"] + size["b"] // 2)  # the disk fills during b
    disk.install(monkeypatch)
    command = _command(artifact, folder, out)
    assert main([*command, "--readers", "1", "--post-workers", "1"]) == 74
    err = capsys.readouterr().err
    assert "No space left on device (ENOSPC)" in err and str(out) in err
    assert disk.refused >= 1
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))
    assert not list(out.glob("b.*"))  # no partial video under its final name
    assert _outputs(out) == {n: d for n, d in reference.items() if n.startswith("a.")}
    report = json.loads((out / "run.json").read_text())
    assert report["stopped"]["code"] == "ENOSPC" and report["exit_code"] == 74
    assert "No space left on device" in report["stopped"]["reason"]
    assert (report["ok"], report["failed"]) == (1, 0)
    assert [Path(v["path"]).name for v in report["videos"]] == ["a.mkv"]
    assert (out / "errors.jsonl").read_text() == ""

    monkeypatch.undo()  # space freed
    assert main(command) == 0
    report = json.loads((out / "run.json").read_text())
    assert (report["ok"], report["skipped"], report["stopped"]) == (1, 1, None)
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))
    assert _outputs(out) == reference
