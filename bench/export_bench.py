"""Export bench: what each format and precision costs and gives, per real-size variant.

    python -m xdepth.bench.export_bench [--variants NAME ...] [--formats FMT:PREC ...]
        [--runs 5] [--warmup 1] [--calibration-size 16] [--no-eager] [--keep DIR]

Every variant is exported with random weights (no downloads; speed does not depend on the
weights' values, fidelity does, so fidelity figures here are not accuracy figures). Per
cell: export time, artifact size, compile time (cold without a cache, filling the cache,
and from the cache), and model-only images/s: for OpenVINO the THROUGHPUT hint with an
async queue of the optimal number of requests, for the torch graph batch-1 calls; the
median of `--runs` timed runs after `--warmup`, each run `--images` images. Per variant:
GFLOP per image (torch.utils.flop_counter on the fp32 model at the card's input size) and,
for DPT-BEiT-L-512, transformers eager fp32 batch-1 s/image, which the speed-up ratios
divide by. Results: bench/results/<machine>/<date>-export.json. Not part of CI: a full run
takes hours on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xdepth.bench.common import environment, time_runs, write_result
from xdepth.errors import XDepthError
from xdepth.model.cards import Card, get_card, real_cards
from xdepth.model.manifest import load_manifest

CELLS = ("openvino:f32", "openvino:bf16", "openvino:int8", "torch:bf16")
EAGER_VARIANTS = ("dpt-beit-large-512",)
SPEEDUP_TARGETS = {"openvino:bf16": 7.0, "openvino:int8": 10.0, "torch:bf16": 5.0}
CACHED_COMPILE_TARGET_S = 3.0


def gflop_per_image(card: Card) -> float:
    """Forward FLOPs of the fp32 model at the card's input size (2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from xdepth.export.models import build_model

    torch.manual_seed(0)
    model = build_model(card)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(pixel_values=torch.zeros((1, 3, *card.input_hw)))
    return round(counter.get_total_flops() / 1e9, 4)


def eager_seconds_per_image(card: Card, runs: int, warmup: int) -> float:
    """transformers eager fp32, batch 1, model only (all cores): median seconds."""
    import torch

    from xdepth.export.load import load_model

    model = load_model(card.name, random_init=True).model
    x = torch.zeros((1, 3, *card.input_hw))

    def once() -> None:
        with torch.no_grad():
            model(pixel_values=x)

    return statistics.median(time_runs(once, runs=runs, warmup=warmup))


def _openvino_speed(folder: Path, runs: int, warmup: int, images: int) -> dict[str, Any]:
    import openvino as ov

    from xdepth.model.backends.openvino import OpenVINOBackend

    with tempfile.TemporaryDirectory(prefix="xdepth-ov-cache-") as cache:
        cold = OpenVINOBackend(folder, use_cache=False)
        fill = OpenVINOBackend(folder, cache_dir=cache)
        cached = OpenVINOBackend(folder, cache_dir=cache)
        compile_s = {
            "cold": round(cold.compile_seconds, 3),
            "cache_fill": round(fill.compile_seconds, 3),
            "cached": round(cached.compile_seconds, 3),
        }
        del cold, fill
    requests = cached.optimal_requests
    queue = ov.AsyncInferQueue(cached.compiled, requests)
    h, w = cached.input_hw
    x = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)

    def run() -> None:
        for _ in range(images):
            queue.start_async({0: x})
        queue.wait_all()

    times = time_runs(run, runs=runs, warmup=warmup)
    return {
        "compile_s": compile_s,
        "properties": cached.properties(),
        "requests": requests,
        "images_per_run": images,
        "run_s": [round(t, 3) for t in times],
        "images_per_s": round(images / statistics.median(times), 4),
    }


def _torch_speed(folder: Path, runs: int, warmup: int, images: int) -> dict[str, Any]:
    from xdepth.model.backends.torch_graph import TorchGraphBackend

    start = time.perf_counter()
    first = TorchGraphBackend(folder)
    load_cold = time.perf_counter() - start
    start = time.perf_counter()
    backend = TorchGraphBackend(folder)
    load_again = time.perf_counter() - start
    del first
    h, w = backend.input_hw
    x = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)

    def run() -> None:
        for _ in range(images):
            backend.infer_u8(x)

    times = time_runs(run, runs=runs, warmup=warmup)
    return {
        # Loading a .pt2 compiles nothing: it unpacks and loads the compiled library.
        "compile_s": {"cold": round(load_cold, 3), "cached": round(load_again, 3)},
        "requests": 1,
        "images_per_run": images,
        "run_s": [round(t, 3) for t in times],
        "images_per_s": round(images / statistics.median(times), 4),
    }


