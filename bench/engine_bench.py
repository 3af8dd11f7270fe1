"""End-to-end engine throughput against the seed recipe, model-only rate, and memory soak.

    python -m xdepth.bench.engine_bench                 # DPT-BEiT-L-512, random init (hours)
    python -m xdepth.bench.engine_bench --quick         # xdepth-tiny, small counts (minutes)

On one set of 1920x1080 JPEGs, every contender writes a 16-bit depth PNG and an RGBA
cutout per image:

- the seed recipe: transformers fp32 eager, batch 1, torch bicubic upsample, the seed's
  threshold 45, Pillow PNGs at its default level, one image after another;
- the engine on OpenVINO bf16 and int8 artifacts of the same model (random init unless
  --weights), exported once into --artifacts-dir.

For each artifact it reports end-to-end images/s (targets: 7x the seed for bf16, 10x for
int8), the same artifact's model-only images/s (inputs already resized, every request in
flight, no post-processing) and their ratio (target >= 90 %, >= 75 % for 12 MP inputs),
and, with --soak N, resident memory growth over N images after warm-up (target <= 5 %).
It also records how much of the host-side work (decode, resize, upsample, mask, encode)
holds the GIL, which is why post-processing runs in threads. Results go to
bench/results/<machine>/<date>-engine-bench[-quick].json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xdepth.bench.artifacts import DEFAULT_ARTIFACTS_DIR, bench_weights, ensure_artifact
from xdepth.bench.common import environment, write_result
from xdepth.bench.engine_measure import gil_held_fraction, model_only_rate, rss_bytes, seed_recipe
from xdepth.eval.scenes import make_scene
from xdepth.model.cards import get_card

FULL = {"variant": "dpt-beit-large-512", "images": 24, "large": 4, "seed_images": 3, "soak": 0}
QUICK = {"variant": "xdepth-tiny", "images": 12, "large": 2, "seed_images": 4, "soak": 60}
TARGETS = {
    "bf16_vs_seed": 7.0,
    "int8_vs_seed": 10.0,
    "e2e_vs_model": 0.9,
    "e2e_vs_model_12mp": 0.75,
}
OUTPUTS = ("depth16", "cutout")


def make_jpegs(folder: Path, count: int, height: int, width: int, first_seed: int) -> list[Path]:
    """Distinct synthetic photos (textured scenes with near objects) as JPEG files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i:04d}.jpg"
        if not path.is_file():
            Image.fromarray(make_scene(first_seed + i, height, width).rgb).save(path, quality=92)
        paths.append(path)
    return paths


def artifact(variant: str, precision: str, args: argparse.Namespace) -> Path:
    """The variant's OpenVINO artifact at `precision`, exported on first use (bench cache)."""
    card = get_card(variant)
    weights = bench_weights(card, args.weights)
    folder = Path(args.artifacts_dir)
    return ensure_artifact(
        card, "openvino", precision, weights, folder, args.calibration_size, _say
    )


def add_artifact_options(parser: argparse.ArgumentParser) -> None:
    """The options `artifact` reads, and --work-dir: shared by the benches that export."""
    parser.add_argument("--weights", help="weights folder (default: shipped, else random init)")
    parser.add_argument("--calibration-size", type=int, default=32, help="int8 calibration")
    parser.add_argument("--artifacts-dir", default=str(DEFAULT_ARTIFACTS_DIR))
    parser.add_argument("--work-dir", help="inputs and outputs (default: a temp folder)")


def _say(message: str) -> None:
    print(f"  {message}", flush=True)


def engine_figures(
    engine: Any, folder: Path, out: Path, model_inputs: list[np.ndarray], count: int
) -> dict[str, Any]:
    """End-to-end images/s through `engine.run`, and the model-only rate of its inference."""
    shutil.rmtree(out, ignore_errors=True)
    engine.predict(min(folder.glob("*.jpg")))  # warm-up outside the timing
    summary = engine.run([str(folder)], out)
    if summary.failed:
        raise RuntimeError(f"{summary.failed} images failed; see {out / 'errors.jsonl'}")
    model_rate = model_only_rate(engine.inference, model_inputs, count)
    return {
        "images": summary.ok,
        "e2e_images_per_s": round(summary.images_per_s, 4),
        "model_only_images_per_s": round(model_rate, 4),
        "e2e_vs_model": round(summary.images_per_s / model_rate, 4),
        "in_run_model_busy_images_per_s": round(summary.model_images_per_s, 4),
        "stages": summary.stages,
    }


