"""`xdepth bench`: the whole matrix in one run, written as JSON, CSV and a Pareto plot.

    xdepth bench --quick
    xdepth bench --variants dpt-beit-large-512 --formats openvino:bf16,openvino:int8
    python -m xdepth.bench.suite --quick          # the same, without the xdepth command

Per variant: held-out synthetic scenes as JPEGs, the fp32 reference on them, GFLOP per
image; then the peers (seed recipe, transformers pipeline), each format:precision artifact
(model-only and end to end, per stream count) with OpenVINO's benchmark_app on the same IR,
and torch.compile last (it freezes the model's weights in place). The file is rewritten
after each variant, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xdepth.bench.artifacts import DEFAULT_ARTIFACTS_DIR, bench_weights, ensure_artifact
from xdepth.bench.cli import add_bench_arguments, settings_from_args
from xdepth.bench.common import environment, write_result
from xdepth.bench.schema import SCHEMA_VERSION, SUITE, failed_cell, with_share
from xdepth.errors import XDepthError
from xdepth.model.cards import Card, get_card, real_cards

Say = Callable[[str], None]
EXPECTED_ERRORS = (XDepthError, RuntimeError, ValueError, MemoryError, OSError)


def variant_info(card: Card, weights: Path | None, image_sizes_hw: list) -> dict[str, Any]:
    from xdepth.bench.export_bench import gflop_per_image

    if weights is None:
        origin = "random-init"
    elif card.weights:
        origin = "shipped"
    else:
        origin = str(weights)
    return {
        "name": card.name,
        "random_init": weights is None,
        "weights": origin,
        "input_hw": list(card.input_hw),
        "image_sizes_hw": image_sizes_hw,
        "gflop_per_image": gflop_per_image(card),
    }


def bench_variant(
    card: Card, settings: dict[str, Any], peaks: dict | None, work: Path, say: Say
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every cell of one variant."""
    from xdepth.bench.cells import VariantRun, artifact_cells, bench_images
    from xdepth.bench.peers import benchmark_app_cell, compile_cell, peer_cells
    from xdepth.export.fidelity import reference
    from xdepth.export.load import load_model

    weights = bench_weights(card, settings["weights"])
    count = settings["images"]
    say(f"{card.name}: {count} held-out scenes, landscape, portrait and square")
    paths, images = bench_images(work / card.name / "images", count, max(card.input_hw))
    loaded = load_model(card.name, weights=weights, random_init=weights is None)
    info = variant_info(card, weights, images.description["sizes_hw"])
    say(f"{card.name}: fp32 reference, {info['gflop_per_image']} GFLOP per image")
    # Aspect-keeping variants: each image at its own size, as the reference recipe does.
    fixed_hw = None if card.preprocess.keep_aspect_ratio else card.input_hw
    ref = reference(loaded, card.preprocess, fixed_hw, images)
    info["reference_accuracy"] = ref.truth
    run = VariantRun(info, paths, images, ref, peaks, work / card.name)
    cells = _guarded(run, "peers", lambda: peer_cells(run, loaded, settings, say), say)
    for cell_name in settings["formats"]:
        fmt, precision = cell_name.split(":")

        def measure(fmt: str = fmt, precision: str = precision) -> list[dict[str, Any]]:
            folder = Path(settings["artifacts_dir"])
            size = settings["calibration_size"]
            artifact = ensure_artifact(card, fmt, precision, weights, folder, size, say)
            found = artifact_cells(run, artifact, fmt, precision, settings, say)
            if fmt == "openvino" and "benchmark_app" in settings["peers"]:
                say(f"{card.name} {fmt}:{precision}: benchmark_app")
                ran = found[0]["effective_precision"] if found else None
                found.append(benchmark_app_cell(run, artifact, precision, settings, ran))
            return found

        cells += _guarded(run, cell_name, measure, say)
    if "compile" in settings["peers"] and "model-only" in settings["modes"]:
        say(f"{card.name}: torch.compile bf16 (compiling takes a while)")
        cells += _guarded(run, "compile", lambda: [compile_cell(run, loaded, settings)], say)
    return info, cells


