"""The summary a job prints at its end (`RunSummary.describe`), and the names of its files.

The first line says what the job was made of and how fast it went: "2 images, 1 video
(48 frames): ...". A video is one input among the ok / failed / skipped counts, but its
frames are the work: the rates count frames (a photo is one), in frames/s once a job
holds a video, so a job of two long videos does not read as "2 images in 40 s".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["ERRORS_FILE", "RUN_FILE", "describe", "inventory"]
ERRORS_FILE = "errors.jsonl"
RUN_FILE = "run.json"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def inventory(summary: Any) -> str:
    """ "3 images, 2 videos (48 frames)": the inputs counted, and the frames written."""
    images = summary.ok + summary.failed + summary.skipped - summary.video_inputs
    if not summary.video_inputs:
        return _count(images, "image")
    videos = f"{_count(summary.video_inputs, 'video')} ({_count(summary.frames, 'frame')})"
    return f"{_count(images, 'image')}, {videos}" if images else videos


def describe(summary: Any) -> str:
    """The lines `xdepth run` prints for a `RunSummary`."""
    s = summary
    unit = "frames" if s.video_inputs else "images"
    lines = [
        f"{inventory(s)}: {s.ok} ok, {s.failed} failed, {s.skipped} skipped (already done) in "
        f"{s.seconds:.2f} s: {s.images_per_s:.2f} {unit}/s end to end, "
        f"{s.model_images_per_s:.2f} {unit}/s model only"
    ]
    waits = [
        f"{name} {stage['waited_on_next_stage_s']:.2f} s"
        for name, stage in s.stages.items()
        if name in ("feed", "read", "infer")
    ]
    starved = [
        f"{name} {stage['waited_for_input_s']:.2f} s"
        for name, stage in s.stages.items()
        if name in ("read", "infer", "post")
    ]
    if s.videos:
        partial = sum(1 for v in s.videos if v["partial"])
        cuts = sum(len(v["cuts"]) for v in s.videos)
        lines.append(
            f"{_count(len(s.videos), 'video')} decoded: {_count(s.frames, 'frame')} written, "
            f"{partial} partial, {_count(cuts, 'scene cut')}"
        )
    lines.append(f"waited on the next stage: {', '.join(waits)}")
    lines.append(f"waited for input: {', '.join(starved)}")
    if s.ray:
        pool = s.ray
        lines.append(
            f"Ray: {_count(pool['actors'], 'actor')} x {pool['cpus_per_actor']} CPUs, start-up "
            f"{pool.get('startup_s')} s, then {pool.get('steady_images_per_s')} {unit}/s"
        )
    if s.precision.get("fallback"):
        p = s.precision
        lines.append(
            f"precision: {p['requested']} asked for, this CPU computed "
            f"{p['effective']} (float layers {p['float_layers']})"
        )
    if s.failed:
        lines.append(f"failures are listed in {Path(s.out) / ERRORS_FILE}")
    finished = f"{s.ok + s.skipped} finished {'inputs' if s.video_inputs else 'images'}"
    if s.stopped:
        lines.append(f"stopped after {finished}: {s.stopped['reason']}")
    if s.interrupted:
        lines.append(
            f"interrupted ({s.signal or 'SIGINT'}) after {finished}: run the same command "
            "again to finish the job"
        )
    return "\n".join(lines)
