"""`xdepth demo`: the embedded model on held-out synthetic scenes, with measured accuracy.

The scenes come with ground truth, so the demo reports how good the clip is (mask IoU) and
how good the depth is (delta1 and AbsRel after scale-and-shift alignment in inverse depth,
capped to each scene's true depth range as MiDaS's evaluation does: xdepth.eval.metrics), not
only speed. By default the embedded model, xdepth-tiny, is exported once to an OpenVINO
artifact at the precision that is fastest on this CPU (xdepth.model.cache, as `xdepth run`
does) and run on the engine, as any artifact would be.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from xdepth.api import DepthEngine
from xdepth.errors import XDepthError
from xdepth.eval.metrics import depth_metrics, mask_iou
from xdepth.eval.scenes import HELD_OUT_BASE_SEED, make_scene, photo_hw
from xdepth.outputs.result import DepthResult
from xdepth.outputs.settings import make_settings
from xdepth.post import colorize, composite_color, encode_png, write_atomic

# Scenes are photo-shaped (landscape 16:9, portrait 3:4, square) around this side.
DEMO_SIZE_PX = 256
SHEET_ROW_PX = 192


def demo_engine(args: argparse.Namespace) -> DepthEngine:
    """The model the options name, as `xdepth run` opens it: --artifact, --reference, or
    the variant (default: the embedded model) exported on first use at --precision."""
    from xdepth.cli.options import open_model

    return DepthEngine(open_model(args), settings=make_settings("default"))


def contact_sheet(results: list[DepthResult], row_height_px: int = SHEET_ROW_PX) -> np.ndarray:
    """One row per image: input | colour depth | clip on grey, each row `row_height_px`
    high (aspect kept), rows padded with white to the widest."""
    rows = []
    for result in results:
        on_grey = composite_color(result.image, result.mask, (128, 128, 128))
        depth_rgb = colorize(result.depth, result.settings.colormap)
        row = np.concatenate([result.image, depth_rgb, on_grey], axis=1)
        width_px = max(1, round(row.shape[1] * row_height_px / row.shape[0]))
        rows.append(cv2.resize(row, (width_px, row_height_px), interpolation=cv2.INTER_AREA))
    widest = max(row.shape[1] for row in rows)
    padded = [
        np.pad(r, ((0, 0), (0, widest - r.shape[1]), (0, 0)), constant_values=255) for r in rows
    ]
    return np.concatenate(padded, axis=0)


def run_demo(engine: DepthEngine, out: Path, count: int = 24) -> dict[str, object]:
    """Write per-scene outputs, a contact sheet and summary.json; return the summary."""
    if count < 1:
        raise XDepthError(f"--count must be at least 1, got {count}")
    scenes = [make_scene(HELD_OUT_BASE_SEED + i, *photo_hw(i, DEMO_SIZE_PX)) for i in range(count)]
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
        "scenes": {
            "seeds": [s.seed for s in scenes],
            "sizes_hw": [list(s.rgb.shape[:2]) for s in scenes],
        },
        "threshold": engine.settings.threshold,
        "per_image": per_image,
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2).encode())
    return summary