def run_cell(card: Card, cell: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Export one variant in one format and precision, then time it."""
    from xdepth.export.exporter import export

    fmt, precision = cell.split(":")
    out = workdir / f"{card.name}-{fmt}-{precision}"
    print(f"export_bench: {card.name} {cell}: exporting", file=sys.stderr, flush=True)
    export(
        card.name,
        out,
        random_init=True,
        fmt=fmt,
        precision=precision,
        calibration_size=args.calibration_size if precision == "int8" else None,
        fidelity_floor=0.0,  # random weights: fidelity is recorded, not enforced
        fidelity_images=args.fidelity_images,
    )
    manifest = load_manifest(out)
    print(f"export_bench: {card.name} {cell}: timing", file=sys.stderr, flush=True)
    speed = (_openvino_speed if fmt == "openvino" else _torch_speed)(
        out, args.runs, args.warmup, args.images
    )
    return {
        "format": fmt,
        "precision": precision,
        "export_s": manifest.export["seconds"],
        "artifact_bytes": sum(f.bytes for f in manifest.files),
        "runtime": manifest.runtime,
        "weights_storage": manifest.weights_storage,
        "fidelity_vs_fp32_random_weights": manifest.fidelity["vs_reference"],
        **speed,
    }


def _ratios(variant: dict[str, Any]) -> None:
    """Speed-ups over eager fp32 and whether the targets are met (in place)."""
    eager = variant.get("eager_fp32_s_per_image")
    for cell, result in variant["cells"].items():
        if "images_per_s" not in result:
            continue
        if eager:
            result["speedup_vs_eager"] = round(result["images_per_s"] * eager, 2)
            if cell in SPEEDUP_TARGETS:
                result["speedup_target"] = SPEEDUP_TARGETS[cell]
                result["speedup_met"] = result["speedup_vs_eager"] >= SPEEDUP_TARGETS[cell]
        cached = result["compile_s"].get("cached")
        if result["format"] == "openvino" and cached is not None:
            result["cached_compile_met"] = cached <= CACHED_COMPILE_TARGET_S


def bench_variant(card: Card, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    variant: dict[str, Any] = {"input_hw": list(card.input_hw), "cells": {}}
    if not args.no_flops:
        variant["gflop_per_image"] = gflop_per_image(card)
    if card.name in EAGER_VARIANTS and not args.no_eager:
        seconds = eager_seconds_per_image(card, args.runs, args.warmup)
        variant["eager_fp32_s_per_image"] = round(seconds, 4)
    for cell in args.formats:
        try:
            variant["cells"][cell] = run_cell(card, cell, args, workdir)
        except (XDepthError, RuntimeError, ValueError, MemoryError) as exc:
            print(f"export_bench: {card.name} {cell}: failed: {exc}", file=sys.stderr)
            variant["cells"][cell] = {"error": f"{type(exc).__name__}: {exc}"}
    _ratios(variant)
    return variant


def _cell(text: str) -> str:
    if text not in CELLS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(CELLS)}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m xdepth.bench.export_bench")
    parser.add_argument("--variants", nargs="+", help="default: every real-size variant")
    parser.add_argument("--formats", nargs="+", type=_cell, default=list(CELLS))
    parser.add_argument("--runs", type=int, default=5, help="timed runs per cell (>= 5)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--images", type=int, default=8, help="images per timed run")
    parser.add_argument("--calibration-size", type=int, default=16)
    parser.add_argument("--fidelity-images", type=int, default=2)
    parser.add_argument("--no-eager", action="store_true", help="skip the eager fp32 baseline")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    parser.add_argument("--keep", metavar="DIR", help="keep the artifacts in DIR")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs < 5:
        print("export_bench: --runs must be at least 5 (medians of fewer are noise)")
        return 2
    cards = [get_card(name) for name in args.variants] if args.variants else real_cards()
    payload: dict[str, Any] = {
        "environment": environment(),
        "settings": {k: v for k, v in vars(args).items() if k != "keep"},
        "targets": {
            "speedup_vs_eager_fp32": SPEEDUP_TARGETS,
            "cached_compile_s": CACHED_COMPILE_TARGET_S,
            "eager_baseline_variants": list(EAGER_VARIANTS),
        },
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="xdepth-export-bench-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for card in cards:
            payload["variants"][card.name] = bench_variant(card, args, workdir)
            if not args.no_write:
                path = write_result("export", payload)  # after each variant: nothing lost
                print(f"export_bench: wrote {path}", file=sys.stderr)
    if args.no_write:
        import json

        print(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
