"""`xdepth demo`: the embedded model on held-out synthetic scenes, with measured accuracy.

The scenes come with ground truth, so the demo reports how good the clip is (mask IoU) and
how good the depth is (delta1 and AbsRel after scale-and-shift alignment in inverse depth,
capped to each scene's true depth range as MiDaS's evaluation does: xdepth.metrics), not
only speed.
By default the embedded model, xdepth-tiny, is exported once to an OpenVINO int8 artifact
(cached, keyed by the weights' sha256) and run on the engine, as any artifact would be.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xdepth.api import DepthEngine
from xdepth.errors import XDepthError
from xdepth.metrics import depth_metrics, mask_iou
from xdepth.outputs import DepthResult
from xdepth.post import colorize, composite_color, encode_png, write_atomic
from xdepth.registry import DEFAULT_VARIANT, get_card
from xdepth.resume import file_sha256
from xdepth.scenes import HELD_OUT_BASE_SEED, make_scenes
from xdepth.settings import make_settings
from xdepth.weights import WEIGHT_FILES, find_weights

DEMO_SIZE_PX = 256
DEMO_PRECISION = "int8"


def artifacts_dir() -> Path:
    """$XDEPTH_ARTIFACTS, else ~/.cache/xdepth/artifacts: artifacts xdepth exports itself."""
    env = os.environ.get("XDEPTH_ARTIFACTS")
    return Path(env) if env else Path.home() / ".cache" / "xdepth" / "artifacts"


def demo_artifact(
    variant: str = DEFAULT_VARIANT,
    precision: str = DEMO_PRECISION,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The variant's OpenVINO artifact in the cache, exported on first use."""
    card = get_card(variant)
    weights_dir = find_weights(card)
    weights_file = next(weights_dir / n for n in WEIGHT_FILES if (weights_dir / n).is_file())
    key = file_sha256(weights_file)[:12]
    target = artifacts_dir() / f"{card.name}-openvino-{precision}-{key}"
    if (target / "manifest.json").is_file():
        return target
    try:
        from xdepth.export.artifact import export
    except ImportError as exc:
        raise XDepthError(
            f"exporting {card.name} on first use needs xdepth[export] (torch, nncf: {exc}); "
            f"or pass --artifact DIR"
        ) from None
    if progress:
        progress(f"exporting {card.name} to OpenVINO {precision} (first use only): {target}")
    export(
        card.name,
        target,
        weights=weights_dir,
        fmt="openvino",
        precision=precision,
        # The demo scores the artifact against ground truth and prints it, so a weak
        # quantization shows in its figures instead of stopping the first run.
        fidelity_floor=0.0,
        progress=progress,
    )
    return target


def demo_engine(
    args: argparse.Namespace, progress: Callable[[str], None] | None = None
) -> DepthEngine:
    """--artifact, the reference (--variant/--weights/--random-init), or the cached export."""
    from xdepth.cli_options import open_model

    settings = make_settings("default")
    if args.artifact or args.variant or args.weights or args.random_init:
        return DepthEngine(open_model(args), settings=settings)
    return DepthEngine(demo_artifact(progress=progress), settings=settings)


def contact_sheet(results: list[DepthResult]) -> np.ndarray:
    """One row per image: input | colour depth | clip on grey (images of one size)."""
    rows = []
    for result in results:
        on_grey = composite_color(result.image, result.mask, (128, 128, 128))
        depth_rgb = colorize(result.depth, result.settings.colormap)
        rows.append(np.concatenate([result.image, depth_rgb, on_grey], axis=1))
    return np.concatenate(rows, axis=0)


def run_demo(engine: DepthEngine, out: Path, count: int = 24) -> dict[str, object]:
    """Write per-scene outputs, a contact sheet and summary.json; return the summary."""
    if count < 1:
        raise XDepthError(f"--count must be at least 1, got {count}")
    scenes = make_scenes(count, HELD_OUT_BASE_SEED, DEMO_SIZE_PX, DEMO_SIZE_PX)
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    results, per_image = [], []
    busy_before = engine.inference.clock.seconds
    start = time.perf_counter()
    for scene, result in zip(scenes, engine.map([s.rgb for s in scenes]), strict=True):
        name = f"scene-{scene.seed - HELD_OUT_BASE_SEED:03d}"
        write_atomic(out / "inputs" / f"{name}.png", encode_png(scene.rgb))
        for suffix, data in result.files().items():
            write_atomic(out / f"{name}.{suffix}", data)
        scores = depth_metrics(result.depth, scene.depth_m)
        per_image.append(
            {"image": name, "seed": scene.seed, "mask_iou": mask_iou(result.mask, scene.mask)}
            | scores
        )
        results.append(result)
    seconds = time.perf_counter() - start
    model_seconds = engine.inference.clock.seconds - busy_before
    write_atomic(out / "contact_sheet.png", encode_png(contact_sheet(results)))

    def mean(key: str) -> float:
        return round(float(np.mean([p[key] for p in per_image])), 4)

    summary: dict[str, object] = {
        "images": len(scenes),
        "mask_iou_mean": mean("mask_iou"),
        "delta1_mean": mean("delta1"),
        "abs_rel_mean": mean("abs_rel"),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(scenes) / seconds, 3),
        "model_images_per_s": round(len(scenes) / model_seconds, 3) if model_seconds else None,
        "model": engine.inference.label,
        "backend": engine.inference.name,
        "scenes": {"seeds": [s.seed for s in scenes], "size_px": DEMO_SIZE_PX},
        "threshold": engine.settings.threshold,
        "per_image": per_image,
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2).encode())
    return summary