def soak(engine: Any, sources: list[Path], count: int, work: Path) -> dict[str, Any]:
    """RSS over `count` images (hard links to a few JPEGs): growth after warm-up."""
    folder = work / "soak-in"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        link = folder / f"s{i:06d}.jpg"
        if not link.exists():
            os.link(sources[i % len(sources)], link)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), rss_bytes()))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    out = work / "soak-out"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    sampler.start()
    summary = engine.run([str(folder)], out)
    stop.set()
    sampler.join()
    seconds = time.perf_counter() - start
    at = [(t - start) / seconds for t, _ in samples]
    warm = [r for f, (_, r) in zip(at, samples, strict=True) if 0.2 <= f <= 0.3]
    late = [r for f, (_, r) in zip(at, samples, strict=True) if f >= 0.8]
    if not warm or not late:
        raise RuntimeError("soak too short to sample memory; raise --soak")
    rss_warm = float(np.median(warm))
    return {
        "images": summary.ok,
        "images_per_s": round(summary.images_per_s, 4),
        "rss_after_warmup_mb": round(rss_warm / 2**20, 1),
        "rss_max_late_mb": round(max(late) / 2**20, 1),
        "rss_growth": round((max(late) - rss_warm) / rss_warm, 4),
        "samples": len(samples),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xdepth.bench.engine_bench", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="xdepth-tiny, small counts")
    parser.add_argument("--variant", help="model variant (default dpt-beit-large-512)")
    parser.add_argument("--images", type=int, help="1920x1080 JPEGs for throughput")
    parser.add_argument("--large", type=int, help="4000x3000 (12 MP) JPEGs; 0 skips")
    parser.add_argument("--seed-images", type=int, help="images for the seed recipe")
    parser.add_argument("--soak", type=int, help="images for the memory soak; 0 skips")
    parser.add_argument("--precisions", default="bf16,int8", help="artifact precisions")
    add_artifact_options(parser)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    variant = args.variant or preset["variant"]
    counts = {
        k: getattr(args, k) if getattr(args, k) is not None else preset[k]
        for k in ("images", "large", "seed_images", "soak")
    }
    weights = bench_weights(get_card(variant), args.weights)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="xdepth-engine-bench-"))
    from xdepth import DepthEngine

    photos = make_jpegs(work / "hd", counts["images"], 1080, 1920, 2_000_000_000)
    large = make_jpegs(work / "12mp", counts["large"], 3000, 4000, 2_100_000_000)
    result: dict[str, Any] = {
        "variant": variant,
        "random_init": weights is None,
        "counts": counts,
        "outputs": list(OUTPUTS),
        "targets": TARGETS,
    }
    print(f"seed recipe on {counts['seed_images']} images ...", flush=True)
    result["seed"] = seed_recipe(
        variant, weights and str(weights), photos[: counts["seed_images"]], work / "seed-out"
    )
    seed_rate = result["seed"]["images_per_s"]
    result["artifacts"] = {}
    last_engine = None
    for precision in [p for p in args.precisions.split(",") if p]:
        directory = artifact(variant, precision, args)
        engine = DepthEngine(directory, outputs=OUTPUTS)
        inputs = [
            engine.inference.prepare(np.asarray(Image.open(p).convert("RGB"))) for p in photos[:4]
        ]
        print(f"{precision}: end to end on {len(photos)} HD images ...", flush=True)
        figures = engine_figures(
            engine, work / "hd", work / f"out-{precision}", inputs, 2 * len(photos)
        )
        figures["vs_seed"] = round(figures["e2e_images_per_s"] / seed_rate, 3)
        figures["properties"] = engine.backend.properties()
        if counts["large"]:
            print(f"{precision}: end to end on {len(large)} 12 MP images ...", flush=True)
            big = engine_figures(
                engine, work / "12mp", work / f"out12-{precision}", inputs, 2 * len(large)
            )
            figures["12mp"] = {k: big[k] for k in ("images", "e2e_images_per_s", "e2e_vs_model")}
        result["artifacts"][precision] = figures
        print(
            f"  {figures['e2e_images_per_s']} images/s end to end ({figures['vs_seed']}x seed), "
            f"model only {figures['model_only_images_per_s']}, ratio {figures['e2e_vs_model']}",
            flush=True,
        )
        last_engine = engine
    if counts["soak"] and last_engine is not None:
        print(f"soak over {counts['soak']} images ...", flush=True)
        result["soak"] = soak(last_engine, photos, counts["soak"], work)
    result["post_gil_held_fraction_hd"] = gil_held_fraction(photos[0])
    result["environment"] = environment()
    path = write_result("engine-bench-quick" if args.quick else "engine-bench", result)
    print(f"wrote {path}")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