def _guarded(run: Any, what: str, fn: Callable[[], list], say: Say) -> list[dict[str, Any]]:
    """A failing cell is recorded with its error; the rest of the matrix still runs."""
    try:
        return fn()
    except EXPECTED_ERRORS as exc:
        say(f"{run.info['name']} {what}: failed: {type(exc).__name__}: {exc}")
        fmt, _, precision = what.partition(":")
        return [
            failed_cell(
                run.info,
                exc,
                contender="xdepth",
                fmt=fmt,
                precision=precision or "-",
                mode="model-only",
            )
        ]


def run_suite(
    settings: dict[str, Any], command: str, results_root: Path | None, say: Say
) -> dict[str, Any]:
    """Run the matrix; write JSON, CSV and plot after each variant; return the payload."""
    from xdepth.bench.ceiling import best_of, matmul_peaks
    from xdepth.bench.fastest import fastest_precisions
    from xdepth.bench.report import write_companions
    from xdepth.bench.table import benchmark_app_ratios

    if settings["threads"]:
        import torch

        torch.set_num_threads(settings["threads"])
    cards = [get_card(n) for n in settings["variants"]] if settings["variants"] else real_cards()
    payload: dict[str, Any] = {
        "suite": SUITE,
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "environment": environment(settings["threads"]),
        "settings": settings,
        "skipped": settings.get("skipped", []),
        "peaks": None,
        "variants": {},
        "cells": [],
        "vs_benchmark_app": [],
    }
    for what in payload["skipped"]:
        say(f"skipped: {what}")
    if settings["ceiling"]:
        say("matmul peaks on this CPU's native kernels (fp32, bf16, int8)")
        payload["peaks"] = peaks = matmul_peaks(settings["threads"])
        for key, value in peaks["tflops"].items():
            say(f"peak {key}: {'-' if value is None else value} ({peaks['method'][key]})")
    with tempfile.TemporaryDirectory(prefix="xdepth-bench-") as tmp:
        for card in cards:
            info, cells = bench_variant(card, settings, payload["peaks"], Path(tmp), say)
            payload["variants"][card.name] = info
            payload["cells"] += cells
            payload["vs_benchmark_app"] = benchmark_app_ratios(payload["cells"])
            payload["fastest"] = fastest_precisions(payload["cells"])
            path = write_result(settings["name"], payload, results_root)
            write_companions(path, payload, plot=settings["plot"])
            say(f"wrote {path} (+ .csv{', -pareto.png' if settings['plot'] else ''})")
        if settings["ceiling"]:
            say("matmul peaks again, after the cells (the faster of the two counts)")
            payload["peaks"] = best_of(payload["peaks"], matmul_peaks(settings["threads"]))
            payload["cells"] = [with_share(cell, payload["peaks"]) for cell in payload["cells"]]
            path = write_result(settings["name"], payload, results_root)
            write_companions(path, payload, plot=settings["plot"])
    return payload


def main_from_args(args: argparse.Namespace, command: str) -> int:
    """Run what the parsed options ask; `command` is recorded as typed."""
    settings = settings_from_args(args)
    settings["name"] = args.name or ("bench-quick" if args.quick else "bench")
    settings["artifacts_dir"] = str(args.artifacts_dir or DEFAULT_ARTIFACTS_DIR)
    settings["plot"] = not args.no_plot
    root = Path(args.results_dir) if args.results_dir else None
    payload = run_suite(settings, command, root, _say)
    from xdepth.bench.fastest import fastest_lines
    from xdepth.bench.table import summary_lines

    print("\n".join(summary_lines(payload["cells"])))
    print("\n".join(fastest_lines(payload.get("fastest") or {})))
    for what in payload["skipped"]:
        print(f"skipped: {what}")
    return 0


def _say(message: str) -> None:
    print(f"xdepth bench: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xdepth.bench.suite")
    add_bench_arguments(parser)
    shown = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(shown)
    return main_from_args(args, shlex.join(["python", "-m", "xdepth.bench.suite", *shown]))


if __name__ == "__main__":
    sys.exit(main())
