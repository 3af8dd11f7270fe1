"""`xdepth run --ray`: the local runner's bytes, errors.jsonl, resume and exit codes on Ray.

One local Ray instance (2 CPUs, bound to 127.0.0.1, no dashboard) serves the module; the
jobs run pools of 1 CPU per actor on the shipped xdepth-tiny, exported to OpenVINO f32.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import modules_loaded_by

ray = pytest.importorskip("ray")

from test_run import mixed_folder  # noqa: E402  (good JPEGs among three bad files)

from xdepth.cli.main import main  # noqa: E402
from xdepth.export.exporter import export  # noqa: E402
from xdepth.job.output_folder import JOB_FILE, LOCK_FILE  # noqa: E402
from xdepth.job.ray_actor import NUMA_NODES  # noqa: E402
from xdepth.job.ray_job import run_ray  # noqa: E402

__all__ = ["mixed_folder"]
BOOKKEEPING = {JOB_FILE, LOCK_FILE, "run.json", "errors.jsonl"}
BAD = {"zero.jpg", "notes.png", "cut.jpg"}
POOL = ["--ray-actors", "2", "--ray-cpus-per-actor", "1", "--ray-batch-size", "1"]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A small local Ray for the whole module (starting one takes seconds)."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 2**20,
        _node_ip_address="127.0.0.1",
        logging_level="warning",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def shipped_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped xdepth-tiny exported to OpenVINO f32, once per test session."""
    target = tmp_path_factory.getbasetemp() / "xdepth-tiny-openvino-f32"
    if not (target / "manifest.json").is_file():
        export("xdepth-tiny", target, precision="f32", fidelity_images=1)
    return target


@pytest.fixture
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OpenVINO's compile cache, given by option: actors do not see the tests' env changes."""
    return tmp_path_factory.getbasetemp() / "ov-cache"


@pytest.fixture
def model_args(shipped_artifact: Path, cache_dir: Path) -> list[str]:
    return ["--artifact", str(shipped_artifact), "--cache-dir", str(cache_dir), "--quiet"]


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in BOOKKEEPING
    }


def _errors(out: Path) -> list[dict[str, str]]:
    lines = (out / "errors.jsonl").read_text().splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda e: e["path"])


def test_ray_job_writes_the_local_runners_bytes_and_errors(
    local_ray: Any, mixed_folder: Path, model_args: list[str], tmp_path: Path
) -> None:
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main(["run", str(mixed_folder), "-o", str(local), *model_args]) == 1
    assert main(["run", str(mixed_folder), "-o", str(on_ray), *model_args, "--ray", *POOL]) == 1
    expected = _outputs(local)
    assert sorted(expected) == sorted(
        f"{stem}.{suffix}"
        for stem in ("a", "sub/b")
        for suffix in ("depth16.png", "depth-color.png", "mask.png", "cutout.png")
    )
    assert _outputs(on_ray) == expected
    errors = _errors(on_ray)
    assert errors == _errors(local)
    assert {Path(e["path"]).name for e in errors} == BAD
    assert all(e["stage"] == "read" and e["path"] in e["reason"] for e in errors)
    jobs = [json.loads((out / JOB_FILE).read_text()) for out in (local, on_ray)]
    assert jobs[0]["settings"] == jobs[1]["settings"]  # one settings hash: runs resume each other
    report = json.loads((on_ray / "run.json").read_text())
    assert (report["ok"], report["failed"], report["skipped"]) == (2, 3, 0)
    pool = {key: report["ray"][key] for key in ("actors", "cpus_per_actor", "batch_size")}
    assert pool == {"actors": 2, "cpus_per_actor": 1, "batch_size": 1}
    assert not [p for p in on_ray.rglob("*") if p.name.startswith(".xdepth-tmp")]


def test_ray_rerun_skips_what_is_done_and_redoes_what_is_missing(
    local_ray: Any,
    mixed_folder: Path,
    shipped_artifact: Path,
    cache_dir: Path,
    model_args: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    assert main(["run", str(mixed_folder), "-o", str(out), *model_args]) == 1  # a local job
    done = _outputs(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    options: dict[str, Any] = {"actors": 2, "cpus_per_actor": 1, "cache_dir": cache_dir}
    summary = run_ray(shipped_artifact, [mixed_folder], out, quiet=True, **options)
    assert (summary.ok, summary.skipped, summary.failed, summary.exit_code) == (0, 2, 3, 1)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps  # nothing rewritten
    assert {Path(e["path"]).name for e in _errors(out)} == BAD  # bad files are tried again
    (out / "sub" / "b.mask.png").unlink()  # one output lost: that image is redone, whole
    summary = run_ray(shipped_artifact, [mixed_folder], out, quiet=True, **options)
    assert (summary.ok, summary.skipped, summary.failed) == (1, 1, 3)
    assert _outputs(out) == done
    assert json.loads((out / "run.json").read_text())["resumed"] is True


def test_usage_errors_exit_2_before_any_image(
    mixed_folder: Path, model_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    ray_run = ["run", str(mixed_folder), "-o", str(out), "--ray"]
    assert main([*ray_run, "--variant", "tiny-dpt-beit", "--quiet"]) == 2
    assert main([*ray_run, "--quiet"]) == 2  # no artifact
    assert main([*ray_run, *model_args, "--threads", "2"]) == 2
    assert main([*ray_run, *model_args, "--ray-actors", "0"]) == 2
    bad_address = ["run", "--ray", str(mixed_folder), "-o", str(out), *model_args]
    assert main([*bad_address, str(mixed_folder / "a.jpg")]) == 2
    err = capsys.readouterr().err
    assert "give --artifact DIR" in err and "--threads do not apply with --ray" in err
    assert "actors must be a positive integer" in err and "not a Ray address" in err
    assert not out.exists()


def test_numa_claims_confine_the_process_one_actor_per_node(tmp_path: Path) -> None:
    """Two fake NUMA nodes: two claims take one each, with their CPUs; a third is refused."""
    allowed = sorted(os.sched_getaffinity(0))
    nodes, locks = tmp_path / "nodes", tmp_path / "locks"
    for name, cpus in (("node0", allowed[:1]), ("node1", allowed)):
        (nodes / name).mkdir(parents=True)
        (nodes / name / "cpulist").write_text(",".join(map(str, cpus)) + "\n")
    locks.mkdir()
    code = f"""
