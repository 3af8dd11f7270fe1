"""`xdepth demo`: the embedded model on held-out synthetic scenes, with measured accuracy.

The scenes come with ground truth, so the demo reports how good the clip is (mask IoU) and
how good the depth is (delta1 and AbsRel after scale-and-shift alignment), not only speed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from xdepth.metrics import depth_metrics, mask_iou
from xdepth.outputs import ClipSettings, contact_sheet, encode_outputs
from xdepth.post.encoders import encode_png, write_atomic
from xdepth.runner import Backend, process
from xdepth.scenes import HELD_OUT_BASE_SEED, make_scenes

DEMO_SIZE_PX = 256


def run_demo(
    backend: Backend,
    out: Path,
    count: int = 24,
    settings: ClipSettings | None = None,
    model_label: str = "",
) -> dict[str, object]:
    """Write per-scene outputs, a contact sheet and summary.json; return the summary."""
    if count < 1:
        raise ValueError(f"--count must be at least 1, got {count}")
    settings = settings or ClipSettings()
    scenes = make_scenes(count, HELD_OUT_BASE_SEED, DEMO_SIZE_PX, DEMO_SIZE_PX)
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    rows, per_image = [], []
    start = time.perf_counter()
    for scene in scenes:
        result = process(backend, scene.rgb, settings)
        name = f"scene-{scene.seed - HELD_OUT_BASE_SEED:03d}"
        write_atomic(out / "inputs" / f"{name}.png", encode_png(scene.rgb))
        for suffix, data in encode_outputs(result, settings).items():
            write_atomic(out / f"{name}.{suffix}", data)
        scores = depth_metrics(result.depth, scene.depth_m)
        per_image.append(
            {"image": name, "seed": scene.seed, "mask_iou": mask_iou(result.mask, scene.mask)}
            | scores
        )
        rows.append(result)
    seconds = time.perf_counter() - start
    write_atomic(out / "contact_sheet.png", encode_png(contact_sheet(rows, settings)))

    def mean(key: str) -> float:
        return round(float(np.mean([p[key] for p in per_image])), 4)

    summary: dict[str, object] = {
        "images": len(scenes),
        "mask_iou_mean": mean("mask_iou"),
        "delta1_mean": mean("delta1"),
        "abs_rel_mean": mean("abs_rel"),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(scenes) / seconds, 3),
        "model": model_label or getattr(backend, "label", backend.name),
        "backend": backend.name,
        "scenes": {"seeds": [s.seed for s in scenes], "size_px": DEMO_SIZE_PX},
        "threshold": settings.threshold,
        "per_image": per_image,
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2).encode())
    return summary
