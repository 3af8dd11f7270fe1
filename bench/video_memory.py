"""Resident memory of a video job over a long clip, measured in a process of its own.

    python -m xdepth.bench.video_memory ARTIFACT CLIP [--outputs depth16,composite]

The child does `xdepth run`'s work (`DepthEngine.run`, writing the video outputs) and
samples its own VmRSS every 0.2 s with the frames written so far, counted where the job
counts them (`JobLog.frame`, wrapped in the child only). The parent reads the series:
resident memory near frame 1,000 and at the end, the least-squares slope from frame 1,000
on (MB per 1,000 frames: 0 when memory does not depend on a video's length), the peak
(VmHWM, as `/usr/bin/time -v` reports it) and the series thinned to about 50 points.

What growth remains is glibc's: freed memory its arenas keep rather than return. The same
run with MALLOC_TRIM_THRESHOLD_=131072 (memory returned to the kernel past 128 KiB free)
tells it from a leak, which would grow with the frames either way.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from xdepth.bench.memory import RESULT_PREFIX, status_kb

SAMPLE_S = 0.2
TRIM_CHECK = {"MALLOC_TRIM_THRESHOLD_": "131072"}
EARLY_FRAME = 1_000


def _child(args: argparse.Namespace) -> dict[str, Any]:
    """Runs in the measured process."""
    from xdepth import DepthEngine
    from xdepth.job.local import JobLog

    written = [0]
    count_frame = JobLog.frame

    def frame(log: JobLog) -> None:
        count_frame(log)
        written[0] += 1

    JobLog.frame = frame  # type: ignore[method-assign]
    engine = DepthEngine(args.artifact, outputs=tuple(args.outputs.split(",")))
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), written[0], status_kb("VmRSS")))
            stop.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    summary = engine.run([args.clip], args.out, overwrite=True)
    stop.set()
    sampler.join()
    return {
        "frames": summary.frames,
        "failed": summary.failed,
        "seconds": round(summary.seconds, 2),
        "peak_kb": status_kb("VmHWM"),
        "samples": samples,
    }


def summarise(found: dict[str, Any]) -> dict[str, Any]:
    """RSS near frame 1,000 and at the end, the slope after it, the peak, a thinned series."""
    frames = np.array([s[1] for s in found["samples"]], dtype=np.float64)
    rss_mb = np.array([s[2] for s in found["samples"]], dtype=np.float64) / 1024
    total = found["frames"]
    early = min(EARLY_FRAME, total // 10)
    nearest = frames[np.argmin(np.abs(frames - early))]  # the samples taken at that count
    late = frames >= min(total * 0.95, frames.max())
    steady = frames >= nearest
    if len(np.unique(frames[steady])) < 2:
        raise RuntimeError(f"too few memory samples ({len(frames)}) for {total} frames")
    slope = float(np.polyfit(frames[steady], rss_mb[steady], 1)[0]) * 1000
    at_early = float(np.median(rss_mb[frames == nearest]))
    at_end = float(np.median(rss_mb[late]))
    step = max(1, total // 50)
    series, next_frame = [], 0
    for f, r in zip(frames, rss_mb, strict=True):
        if f >= next_frame:
            series.append([int(f), round(float(r), 1)])
            next_frame = f + step
    return {
        "frames": total,
        "frames_per_s": round(total / found["seconds"], 2),
        "early_frame": int(nearest),
        "rss_mb_at_early_frame": round(at_early, 1),
        "rss_mb_at_end": round(at_end, 1),
        "growth_early_to_end_mb": round(at_end - at_early, 1),
        "growth_early_to_end": round((at_end - at_early) / at_early, 4),
        "slope_mb_per_1k_frames": round(slope, 3),
        "rss_mb_max_after_early_frame": round(float(rss_mb[steady].max()), 1),
        "peak_mb": round(found["peak_kb"] / 1024, 1),
        "samples": len(frames),
        "sample_every_s": SAMPLE_S,
        "series_frame_rss_mb": series,
    }


def memory_run(
    artifact: Path,
    clip: Path,
    out: Path,
    outputs: str = "depth16,composite",
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One child process over `clip` (`env` added to its environment); its memory series."""
    command = [sys.executable, "-m", "xdepth.bench.video_memory", str(artifact), str(clip)]
    command += ["--out", str(out), "--outputs", outputs]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | (env or {}))
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        output = (done.stdout + done.stderr)[-800:]
        raise RuntimeError(f"video memory run failed (exit {done.returncode}): {output}")
    found = json.loads(lines[-1][len(RESULT_PREFIX) :])
    if found["failed"]:
        raise RuntimeError(f"the memory run failed; see {out / 'errors.jsonl'}")
    return summarise(found) | {"what": "VmRSS of a process doing `xdepth run`'s work"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xdepth.bench.video_memory", description=__doc__
    )
    parser.add_argument("artifact", type=Path)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--outputs", default="depth16,composite")
    parser.add_argument("--out", type=Path, help="output folder (the measured child only)")
    args = parser.parse_args(argv)
    if args.out is not None:  # the measured child
        print(RESULT_PREFIX + json.dumps(_child(args)), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="xdepth-video-memory-") as tmp:
        found = memory_run(args.artifact, args.clip, Path(tmp) / "out", args.outputs)
    print(json.dumps({k: v for k, v in found.items() if k != "series_frame_rss_mb"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
