"""The peers xdepth is measured against, on the same images in the same run.

- ``seed``: the seed notebook (transformers eager fp32, Pillow defaults for writing), end
  to end; its model call alone is the model-only cell.
- ``pipeline``: ``transformers.pipeline("depth-estimation")`` built from the local model
  object and image processor (no hub), end to end (image in, depth at its size out).
- ``compile``: ``torch.compile`` of the transformers model under bf16 autocast, with
  inductor freezing, model only; cold and warm are the first call with an empty and with a
  filled inductor cache.
- ``benchmark_app``: OpenVINO's own benchmark tool on xdepth's IR, with the artifact's
  precision and compile properties; xdepth's model-only figure is compared with it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xdepth.bench.cells import VariantRun, fidelity_of
from xdepth.bench.engine_measure import SeedRecipe
from xdepth.bench.measure import peak_rss, seconds, time_sequential
from xdepth.bench.schema import make_cell

# openvino 2026.4 ships benchmark_app as a console script whose module has no __main__
# guard (`python -m openvino.tools.benchmark.main` does nothing); call its main directly.
BENCHMARK_APP_MAIN = (
    "import sys; from openvino.tools.benchmark.main import main; "
    "sys.argv[0] = 'benchmark_app'; sys.exit(main())"
)


def _cell(run: VariantRun, mode: str, contender: str, precision: str, **figures: Any) -> dict:
    fmt = "openvino" if contender == "benchmark_app" else "transformers"
    figures = {"streams": 1, "requests": 1} | figures
    return make_cell(
        run.info,
        run.peaks,
        contender=contender,
        fmt=fmt,
        precision=precision,
        mode=mode,
        **figures,
    )


def seed_cells(run: VariantRun, loaded: Any, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """transformers eager fp32: the whole seed recipe, and its model call alone."""
    import torch

    runs, warmup, count = settings["runs"], settings["warmup"], settings["images"]
    cold, recipe = seconds(lambda: SeedRecipe(loaded))
    out = run.work / "out-seed"
    out.mkdir(parents=True, exist_ok=True)
    first, _ = seconds(lambda: recipe(run.paths[0], out))
    where = {
        "threads": torch.get_num_threads(),
        "first_result_s": {
            "cold_cache": round(cold + first, 4),
            "warm_cache": None,
            "what": "build the processor + first image to written files (no compile cache)",
        },
        **fidelity_of(recipe, run),
    }
    cells = []
    if "model-only" in settings["modes"]:
        pixels = [
            recipe.processor(images=Image.fromarray(im), return_tensors="pt")["pixel_values"]
            for im in run.images.images
        ]

        def model_call(i: int) -> None:
            with torch.no_grad():
                recipe.model(pixel_values=pixels[i % len(pixels)])

        with peak_rss() as memory:
            timing = time_sequential(model_call, count, runs, warmup)
        cells.append(
            _cell(run, "model-only", "seed", "f32", timing=timing, **where, **memory.figures())
        )
    if "end-to-end" in settings["modes"]:
        with peak_rss() as memory:
            timing = time_sequential(
                lambda i: recipe(run.paths[i], out), len(run.paths), runs, warmup
            )
        cells.append(
            _cell(run, "end-to-end", "seed", "f32", timing=timing, **where, **memory.figures())
        )
    return cells


class _PipelinePredictor:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def predict_many(self, images_u8: list[np.ndarray]) -> list[np.ndarray]:
        return [
            self.pipe(Image.fromarray(im))["predicted_depth"].float().numpy() for im in images_u8
        ]


def pipeline_cell(run: VariantRun, loaded: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """transformers' depth-estimation pipeline on the local model object, end to end."""
    import torch
    from transformers import pipeline

    from xdepth.export.reference import image_processor

    def build() -> Any:
        return pipeline(
            "depth-estimation", model=loaded.model, image_processor=image_processor(loaded.card)
        )

    cold, pipe = seconds(build)
    first, _ = seconds(lambda: pipe(Image.open(run.paths[0])))
    with peak_rss() as memory:
        timing = time_sequential(
            lambda i: pipe(Image.open(run.paths[i])),
            len(run.paths),
            settings["runs"],
            settings["warmup"],
        )
    return _cell(
        run,
        "end-to-end",
        "pipeline",
        "f32",
        timing=timing,
        threads=torch.get_num_threads(),
        first_result_s={
            "cold_cache": round(cold + first, 4),
            "warm_cache": None,
            "what": "build the pipeline + first image to depth (no files written)",
        },
        notes=[
            "reads each JPEG and returns depth at its size and a PIL depth image; writes no files"
        ],
        **fidelity_of(_PipelinePredictor(pipe), run),
        **memory.figures(),
    )


class _CompiledPredictor:
    def __init__(self, compiled: Any, processor: Any) -> None:
        self.compiled, self.processor = compiled, processor

    def depth(self, pixel_values: Any) -> Any:
        import torch

        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return self.compiled(pixel_values=pixel_values).predicted_depth

    def predict_many(self, images_u8: list[np.ndarray]) -> list[np.ndarray]:
        from xdepth.export.fidelity import upsample

        outs = []
        for image in images_u8:
            x = self.processor(images=Image.fromarray(image), return_tensors="pt")["pixel_values"]
            outs.append(upsample(self.depth(x)[0].float().numpy(), image.shape[:2]))
        return outs


