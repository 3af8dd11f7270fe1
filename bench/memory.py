"""The engine's memory, measured in a process of its own, as a user sizes machines by it.

The bench process also holds the fp32 torch reference, the images and every earlier
contender, so its resident set says nothing about what `xdepth run` needs. Here a child
process does what `xdepth run --artifact A` does (open the artifact, compile, run the
images through `DepthEngine.run`, writing their files) and reports its resident memory
after each stage, read from /proc/self/status:

- ``imported``: Python, numpy, OpenVINO and xdepth loaded, no model;
- ``compiled``: the compiled model: its weights in the precision they run in (the IR
  stores float weights as f16 and int8 weights as int8; the CPU plugin unpacks them to
  f32 or bf16 and repacks them for its kernels), plus each stream's buffers;
- ``steady``: after the run: activations, requests in flight, decode and encode queues;
- ``peak``: VmHWM, the process's high-water mark (what ``/usr/bin/time -v`` prints as
  "Maximum resident set size" for `xdepth run`). Not the parent's wait4 ru_maxrss: Linux
  counts the forked copy of the parent before exec in it, here the whole bench process.

Cold is an empty OpenVINO compile cache (the first run on a node: the IR is read and
transformed), warm a filled one (every later run: the compiled blob is loaded).

    python -m xdepth.bench.memory ARTIFACT IMAGE... [--threads N] [--streams S]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MB = 2**20
RESULT_PREFIX = "xdepth-memory: "


def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def artifact_bytes(artifact: Path) -> int:
    """Bytes of the artifact's files as stored (model, weights, manifest)."""
    return sum(p.stat().st_size for p in Path(artifact).rglob("*") if p.is_file())


def _child(args: argparse.Namespace) -> dict[str, Any]:
    """Runs in the measured process: stages as `xdepth run` goes through them."""
    stages: dict[str, float] = {}

    def mark(stage: str) -> None:
        stages[stage] = round(status_kb("VmRSS") / 1024, 1)

    import openvino  # noqa: F401  (what `xdepth run` has loaded before its model)

    from xdepth import DepthEngine

    mark("imported")
    options: dict[str, Any] = {"cache_dir": args.cache_dir, "threads": args.threads}
    if args.streams not in (None, "auto"):
        options["streams"] = int(args.streams)
    engine = DepthEngine(args.artifact, **options)
    mark("compiled")
    started = time.perf_counter()
    summary = engine.run(args.images, args.out)
    seconds = time.perf_counter() - started
    mark("steady")
    stages["peak"] = round(status_kb("VmHWM") / 1024, 1)
    return {"stages_mb": stages, "run_s": round(seconds, 3), "ok": getattr(summary, "ok", None)}


def measure_engine(
    artifact: Path,
    images: Sequence[Path],
    threads: int | None = None,
    streams: int | str | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """One `xdepth run`-equivalent process on `images`; its stages and its peak."""
    with tempfile.TemporaryDirectory(prefix="xdepth-memory-") as tmp:
        cache = cache_dir or Path(tmp) / "cache"
        command = [sys.executable, "-m", "xdepth.bench.memory", str(artifact)]
        command += ["--out", str(Path(tmp) / "out"), "--cache-dir", str(cache)]
        if threads:
            command += ["--threads", str(threads)]
        if streams is not None:
            command += ["--streams", str(streams)]
        done = subprocess.run([*command, *map(str, images)], capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        output = (done.stdout + done.stderr)[-600:]
        raise RuntimeError(f"memory measurement failed (exit {done.returncode}): {output}")
    found = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return found


def engine_memory(
    artifact: Path, images: Sequence[Path], threads: int | None, streams: int | str | None
) -> dict[str, Any]:
    """Cold and warm compile cache, the artifact's bytes, and the peak to size by."""
    cache = Path(tempfile.mkdtemp(prefix="xdepth-memory-cache-"))
    try:
        cold = measure_engine(artifact, images, threads, streams, cache)
        warm = measure_engine(artifact, images, threads, streams, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    stored = artifact_bytes(artifact) / MB
    peak = max(cold["stages_mb"]["peak"], warm["stages_mb"]["peak"])
    return {
        "peak_rss_mb": peak,
        "steady_rss_mb": warm["stages_mb"]["steady"],
        "artifact_mb": round(stored, 1),
        "peak_over_artifact": round(peak / stored, 2) if stored else None,
        "target_mb": round(2 * stored + 1024, 1),
        "cold_cache": cold,
        "warm_cache": warm,
        "images": len(images),
        "what": "xdepth run's work (DepthEngine.run) in a process of its own; peak: its VmHWM, "
        "the larger of an empty and a filled compile cache; steady: VmRSS after the run "
        "with a filled cache",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xdepth.bench.memory", description=__doc__)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--streams")
    parser.add_argument("--out", type=Path, help="output folder (measured child only)")
    parser.add_argument("--cache-dir", type=Path, help="OpenVINO compile cache (child only)")
    args = parser.parse_args(argv)
    if args.out is not None:  # the measured child
        print(RESULT_PREFIX + json.dumps(_child(args)), flush=True)
        return 0
    found = engine_memory(args.artifact, args.images, args.threads, args.streams)
    print(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