import os, threading
from pathlib import Path
from xdepth.errors import XDepthError
from xdepth.job.ray_actor import claim_numa_node
nodes, locks = Path({str(nodes)!r}), Path({str(locks)!r})
threading.Thread(target=threading.Event().wait, daemon=True).start()  # moved too
everywhere = os.sched_getaffinity(0)
for _ in range(3):  # three actors' claims; each keeps its lock's descriptor open
    try:
        name, fd = claim_numa_node(nodes, locks)
        threads = [int(t) for t in os.listdir("/proc/self/task")]
        masks = {{frozenset(os.sched_getaffinity(t)) for t in threads}}
        print(name, sorted(set().union(*masks)), len(masks))
        for t in threads:  # the next claim comes as from a fresh process
            os.sched_setaffinity(t, everywhere)
    except XDepthError as exc:
        print("refused:", exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second, third = done.stdout.splitlines()
    assert first == f"node0 {allowed[:1]} 1"
    assert second == f"node1 {allowed} 1"
    assert third.startswith("refused:") and "at most one actor per NUMA node" in third


def test_cpu_pinning_reaches_openvino(shipped_artifact: Path, cache_dir: Path) -> None:
    """Actors sharing CPUs turn OpenVINO's pinning off (it would stack them on CPU 0)."""
    from xdepth.model.backends import open_artifact

    for pinning in (False, True):
        backend = open_artifact(shipped_artifact, cache_dir=cache_dir, cpu_pinning=pinning)
        assert backend.compiled.get_property("ENABLE_CPU_PINNING") is pinning


def test_an_actor_that_cannot_start_stops_the_job_with_exit_2(
    local_ray: Any,
    mixed_folder: Path,
    model_args: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """The actor's NUMA claim fails (this process holds every node): exit 2, its reason."""
    held = []
    for node in NUMA_NODES.glob("node[0-9]*"):
        fd = os.open(Path(tempfile.gettempdir()) / f"xdepth-numa-{node.name}.lock", os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)
    out = tmp_path / "out"
    args = ["run", str(mixed_folder), "-o", str(out), *model_args, "--ray", "--ray-numa"]
    try:
        assert main([*args, "--ray-actors", "1", "--ray-cpus-per-actor", "1"]) == 2
    finally:
        for fd in held:
            os.close(fd)
    assert "at most one actor per NUMA node" in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["ray"]["numa"] is True


def test_ray_is_imported_only_when_a_job_runs() -> None:
    parse = "import xdepth, xdepth.cli, xdepth.job.ray_job; xdepth.cli.build_parser()"
    assert modules_loaded_by(parse, ("ray",)) == []
