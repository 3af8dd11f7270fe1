"""The batch job on Ray Data against the local runner, on the same images and settings.

    python -m xdepth.bench.ray_bench                    # 200 640x480 JPEGs, xdepth-tiny int8
    python -m xdepth.bench.ray_bench --variant dpt-swinv2-tiny-256   # a heavier model

Both write the default outputs (16-bit depth, colour depth, mask, RGBA cutout) of the
same synthetic scenes into fresh folders, alternating local and Ray runs so both see the
same machine load; figures are medians over --runs. The local runner is one warm
`DepthEngine`. Ray runs on a local Ray started once, outside the timing, with each pool
layout of --pools (ACTORSxCPUS). Its end-to-end images/s counts from a ready Ray to the
last image, so it includes the pool's start-up (`startup_s`: actor processes, imports,
the artifact compiled from cache), paid once per job; `steady_images_per_s` is the pool's
rate once every actor works (xdepth.job.ray_job). Target: Ray within 15 % of the local
runner. Every Ray run's outputs are checked byte-identical to the local runner's.
Results go to bench/results/<machine>/<date>-ray.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from xdepth.bench.artifacts import bench_weights
from xdepth.bench.common import core_count, environment, write_result
from xdepth.bench.engine_bench import artifact, make_jpegs
from xdepth.model.cards import get_card

VARIANT = "xdepth-tiny"
TARGET_RAY_VS_LOCAL = 0.85


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}


def _pool(text: str) -> tuple[int, int]:
    actors, _, cpus = text.partition("x")
    try:
        return int(actors), int(cpus)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a pool is ACTORSxCPUS, e.g. 2x1, got {text!r}") from None


def _ray_run(
    run_ray: Any, artifact: Path, images: Path, out: Path, actors: int, cpus: int, cache: Path
) -> dict[str, float]:
    """One Ray job: images/s, the pool's start-up and its steady images/s (see ray_runner)."""
    start = time.perf_counter()
    summary = run_ray(
        artifact, [images], out, actors=actors, cpus_per_actor=cpus, cache_dir=cache, quiet=True
    )
    wall_s = time.perf_counter() - start
    if summary.failed:
        raise RuntimeError(f"{summary.failed} images failed; see {out / 'errors.jsonl'}")
    pool = summary.ray or {}
    return {
        "images_per_s": summary.images_per_s,
        "steady_images_per_s": pool["steady_images_per_s"],
        "startup_s": pool["startup_s"],
        "call_wall_s": wall_s,
    }


def _medians(runs: list[dict[str, float]], local: float) -> dict[str, Any]:
    """Median of each figure over the runs, and the steady rate against the local runner."""
    figures: dict[str, Any] = {
        key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]
    }
    figures["steady_vs_local"] = round(figures["steady_images_per_s"] / local, 3)
    figures["e2e_vs_local"] = round(figures["images_per_s"] / local, 3)
    figures["meets_target_e2e"] = figures["e2e_vs_local"] >= TARGET_RAY_VS_LOCAL
    figures["meets_target_steady"] = figures["steady_vs_local"] >= TARGET_RAY_VS_LOCAL
    figures["runs"] = [{k: round(v, 3) for k, v in run.items()} for run in runs]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xdepth.bench.ray_bench", description=__doc__)
    parser.add_argument("--variant", default=VARIANT, help=f"model variant (default {VARIANT})")
    parser.add_argument("--weights", help="weights folder (default: shipped, else random init)")
    parser.add_argument("--images", type=int, default=200, help="synthetic JPEGs")
    parser.add_argument("--size", default="640x480", help="image WIDTHxHEIGHT")
    parser.add_argument("--precision", default="int8", choices=("int8", "f32"))
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument(
        "--pools",
        type=_pool,
        nargs="+",
        default=[(2, 1), (1, 2)],
        help="Ray actor pools as ACTORSxCPUS (default: 2x1 1x2)",
    )
    parser.add_argument("--calibration-size", type=int, default=32, help="int8 calibration")
    parser.add_argument("--artifacts-dir", default=str(Path.home() / ".cache/xdepth/bench"))
    parser.add_argument("--work-dir", help="images and outputs (default: a temp folder)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="xdepth-ray-bench-"))
    import ray

    from xdepth import DepthEngine
    from xdepth.job.ray_job import run_ray

    weights = bench_weights(get_card(args.variant), args.weights)
    directory = artifact(args.variant, args.precision, args)
    cache = work / "ov-cache"  # given to the actors too: they do not read this process's env
    images = work / "images"
    make_jpegs(images, args.images, height, width, 3_000_000_000)
    engine = DepthEngine(directory, cache_dir=cache)
    engine.predict(min(images.glob("*.jpg")))  # compile and warm up outside the timing
    ray.init(num_cpus=core_count(), include_dashboard=False, logging_level="warning")
    local_rates: list[float] = []
    ray_runs: dict[str, list[dict[str, float]]] = {f"{a}x{c}": [] for a, c in args.pools}
    reference: dict[str, bytes] = {}
    for run in range(args.runs):
        out = work / f"local-{run}"
        summary = engine.run([str(images)], out)
        if summary.failed:
            raise RuntimeError(f"{summary.failed} images failed; see {out / 'errors.jsonl'}")
        local_rates.append(summary.images_per_s)
        reference = reference or _outputs(out)
        shutil.rmtree(out)
        for actors, cpus in args.pools:
            out = work / f"ray-{actors}x{cpus}-{run}"
            figures = _ray_run(run_ray, directory, images, out, actors, cpus, cache)
            if _outputs(out) != reference:
                raise RuntimeError(f"Ray {actors}x{cpus}: outputs differ from the local runner's")
            ray_runs[f"{actors}x{cpus}"].append(figures)
            shutil.rmtree(out)
        shown = [
            f"{name} {runs[-1]['images_per_s']:.2f} (steady {runs[-1]['steady_images_per_s']:.2f})"
            for name, runs in ray_runs.items()
        ]
        print(f"run {run + 1}: local {local_rates[-1]:.2f} images/s; Ray {'; '.join(shown)}")
    ray.shutdown()
    local = statistics.median(local_rates)
    pools = {name: _medians(runs, local) for name, runs in ray_runs.items()}
    result = {
        "variant": args.variant,
        "precision": args.precision,
        "random_init": weights is None,
        "images": args.images,
        "size": [width, height],
        "outputs": list(engine.settings.outputs),
        "runs": args.runs,
        "target_ray_vs_local": TARGET_RAY_VS_LOCAL,
        "local": {
            "images_per_s": round(local, 3),
            "runs_images_per_s": [round(r, 3) for r in local_rates],
            "properties": engine.backend.properties(),
        },
        "ray": pools,
        "outputs_identical": True,
        "environment": environment(),
    }
    path = write_result("ray" if args.variant == VARIANT else f"ray-{args.variant}", result)
    shown = [
        f"{name} {p['images_per_s']:.2f} ({p['e2e_vs_local']:.2f}x), steady "
        f"{p['steady_images_per_s']:.2f} ({p['steady_vs_local']:.2f}x), start-up {p['startup_s']} s"
        for name, p in pools.items()
    ]
    print(f"local {local:.2f} images/s; Ray {'; '.join(shown)}")
    print(f"wrote {path}")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
