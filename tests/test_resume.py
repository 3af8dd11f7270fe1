"""Resume and crash safety: kill -9 in the middle of a job, settings-hash refusal, locking."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from xdepth.cli.main import main
from xdepth.eval.scenes import make_scene
from xdepth.job.output_folder import JOB_FILE, LOCK_FILE, OutputFolder
from xdepth.post import TEMP_PREFIX

OUTPUTS = "depth16,mask,cutout,npy"
SUFFIXES = ("depth16.png", "mask.png", "cutout.png", "depth.npy")
BOOKKEEPING = {JOB_FILE, LOCK_FILE, "run.json", "errors.jsonl"}
IMAGES = 20
FED_BEFORE_KILL = 12


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i in range(IMAGES):
        rel = f"sub/img{i:02d}.jpg" if i % 3 == 0 else f"img{i:02d}.jpg"
        Image.fromarray(make_scene(100 + i, 120, 160).rgb).save(folder / rel, quality=90)
    return folder


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and p.name not in BOOKKEEPING
    }


def _done(out: Path, rel: str) -> bool:
    stem = Path(rel).with_suffix("")
    return all((out / f"{stem}.{suffix}").is_file() for suffix in SUFFIXES)


def test_killed_job_resumes_to_identical_bytes(
    tiny_artifact: Path, images: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, XDEPTH_CACHE=str(tmp_path / "ov-cache"))
    common = ["--artifact", str(tiny_artifact), "--outputs", OUTPUTS, "--quiet"]
    reference = tmp_path / "reference"
    assert main(["run", str(images), "-o", str(reference), *common]) == 0

    rels = sorted(p.relative_to(images).as_posix() for p in images.rglob("*.jpg"))
    out = tmp_path / "out"
    # Paths go in on stdin and the pipe stays open, so the job cannot finish on its own:
    # it is killed while it has work left, whatever the machine's speed.
    job = subprocess.Popen(
        [sys.executable, "-m", "xdepth.cli.main", "run", "-", "-o", str(out), *common],
        cwd=images,
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    job.stdin.write("".join(f"{rel}\n" for rel in rels[:FED_BEFORE_KILL]))
    job.stdin.flush()
    deadline = time.monotonic() + 120
    while sum(_done(out, rel) for rel in rels) < 3:
        assert job.poll() is None, f"the job ended early: {job.stderr.read()}"
        assert time.monotonic() < deadline, "no outputs appeared in 120 s"
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    job.stdin.close()
    job.stderr.close()
    finished_before = {rel for rel in rels if _done(out, rel)}
    assert 3 <= len(finished_before) <= FED_BEFORE_KILL < IMAGES
    stale = out / f"{TEMP_PREFIX}img00.cutout.png.0123456789ab"
    stale.write_bytes(b"half a file")  # what a kill during a write leaves

    assert main(["run", str(images), "-o", str(out), *common]) == 0
    report = json.loads((out / "run.json").read_text())
    assert report["skipped"] >= len(finished_before)
    assert report["ok"] + report["skipped"] == IMAGES and report["failed"] == 0
    assert report["resumed"] and report["removed_temp_files"] >= 1
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))
    expected = _outputs(reference)
    assert len(expected) == IMAGES * len(SUFFIXES)
    assert _outputs(out) == expected


def test_other_settings_are_refused_unless_overwrite(
    tiny_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(make_scene(1, 48, 64).rgb).save(folder / "a.png")
    out = tmp_path / "out"
    base = ["run", str(folder), "-o", str(out), "--artifact", str(tiny_artifact), "--quiet"]
    assert main(base) == 0
    first = json.loads((out / JOB_FILE).read_text())["settings_sha256"]
    assert main(base) == 0  # same settings: resumed, nothing to do
    assert json.loads((out / "run.json").read_text())["skipped"] == 1
    capsys.readouterr()

    assert main([*base, "--threshold", "otsu"]) == 2
    err = capsys.readouterr().err
    assert "refusing to mix them" in err and "post.threshold: 'abs:45' -> 'otsu'" in err
    assert json.loads((out / JOB_FILE).read_text())["settings_sha256"] == first

    before = (out / "a.mask.png").read_bytes()
    assert main([*base, "--threshold", "otsu", "--overwrite"]) == 0
    assert json.loads((out / JOB_FILE).read_text())["settings_sha256"] != first
    report = json.loads((out / "run.json").read_text())
    assert (report["ok"], report["skipped"]) == (1, 0)
    assert (out / "a.mask.png").read_bytes() != before


def test_two_jobs_cannot_share_an_output_folder(
    tiny_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(make_scene(2, 48, 64).rgb).save(folder / "a.png")
    out = tmp_path / "out"
    with OutputFolder(out, {"model": {}, "post": {}}):
        args = ["run", str(folder), "-o", str(out), "--artifact", str(tiny_artifact)]
        assert main(args) == 2
    assert f"another xdepth job (pid {os.getpid()})" in capsys.readouterr().err
