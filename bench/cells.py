"""xdepth's own cells: one exported artifact, model-only and end to end, per stream count.

Every contender sees the same images: held-out synthetic scenes (never trained on, with
exact depth) written as JPEG files; the decoded pixels are what fidelity and accuracy are
scored on. Model-only runs the engine's inference on prepared inputs with every request in
flight; end to end runs `DepthEngine.map` on the JPEG paths (decode, resize, infer,
upsample, mask) and encodes and writes a 16-bit depth PNG and an RGBA cutout per image,
the files the seed recipe writes.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from xdepth.bench.eval_cells import benchmark_scores
from xdepth.bench.measure import (
    peak_rss,
    seconds,
    time_async_queue,
    time_image_runs,
    time_sequential,
)
from xdepth.bench.memory import engine_memory
from xdepth.bench.schema import make_cell, scores
from xdepth.eval.scenes import make_scene, photo_hw
from xdepth.export.calibration import FIDELITY_FIRST_SEED, ImageSet
from xdepth.job.imageio import load_rgb
from xdepth.post import write_atomic

OUTPUTS = ("depth16", "cutout")
JPEG_QUALITY = 92


@dataclass
class VariantRun:
    """What every cell of one variant shares: its facts, images, reference and peaks."""

    info: dict[str, Any]  # name, random_init, weights, input_hw, gflop_per_image, ...
    paths: list[Path]
    images: ImageSet
    reference: Any  # xdepth.export.fidelity.Reference
    peaks: dict[str, Any] | None
    work: Path


def bench_images(folder: Path, count: int, side_px: int) -> tuple[list[Path], ImageSet]:
    """`count` held-out scenes as JPEG files, and their decoded pixels with ground truth, in
    the shapes photos come in (xdepth.eval.scenes.photo_hw) for a model of input side `side_px`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, scenes = [], []
    sizes = [photo_hw(i, side_px) for i in range(count)]
    for i, size_hw in enumerate(sizes):
        scene = make_scene(FIDELITY_FIRST_SEED + i, *size_hw)
        path = folder / f"scene{i:03d}.jpg"
        Image.fromarray(scene.rgb).save(path, quality=JPEG_QUALITY)
        paths.append(path)
        scenes.append(scene)
    description = {
        "source": "xdepth.eval.scenes (held-out seeds), JPEG quality 92",
        "first_seed": FIDELITY_FIRST_SEED,
        "count": count,
        "sizes_hw": [list(hw) for hw in sizes],
    }
    return paths, ImageSet([load_rgb(p) for p in paths], description, scenes)


def fidelity_of(predictor: Any, run: VariantRun) -> dict[str, Any]:
    """vs the fp32 reference, and vs ground truth when the weights are real."""
    from xdepth.export.fidelity import measure

    result, _ = measure(predictor, run.images, run.reference)
    return {
        "fidelity": scores(result["vs_reference"]),
        "accuracy": scores(result.get("vs_ground_truth")),
    }


def e2e_timing(engine: Any, paths: list[Path], out: Path, runs: int, warmup: int) -> dict:
    """`engine.map` over the files, encoding and writing each result; latency per image is
    from the moment the pipeline takes its path to its files being written."""
    taken: list[float] = []

    def feed() -> Any:
        for path in paths:
            taken.append(time.perf_counter())
            yield str(path)

    def run_once() -> list[float]:
        taken.clear()
        latencies = []
        for index, result in enumerate(engine.map(feed())):
            for suffix, data in result.files().items():
                write_atomic(out / f"{paths[index].stem}.{suffix}", data)
            latencies.append(time.perf_counter() - taken[index])
        return latencies

    out.mkdir(parents=True, exist_ok=True)
    return time_image_runs(run_once, len(paths), runs, warmup)


def first_results(artifact: Path, path: Path, fmt: str, threads: int | None) -> dict[str, Any]:
    """Seconds from nothing to a first finished result (open, compile, infer, encode).

    OpenVINO: cold with an empty compile cache (compiling and filling it), warm from the
    filled cache. The torch graph has no compile cache: warm is a second load.
    """
    from xdepth import DepthEngine

    cache = Path(tempfile.mkdtemp(prefix="xdepth-bench-ov-cache-"))
    options: dict[str, Any] = {"cache_dir": cache} if fmt == "openvino" else {}

    def once() -> None:
        DepthEngine(artifact, outputs=OUTPUTS, threads=threads, **options).predict(path).files()

    try:
        cold, _ = seconds(once)
        warm, _ = seconds(once)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    what = (
        "open + compile + first image to encoded files; cold: empty OpenVINO cache"
        if fmt == "openvino"
        else "load the compiled package + first image to encoded files; warm: second load"
    )
    return {"cold_cache": cold, "warm_cache": warm, "what": what}