def compile_cell(run: VariantRun, loaded: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """torch.compile bf16 (autocast, freezing) of the transformers model, model only."""
    import torch
    import torch._inductor.config as inductor_config

    from xdepth.export.reference import image_processor

    inductor_config.freezing = True
    processor = image_processor(loaded.card)
    pixels = [
        processor(images=Image.fromarray(im), return_tensors="pt")["pixel_values"]
        for im in run.images.images
    ]
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="xdepth-bench-inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            firsts = []
            for _ in range(2):  # cold: empty inductor cache; warm: the one just filled
                torch._dynamo.reset()
                predictor = _CompiledPredictor(torch.compile(loaded.model.eval()), processor)
                firsts.append(seconds(lambda p=predictor: p.depth(pixels[0]))[0])
        finally:
            if previous is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous
        with peak_rss() as memory:
            timing = time_sequential(
                lambda i: predictor.depth(pixels[i % len(pixels)]),
                settings["images"],
                settings["runs"],
                settings["warmup"],
            )
        fidelity = fidelity_of(predictor, run)
    return _cell(
        run,
        "model-only",
        "compile",
        "bf16",
        timing=timing,
        threads=torch.get_num_threads(),
        first_result_s={
            "cold_cache": firsts[0],
            "warm_cache": firsts[1],
            "what": "torch.compile + first call; cold: empty inductor cache",
        },
        **fidelity,
        **memory.figures(),
    )


def benchmark_app_cell(
    run: VariantRun,
    artifact: Path,
    precision: str,
    settings: dict[str, Any],
    effective: str | None = None,
) -> dict[str, Any]:
    """OpenVINO's benchmark_app on the artifact's IR, THROUGHPUT hint, same threads;
    `effective` is what the engine found this CPU computes the artifact in."""
    from xdepth.model.manifest import load_manifest

    manifest = load_manifest(artifact, check_sha256=False)
    runtime = manifest.runtime
    niter = settings["images"] * settings["runs"]
    properties = dict(runtime.get("ov_properties") or {})
    if settings["threads"]:  # benchmark_app takes -nthreads only without a hint
        properties["INFERENCE_NUM_THREADS"] = str(settings["threads"])
    with tempfile.TemporaryDirectory(prefix="xdepth-bench-app-") as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"CPU": properties}))
        arguments = [
            "-m", str(manifest.model_file), "-d", "CPU", "-hint", "throughput",
            "-infer_precision", str(runtime.get("inference_precision") or "f32"),
            "-niter", str(niter), "-load_config", str(config),
        ]  # fmt: skip
        command = [sys.executable, "-c", BENCHMARK_APP_MAIN, *arguments]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or "Throughput:" not in done.stdout:
        output = (done.stdout + done.stderr)[-800:]
        raise RuntimeError(f"benchmark_app failed (exit {done.returncode}): {output}")
    parsed = parse_benchmark_app(done.stdout)
    rate = parsed["throughput_fps"]
    return _cell(
        run,
        "model-only",
        "benchmark_app",
        precision,
        images_per_run=parsed.get("iterations") or niter,
        runs=1,
        images_per_s={"median": rate, "min": rate, "max": rate},
        latency_ms={"p50": parsed.get("median_latency_ms"), "p95": None},
        streams=parsed.get("streams"),
        requests=parsed.get("requests"),
        threads=settings["threads"],
        effective_precision=effective,
        notes=[
            f"benchmark_app {' '.join(arguments)} with {json.dumps(properties)}",
            "one run; latency p50 is its median",
        ],
    )


def parse_benchmark_app(stdout: str) -> dict[str, Any]:
    """Throughput, median latency, iterations, streams and requests from its report."""

    def number(pattern: str) -> float | None:
        match = re.search(pattern, stdout)
        return float(match.group(1)) if match else None

    fps = number(r"Throughput:\s*([\d.]+)\s*FPS")
    if fps is None:
        raise RuntimeError(f"benchmark_app printed no throughput:\n{stdout[-800:]}")
    streams = number(r"NUM_STREAMS:\s*(\d+)")
    requests = number(r"(\d+) inference requests")
    iterations = number(r"Count:\s*(\d+)\s*iterations")
    return {
        "throughput_fps": fps,
        "median_latency_ms": number(r"Median:\s*([\d.]+)\s*ms"),
        "iterations": None if iterations is None else int(iterations),
        "streams": None if streams is None else int(streams),
        "requests": None if requests is None else int(requests),
    }


def peer_cells(
    run: VariantRun, loaded: Any, settings: dict[str, Any], say: Callable[[str], None]
) -> list[dict[str, Any]]:
    """The seed recipe and the pipeline; the suite runs benchmark_app per artifact and
    torch.compile last."""
    cells: list[dict[str, Any]] = []
    name = run.info["name"]
    if "seed" in settings["peers"]:
        say(f"{name}: seed recipe (transformers eager fp32)")
        cells += seed_cells(run, loaded, settings)
    if "pipeline" in settings["peers"] and "end-to-end" in settings["modes"]:
        say(f"{name}: transformers pipeline")
        cells.append(pipeline_cell(run, loaded, settings))
    return cells
