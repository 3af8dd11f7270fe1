"""Faults of the job, not of an image: a full disk, SIGTERM, inputs that change under the
job, earlier outputs among the inputs. Each fault is injected without root: a write layer
that refuses bytes past a budget, a signal to a subprocess, files changed after listing."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from xdepth.api import open_backend
from xdepth.cli.main import main
from xdepth.eval.scenes import make_scene
from xdepth.job.inputs import InputItem, collect_inputs, open_inputs
from xdepth.job.local import JobLog, RunSummary, run
from xdepth.job.output_folder import JOB_FILE, LOCK_FILE, OutputFolder, settings_record
from xdepth.job.ray_actor import DepthActor
from xdepth.job.ray_job import _collect
from xdepth.job.signals import Interrupted, stop_on_signals
from xdepth.job.storage import BYTES_PER_PIXEL, NEXT_IMAGES, estimate_output_bytes, parse_size
from xdepth.outputs.settings import PostSettings
from xdepth.post import TEMP_PREFIX

IMAGES = 10
SUFFIXES = PostSettings().file_suffixes
BOOKKEEPING = {JOB_FILE, LOCK_FILE, "run.json", "errors.jsonl"}


class FullDisk:
    """The write layer of `write_atomic` under `root`: after `budget` bytes, writes fail with
    `code` (a temp file is left half-written, as a full disk leaves it). Files named in
    `spare` (the job's own bookkeeping) still fit."""

    def __init__(self, root: Path, budget: int, code: int = errno.ENOSPC, spare=("run.json",)):
        self.root, self.budget, self.code, self.spare = str(root.resolve()), budget, code, spare
        self.lock = threading.Lock()
        self.refused = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_fdopen = os.fdopen

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            handle = real_fdopen(fd, *args, **kwargs)
            name = os.readlink(f"/proc/self/fd/{fd}")
            mine = name.startswith(self.root) and TEMP_PREFIX in name
            if mine and not any(f"{TEMP_PREFIX}{s}" in name for s in (JOB_FILE, *self.spare)):
                return _Limited(handle, self)
            return handle

        monkeypatch.setattr(os, "fdopen", fdopen)


class _Limited:
    def __init__(self, handle: Any, disk: FullDisk) -> None:
        self.handle, self.disk = handle, disk

    def __enter__(self) -> _Limited:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def write(self, data: bytes) -> int:
        with self.disk.lock:
            room = max(0, self.disk.budget)
            self.disk.budget -= len(data)
            if len(data) > room:
                self.disk.refused += 1
                self.handle.write(data[:room])
                raise OSError(self.disk.code, os.strerror(self.disk.code))
        return self.handle.write(data)


@pytest.fixture(scope="module")
def job(tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A folder of images and the outputs of an uninterrupted run over it."""
    root = tmp_path_factory.mktemp("faults")
    images = root / "images"
    images.mkdir()
    for i in range(IMAGES):
        Image.fromarray(make_scene(200 + i, 72, 96).rgb).save(images / f"img{i:02d}.jpg")
    args = ["--artifact", str(tiny_artifact), "--quiet"]
    assert main(["run", str(images), "-o", str(root / "reference"), *args]) == 0
    return {"images": images, "args": args, "reference": _outputs(root / "reference")}


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and p.name not in BOOKKEEPING
    }


def _image_sizes(outputs: dict[str, bytes]) -> list[int]:
    """Bytes of each image's outputs, in input order."""
    return [
        sum(len(data) for name, data in outputs.items() if name.startswith(f"img{i:02d}."))
        for i in range(IMAGES)
    ]


def _assert_clean_stop(out: Path) -> dict[str, Any]:
    """Nothing partial: no temp files, and every image complete or absent."""
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))
    stems = {name.split(".")[0] for name in _outputs(out)}
    for stem in stems:
        assert all((out / f"{stem}.{suffix}").is_file() for suffix in SUFFIXES), stem
    return json.loads((out / "run.json").read_text())