def artifact_cells(
    run: VariantRun,
    artifact: Path,
    fmt: str,
    precision: str,
    settings: dict[str, Any],
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Model-only and end-to-end cells of one artifact, for each stream count asked."""
    from xdepth import DepthEngine

    threads = settings["threads"]
    say(f"{run.info['name']} {fmt}:{precision}: time to first result")
    first = first_results(artifact, run.paths[0], fmt, threads)
    streams_list = settings["streams"] if fmt == "openvino" else [None]
    cache = Path(tempfile.mkdtemp(prefix="xdepth-bench-ov-cache-"))
    cells: list[dict[str, Any]] = []
    fidelity = None
    try:
        for streams in streams_list:
            options: dict[str, Any] = {"threads": threads}
            if fmt == "openvino":
                options |= {"cache_dir": cache, "streams": None if streams == "auto" else streams}
            engine = DepthEngine(artifact, outputs=OUTPUTS, **options)
            if fidelity is None:  # the stream count does not change the numbers
                fidelity = fidelity_of(engine.backend, run)
                fidelity["benchmarks"] = benchmark_scores(
                    engine.backend, settings.get("eval_data"), settings.get("eval_images")
                )
            where = {
                "contender": "xdepth",
                "fmt": fmt,
                "precision": precision,
                "effective_precision": _effective(engine, precision),
                "notes": _fallback_notes(engine),
                "streams": _streams(engine),
                "requests": engine.inference.requests,
                "threads": _threads(engine, threads),
                "first_result_s": first,
                **fidelity,
            }
            label = f"{run.info['name']} {fmt}:{precision} streams={streams}"
            found = _engine_cells(run, engine, where, settings, label, say)
            del engine  # its compiled model and requests, before the next one is opened
            if settings.get("memory", True):
                say(f"{label}: memory of the engine in a process of its own")
                own = engine_memory(artifact, run.paths, threads, streams)
                figures = {k: own[k] for k in ("peak_rss_mb", "steady_rss_mb", "artifact_mb")}
                found = [cell | figures | {"memory": own} for cell in found]
            cells += found
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return cells


def _engine_cells(
    run: VariantRun,
    engine: Any,
    where: dict[str, Any],
    settings: dict[str, Any],
    label: str,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    runs, warmup, count = settings["runs"], settings["warmup"], settings["images"]
    inference = engine.inference
    cells = []
    if "model-only" in settings["modes"]:
        say(f"{label}: model only")
        inputs = [inference.prepare(image) for image in run.images.images]
        with peak_rss() as memory:
            if inference.asynchronous:
                timing = time_async_queue(inference, inputs, count, runs, warmup)
            else:
                timing = time_sequential(
                    lambda i: inference.run(inputs[i % len(inputs)]), count, runs, warmup
                )
        figures = where | memory.figures()
        cells.append(make_cell(run.info, run.peaks, mode="model-only", timing=timing, **figures))
    if "end-to-end" in settings["modes"]:
        say(f"{label}: end to end")
        out = run.work / f"out-{where['fmt']}-{where['precision']}-{where['streams']}"
        with peak_rss() as memory:
            timing = e2e_timing(engine, run.paths, out, runs, warmup)
        figures = where | memory.figures()
        cells.append(make_cell(run.info, run.peaks, mode="end-to-end", timing=timing, **figures))
    return cells


def _effective(engine: Any, precision: str) -> str:
    """The precision the CPU computes the artifact in (bf16 without native bf16: f32)."""
    return str(getattr(engine.backend, "effective_precision", None) or precision)


def _fallback_notes(engine: Any) -> list[str]:
    note = getattr(engine.backend, "fallback", None)
    return [note] if note else []


def _streams(engine: Any) -> int:
    props = getattr(engine.backend, "properties", None)
    return int(props()["NUM_STREAMS"]) if callable(props) else 1


def _threads(engine: Any, asked: int | None) -> int | None:
    props = getattr(engine.backend, "properties", None)
    if callable(props):
        return int(props()["INFERENCE_NUM_THREADS"])
    if asked is not None:
        return asked
    import torch

    return torch.get_num_threads()
