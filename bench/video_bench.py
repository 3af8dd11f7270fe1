"""Video through the engine: 1080p H.264 in, 16-bit depth FFV1 and clip MP4 out.

    python -m xdepth.bench.video_bench     # DA-small int8, DPT-SwinV2-T f32, xdepth-tiny int8
    python -m xdepth.bench.video_bench --variants xdepth-tiny:int8 --memory-frames 0

Throughput: a synthetic 1080p H.264 clip (a camera panning over a rendered scene, with
sensor noise; made at bench time, never stored) goes through `DepthEngine.run` with the
outputs `depth16` (FFV1 gray16 MKV) and `composite` (H.264 MP4), as `xdepth run` writes
them. Its frames/s end to end is set against the same artifact's model-only rate on the
clip's own frames, decoded and prepared beforehand, every request in flight (as the image
bench measures it), measured just before and just after each end-to-end run so that both
see the same machine load; figures are medians over --runs, the ratio the median of each
run's. Target: end to end at least 90 % of model only. Each variant also gets the host's
CPU cost per frame of every step outside the model (decode, RGB, resize, temporal
alignment, upsample, output pixels, each encode with its colour conversion), one step at
a time in process CPU time, which other jobs on a shared machine barely inflate. Heavy
variants (random init unless --weights: their speed is real) show what users see, though
their noise-like depth maps cost the encoders more than a trained model's; the tiny model
shows the host's ceiling, where decode and encode dominate.

Memory: `xdepth run`'s work on a long low-resolution clip (--memory-frames, 320x180), in
a process of its own (`xdepth.bench.video_memory`), resident memory sampled over time
against the frames written.

Results go to bench/results/<machine>/<date>-video.json (the command included).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from xdepth.bench.artifacts import bench_weights
from xdepth.bench.common import write_result
from xdepth.bench.engine_bench import add_artifact_options, artifact
from xdepth.bench.engine_measure import model_only_rate
from xdepth.bench.video_memory import TRIM_CHECK, memory_run
from xdepth.model.cards import get_card

OUTPUTS = ("depth16", "composite")
VARIANTS = "depth-anything-small:int8,dpt-swinv2-tiny-256:f32,xdepth-tiny:int8"
TARGET_E2E_VS_MODEL = 0.9
PROFILED_FRAMES = 8


def make_clip_file(
    path: Path, frames: int, height: int, width: int, fps: int = 25, seed: int = 0
) -> dict[str, Any]:
    """A camera panning back and forth over a rendered scene, with fresh sensor noise in
    every frame, encoded as H.264 (the engine's libx264 settings) one frame at a time."""
    from xdepth.eval.scenes import make_scene
    from xdepth.job.video_out import StreamWriter

    scene = make_scene(seed, height, 2 * width).rgb
    travel = scene.shape[1] - width
    step = max(1, width // 160)
    rng = np.random.default_rng(seed)
    writer = StreamWriter(path, "libx264", "yuv420p", (height, width), Fraction(fps))
    try:
        for index in range(frames):
            x0 = (index * step) % (2 * travel)
            x0 = x0 if x0 <= travel else 2 * travel - x0
            view = scene[:, x0 : x0 + width].astype(np.float32)
            view += rng.standard_normal(view.shape, dtype=np.float32) * 2.0
            writer.add(np.clip(np.rint(view), 0, 255).astype(np.uint8), index / fps)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    writer.publish()
    return {"frames": frames, "size": [width, height], "fps": fps, "codec": "h264",
            "bytes": path.stat().st_size}  # fmt: skip


def _outputs_digest(out: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in out.iterdir() if p.suffix in (".mkv", ".mp4")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def decoded_frames(clip: Path, count: int) -> list[np.ndarray]:
    """The clip's first `count` frames as upright uint8 RGB, as the readers get them."""
    from xdepth.job.video_io import VideoDecoder, frame_rgb

    frames = []
    with VideoDecoder(clip) as decoder:
        for frame in decoder.frames():
            frames.append(frame_rgb(frame))
            if len(frames) == count:
                break
    return frames


def _cpu_ms(step: Any, items: list[Any]) -> tuple[list[Any], float]:
    """`step` over `items`: its results and the process CPU milliseconds per item."""
    start = time.process_time()
    results = [step(item) for item in items]
    return results, round((time.process_time() - start) * 1e3 / len(items), 2)


def host_costs(engine: Any, clip: Path, work: Path) -> dict[str, float]:
    """CPU ms per frame of each host step of a video job, one step at a time (the model
    idle), on the clip's first frames: what the host takes from the model's cores."""
    from xdepth.job.video_io import VideoDecoder, frame_rgb
    from xdepth.job.video_out import StreamWriter
    from xdepth.outputs.result import DepthResult
    from xdepth.outputs.video_kinds import VIDEO_KINDS
    from xdepth.post.flow import frame_signature
    from xdepth.post.temporal import TemporalAligner

    costs: dict[str, float] = {}
    with VideoDecoder(clip) as decoder:
        start = time.process_time()
        frames = [f for f, _ in zip(decoder.frames(), range(PROFILED_FRAMES), strict=False)]
        costs["decode_h264"] = round((time.process_time() - start) * 1e3 / len(frames), 2)
        rgb, costs["to_rgb"] = _cpu_ms(frame_rgb, frames)
    inference, settings = engine.inference, engine.settings
    inputs, costs["resize_to_model"] = _cpu_ms(inference.prepare, rgb)
    raw = [inference.run(model_input) for model_input in inputs]
    if settings.temporal == "align":  # the default: a signature per frame, then alignment
        signatures, costs["temporal_signature"] = _cpu_ms(frame_signature, rgb)
        aligner = TemporalAligner()
        start = time.process_time()
        for index, (inv, signature) in enumerate(zip(raw, signatures, strict=True)):
            aligner.push(index, np.squeeze(inv), signature)
        aligner.finish()
        costs["temporal_align"] = round((time.process_time() - start) * 1e3 / len(raw), 2)
    hw = rgb[0].shape[:2]
    depth, costs["upsample_depth"] = _cpu_ms(
        lambda d: inference.finish(d, hw, settings.resize), raw
    )
    results = [DepthResult(image, d, settings) for image, d in zip(rgb, depth, strict=True)]
    planes: dict[str, list[np.ndarray]] = {}
    for name in OUTPUTS:
        planes[name], costs[f"{name}_pixels"] = _cpu_ms(VIDEO_KINDS[name].frame, results)
    for name in OUTPUTS:  # encode and mux, into a file removed at once
        kind = VIDEO_KINDS[name]
        target = work / f"profile.{kind.suffix}"
        writer = StreamWriter(target, kind.codec or "", kind.pix_fmt, hw, Fraction(25))
        start = time.process_time()
        for index, pixels in enumerate(planes[name]):
            writer.add(pixels, index / 25)
        writer.close()
        cost = (time.process_time() - start) * 1e3 / len(planes[name])
        costs[f"{name}_encode"] = round(cost, 2)
        writer.abort()
    costs["total_host"] = round(sum(costs.values()), 2)
    return costs


def throughput(
    engine: Any, clip: Path, frames: int, runs: int, work: Path, tag: str
) -> dict[str, Any]:
    """End-to-end frames/s of `engine.run` on the clip against the model-only rate measured
    just before and just after it (their mean: a load that changes during a run shifts
    both sides alike); medians over the runs, and each run's figures."""
    inputs = [engine.inference.prepare(image) for image in decoded_frames(clip, 4)]
    engine.inference.predict_many(decoded_frames(clip, 1))  # warm-up outside the timing
    per_run: list[dict[str, Any]] = []
    digests = set()
    for run in range(runs):
        out = work / f"out-{tag}-{run}"
        shutil.rmtree(out, ignore_errors=True)
        before = model_only_rate(engine.inference, inputs, max(frames // 2, 4))
        begun = time.perf_counter()
        summary = engine.run([str(clip)], out)
        wall = time.perf_counter() - begun
        after = model_only_rate(engine.inference, inputs, max(frames // 2, 4))
        if summary.failed or summary.frames != frames:
            raise RuntimeError(f"{tag}: {summary.frames} of {frames} frames; see {out}")
        digests.add(_outputs_digest(out))
        shutil.rmtree(out)
        model = (before + after) / 2
        e2e = summary.frames / summary.seconds
        per_run.append(
            {
                "e2e_frames_per_s": round(e2e, 4),
                "call_wall_s": round(wall, 3),
                "model_only_frames_per_s": round(model, 4),
                "model_only_before_after": [round(before, 4), round(after, 4)],
                "e2e_vs_model": round(e2e / model, 4),
                "in_run_model_busy_frames_per_s": round(summary.frames / summary.model_seconds, 4),
                "stages": summary.stages,
            }
        )
        print(
            f"  run {run + 1}: {e2e:.3f} frames/s end to end, {model:.3f} model only "
            f"({e2e / model:.1%})",
            flush=True,
        )
    keys = ("e2e_frames_per_s", "model_only_frames_per_s", "e2e_vs_model")
    medians = {key: round(statistics.median(r[key] for r in per_run), 4) for key in keys}
    return {
        **medians,
        "meets_target": medians["e2e_vs_model"] >= TARGET_E2E_VS_MODEL,
        "model_input_shape": list(inputs[0].shape),
        "outputs_identical_across_runs": len(digests) == 1,
        "runs": per_run,
    }


def _variants(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, text.split(",")):
        variant, _, precision = item.partition(":")
        pairs.append((variant, precision or "int8"))
    return pairs


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Throughput of each of --variants, then memory over the long clip."""
    from xdepth import DepthEngine

    width, height = (int(v) for v in args.size.split("x"))
    result: dict[str, Any] = {
        "outputs": list(OUTPUTS),
        "target_e2e_vs_model": TARGET_E2E_VS_MODEL,
        "throughput": {},
    }
    clip = work / f"pan-{width}x{height}-{args.frames}.mp4"
    if args.variants:
        print(f"making a {width}x{height} H.264 clip of {args.frames} frames ...", flush=True)
        result["clip"] = make_clip_file(clip, args.frames, height, width, fps=25)
    for variant, precision in _variants(args.variants):
        weights = bench_weights(get_card(variant), args.weights)
        engine = DepthEngine(artifact(variant, precision, args), outputs=OUTPUTS)
        tag = f"{variant}:{precision}"
        print(f"{tag}: {args.runs} runs of {args.frames} frames ...", flush=True)
        figures = throughput(engine, clip, args.frames, args.runs, work, tag.replace(":", "-"))
        figures["host_cpu_ms_per_frame"] = host_costs(engine, clip, work)
        model_ms = 1e3 * engine.inference.requests / figures["model_only_frames_per_s"]
        figures["model_ms_per_frame_per_request"] = round(model_ms, 1)
        figures["random_init"] = weights is None
        figures["properties"] = engine.backend.properties()
        result["throughput"][tag] = figures
        print(
            f"  {tag}: {figures['e2e_frames_per_s']} frames/s end to end, model only "
            f"{figures['model_only_frames_per_s']}, ratio {figures['e2e_vs_model']}; host "
            f"{figures['host_cpu_ms_per_frame']['total_host']} CPU ms per frame",
            flush=True,
        )
        del engine
    if args.memory_frames:
        variant, precision = _variants(args.memory_variant)[0]
        m_width, m_height = (int(v) for v in args.memory_size.split("x"))
        long_clip = work / f"pan-{m_width}x{m_height}-{args.memory_frames}.mp4"
        print(f"memory: {args.memory_frames} frames of {m_width}x{m_height} ...", flush=True)
        info = make_clip_file(long_clip, args.memory_frames, m_height, m_width, fps=25)
        directory = artifact(variant, precision, args)
        found = memory_run(directory, long_clip, work / "memory-out")
        trimmed = memory_run(directory, long_clip, work / "memory-out", env=TRIM_CHECK)
        trimmed.pop("series_frame_rss_mb")
        result["memory"] = {"variant": variant, "precision": precision, "clip": info, **found}
        result["memory"]["with_malloc_trim_threshold_128k"] = trimmed
        print(
            f"  RSS {found['rss_mb_at_early_frame']} MB at frame ~{found['early_frame']}, "
            f"{found['rss_mb_at_end']} MB at ~{found['frames']}; slope "
            f"{found['slope_mb_per_1k_frames']} MB per 1k frames ("
            f"{trimmed['slope_mb_per_1k_frames']} with glibc trimming at 128 KiB)",
            flush=True,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xdepth.bench.video_bench", description=__doc__)
    parser.add_argument("--variants", default=VARIANTS, help=f"VARIANT:PRECISION,... ({VARIANTS})")
    parser.add_argument("--frames", type=int, default=48, help="frames of the throughput clip")
    parser.add_argument("--size", default="1920x1080", help="throughput clip WIDTHxHEIGHT")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per variant (median)")
    parser.add_argument("--memory-frames", type=int, default=10_000, help="0 skips memory")
    parser.add_argument("--memory-size", default="320x180", help="memory clip WIDTHxHEIGHT")
    parser.add_argument("--memory-variant", default="xdepth-tiny:int8")
    parser.add_argument("--name", default="video", help="result file name")
    add_artifact_options(parser)
    args = parser.parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="xdepth-video-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = measure(args, work)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {write_result(args.name, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