def test_full_disk_stops_the_job_and_a_rerun_finishes_it(
    job: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    out = tmp_path / "out"
    sizes = _image_sizes(job["reference"])
    disk = FullDisk(out, budget=sizes[0] + sizes[1] + sizes[2] // 2)  # 2.5 images
    disk.install(monkeypatch)
    command = ["run", str(job["images"]), "-o", str(out), *job["args"]]
    assert main([*command, "--readers", "1", "--post-workers", "1"]) == 74
    err = capsys.readouterr().err
    assert "No space left on device (ENOSPC)" in err and str(out) in err
    report = _assert_clean_stop(out)
    assert report["stopped"]["code"] == "ENOSPC" and report["exit_code"] == 74
    assert report["ok"] == 2 and report["failed"] == 0  # stopped at the image that did not fit
    assert disk.refused == 1  # no image after it was tried
    assert (out / "errors.jsonl").read_text() == ""

    monkeypatch.undo()  # space freed
    assert main(command) == 0
    report = json.loads((out / "run.json").read_text())
    assert (report["ok"], report["skipped"], report["stopped"]) == (IMAGES - 2, 2, None)
    assert _outputs(out) == job["reference"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO])
def test_every_storage_fault_stops_even_when_run_json_cannot_be_written(
    job: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, code: int
) -> None:
    out = tmp_path / "out"
    FullDisk(out, budget=0, code=code, spare=()).install(monkeypatch)
    assert main(["run", str(job["images"]), "-o", str(out), *job["args"]]) == 74
    err = capsys.readouterr().err
    assert f"({errno.errorcode[code]})" in err
    assert f"cannot write {out / 'run.json'}" in err and "0 images were finished" in err
    assert not (out / "run.json").exists() and not list(out.rglob(f"{TEMP_PREFIX}*"))
    assert (out / "errors.jsonl").read_text() == ""


def test_sigterm_stops_like_ctrl_c_and_a_rerun_finishes_it(
    job: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    rels = sorted(p.name for p in job["images"].iterdir())
    env = dict(os.environ, XDEPTH_CACHE=str(tmp_path / "ov-cache"))
    # Paths go in on stdin and the pipe stays open: the job is mid-way when signalled.
    proc = subprocess.Popen(
        [sys.executable, "-m", "xdepth.cli.main", "run", "-", "-o", str(out), *job["args"]],
        cwd=job["images"],
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdin.write("".join(f"{rel}\n" for rel in rels[:6]))
    proc.stdin.flush()
    deadline = time.monotonic() + 120
    while len(list(out.glob(f"*.{SUFFIXES[-1]}"))) < 2:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no outputs appeared in 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert "interrupted (SIGTERM)" in proc.stderr.read()
    proc.stdin.close()
    proc.stderr.close()
    report = _assert_clean_stop(out)
    assert report["interrupted"] and report["signal"] == "SIGTERM" and report["exit_code"] == 143
    assert (out / "errors.jsonl").read_text() == ""

    assert main(["run", str(job["images"]), "-o", str(out), *job["args"]]) == 0
    assert _outputs(out) == job["reference"]


def test_a_second_signal_exits_at_once() -> None:
    with stop_on_signals(), pytest.raises(Interrupted) as caught:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # never reached: the handler raises first
    assert caught.value.exit_code == 143 and caught.value.name == "SIGTERM"
    script = (
        "import os, signal\n"
        "from xdepth.job.signals import Interrupted, stop_on_signals\n"
        "with stop_on_signals():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    except Interrupted:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)  # while cleaning up\n"
        "        print('cleanup went on')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 143 and "cleanup went on" not in done.stdout
    assert "SIGTERM again: exiting now" in done.stderr


def test_inputs_that_change_after_listing_fail_alone(
    job: dict[str, Any], tiny_artifact: Path, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    shutil.copytree(job["images"], images / "a")
    shutil.copytree(job["images"], images / "b")
    source = open_inputs([str(images)])
    (images / "a/img01.jpg").unlink()  # removed
    whole = (images / "a/img02.jpg").read_bytes()
    (images / "a/img02.jpg").write_bytes(whole[: len(whole) // 3])  # truncated
    (images / "a/img03.jpg").unlink()
    (images / "a/img03.jpg").mkdir()  # replaced by a folder
    (images / "a/img04.jpg").write_text("replaced by notes")  # replaced by a non-image
    os.unlink(images / "a/img05.jpg")
    os.mkfifo(images / "a/img05.jpg")  # replaced by a FIFO: refused, never waited on
    shutil.rmtree(images / "b")  # a whole folder gone
    summary = run(open_backend(str(tiny_artifact)), source, tmp_path / "out", quiet=True)
    assert (summary.ok, summary.failed, summary.stopped) == (IMAGES - 5, 5 + IMAGES, None)
    lines = (tmp_path / "out/errors.jsonl").read_text().splitlines()
    reasons = {
        Path(e["path"]).relative_to(images).as_posix(): e["reason"].lower()
        for e in map(json.loads, lines)
    }
    assert "no such file" in reasons["a/img01.jpg"] and "truncated" in reasons["a/img02.jpg"]
    assert "a folder" in reasons["a/img03.jpg"] and "not an image" in reasons["a/img04.jpg"]
    assert "not a regular file" in reasons["a/img05.jpg"]
    assert all("no such file" in reasons[f"b/img{i:02d}.jpg"] for i in range(IMAGES))
    assert all(reason.startswith(str(images).lower()) for reason in reasons.values())


def test_earlier_output_folders_are_not_inputs(
    job: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(job["images"], photos)
    assert main(["run", str(photos), "-o", str(photos / "out"), *job["args"]]) == 0
    capsys.readouterr()
    assert main(["run", str(photos), "-o", str(photos / "out2"), *job["args"]]) == 0
    err = capsys.readouterr().err
    assert err.count(f"skipping {photos / 'out'}: it holds the outputs of an earlier") == 1
    assert json.loads((photos / "out2/run.json").read_text())["ok"] == IMAGES
    assert not (photos / "out2/out").exists()
    # A glob passes it by too; named explicitly, it is an input like any folder.
    Image.new("RGB", (8, 8)).save(photos / "new.png")
    assert collect_inputs([f"{photos}/**/*.png"]) == [
        InputItem(photos / "new.png", Path("new.png"))
    ]
    assert len(collect_inputs([str(photos / "out")])) == IMAGES * len(SUFFIXES)


def test_out_is_checked_before_the_model_loads(
    job: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    no_model = ["--artifact", str(tmp_path / "no-such-artifact")]  # never reached
    assert main(["run", str(job["images"]), "-o", str(blocker / "out"), *no_model]) == 2
    assert f"output folder {blocker / 'out'}: cannot create it" in capsys.readouterr().err

    out = tmp_path / "out"
    assert main(["run", str(job["images"]), "-o", str(out), *no_model, "--min-free", "9000T"]) == 2
    err = capsys.readouterr().err
    assert f"output folder {out}: " in err and "free on its filesystem" in err and "9000" in err

    class Statvfs:  # 20 KiB free: less than 2 images need
        f_bavail, f_frsize = 5, 4096

    monkeypatch.setattr(os, "statvfs", lambda path: Statvfs)
    assert main(["run", str(job["images"]), "-o", str(out), *no_model]) == 2
    assert "20.0 KiB free on its filesystem, less than the" in capsys.readouterr().err
    assert main(["run", str(job["images"]), "-o", str(out), *no_model, "--min-free", "0"]) == 2
    assert "no-such-artifact" in capsys.readouterr().err  # past the check, at the model


def test_the_margin_grows_with_the_inputs_and_outputs(tmp_path: Path) -> None:
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    Image.new("RGB", (100, 100)).save(small)
    Image.new("RGB", (1000, 1000)).save(large)
    depth_only = PostSettings(outputs=("depth16",))
    base = estimate_output_bytes([], depth_only)
    one_mp = estimate_output_bytes(
        [InputItem(small, Path("s")), InputItem(large, Path("l"))], depth_only
    )
    per_image = BYTES_PER_PIXEL["depth16"] * 1_000_000
    assert one_mp - base == int(NEXT_IMAGES * per_image)  # the largest input counts
    more = estimate_output_bytes([InputItem(large, Path("l"))], PostSettings(outputs=("npy",)))
    assert more - base == NEXT_IMAGES * 4 * 1_000_000  # float32 per pixel
    assert [parse_size(t) for t in ("auto", "0", "512k", "2G", "1.5M")] == [
        None,
        0,
        512 * 1024,
        2 * 1024**3,
        1536 * 1024,
    ]
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_a_ray_actor_reports_a_full_disk_and_the_driver_stops(
    job: dict[str, Any], tiny_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actor and the driver's collector, in this process: Ray itself is not needed."""
    out, settings = tmp_path / "out", PostSettings()
    identity = open_backend(str(tiny_artifact)).identity()
    folder = OutputFolder(out, settings_record(identity, settings)).open()
    actor_options = {"readers": 1, "post_workers": 1}
    actor = DepthActor(str(tiny_artifact), str(out), os.getcwd(), settings, 1, {}, actor_options)
    sizes = _image_sizes(job["reference"])
    FullDisk(out, budget=sizes[0] + sizes[1] // 2).install(monkeypatch)
    paths = sorted(job["images"].iterdir())
    rows = actor({"inputs": [json.dumps([[str(p), p.name] for p in paths])]})  # one call
    assert list(rows["status"]).count("ok") == 1 and "failed" not in list(rows["status"])
    assert set(rows["stage"][rows["status"] == "stopped"]) == {"ENOSPC"}
    summary = RunSummary(out=str(out))
    with JobLog(summary, IMAGES, quiet=True) as log:
        _collect([rows], summary, log, {"actors": 1}, time.time())
    folder.close()
    assert summary.stopped["code"] == "ENOSPC" and summary.exit_code == 74
    assert (summary.ok, summary.failed) == (1, 0)
    assert json.loads((out / "run.json").read_text())["stopped"]["code"] == "ENOSPC"
