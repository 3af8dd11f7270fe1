"""Flicker and accuracy of `--temporal align` against `none` on synthetic clips.

Each clip of `xdepth.eval.clips` (pan, dolly, approaching object, cut) is rendered for
several seeds, written losslessly, and run through `DepthEngine` once per mode; the
scores are `score_clip`'s (flicker of the 16-bit depth output on pixels whose true depth
held, at fixed pixels and along the motion; mean delta1 and mask IoU; the share of pixels
the running range clips, which cannot flicker). Reported per clip kind: both flickers and
their ratio, the change of delta1 and IoU with its standard error over the seeds, and for
camera moves the floor: the fixed-pixel flicker of the align output made perfectly
consistent along the motion (each scene point's mean over its shot), against `none`'s.
No method that keeps each scene point's value goes below it with this model: what it
leaves is the model's error that moves with the image content.

    python -m xdepth.bench.temporal [--seeds 8] [--size 64x96] [--precision f32]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from xdepth.api import DepthEngine
from xdepth.bench.common import write_result
from xdepth.eval.clips import CLIP_KINDS, make_clip, score_clip, write_clip
from xdepth.model.cache import cached_artifact

MODES = ("none", "align")


def measure(artifact: Path, seeds: int, hw: tuple[int, int]) -> dict[str, dict[str, float]]:
    engines = {mode: DepthEngine(artifact, temporal=mode) for mode in MODES}
    found: dict[str, list[dict[str, dict[str, float]]]] = {kind: [] for kind in CLIP_KINDS}
    with tempfile.TemporaryDirectory() as folder:
        for kind in CLIP_KINDS:
            for seed in range(seeds):
                clip = make_clip(kind, seed, height=hw[0], width=hw[1])
                path = write_clip(clip.rgb, Path(folder) / f"{kind}{seed}.mkv")
                found[kind].append(
                    {
                        mode: score_clip(list(e.map([path])), clip, floor=mode == "align")
                        for mode, e in engines.items()
                    }
                )
    return {kind: _summary(runs) for kind, runs in found.items()}


def _summary(runs: list[dict[str, dict[str, float]]]) -> dict[str, float]:
    def column(mode: str, metric: str) -> np.ndarray:
        return np.array([run[mode][metric] for run in runs])

    row = {
        f"{m}_{mode}": float(column(mode, m).mean())
        for m in ("flicker", "flicker_along", "delta1", "mask_iou")
        for mode in MODES
    }
    row["clipped_align"] = float(column("align", "clipped").mean())
    row["flicker_ratio"] = row["flicker_align"] / row["flicker_none"]
    row["flicker_along_ratio"] = row["flicker_along_align"] / row["flicker_along_none"]
    if "flicker_floor" in runs[0]["align"]:  # a camera move
        row["flicker_floor_align"] = float(column("align", "flicker_floor").mean())
        row["flicker_floor_ratio"] = row["flicker_floor_align"] / row["flicker_none"]
    for metric in ("delta1", "mask_iou"):
        change = column("align", metric) - column("none", metric)
        row[f"{metric}_change"] = float(change.mean())
        row[f"{metric}_change_se"] = (
            float(change.std(ddof=1) / np.sqrt(len(change))) if len(change) > 1 else 0.0
        )
    return row


def _floor(row: dict[str, float]) -> str:
    ratio = row.get("flicker_floor_ratio")
    return "" if ratio is None else f" consistent along the motion at best {ratio:.2f}x;"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xdepth.bench.temporal", description=__doc__)
    parser.add_argument("--variant", default="xdepth-tiny")
    parser.add_argument("--precision", default="f32")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--size", default="64x96", help="clip height x width (default 64x96)")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))
    artifact = cached_artifact(args.variant, precision=args.precision)
    rows = measure(artifact, args.seeds, (height, width))
    for kind, row in rows.items():
        print(
            f"{kind:9s} flicker {row['flicker_none']:.4f} -> {row['flicker_align']:.4f} "
            f"({row['flicker_ratio']:.2f}x;{_floor(row)} along the motion "
            f"{row['flicker_along_ratio']:.2f}x)  delta1 {row['delta1_none']:.3f} "
            f"{row['delta1_change']:+.3f}±{row['delta1_change_se']:.3f}  mask IoU "
            f"{row['mask_iou_none']:.3f} {row['mask_iou_change']:+.3f}"
            f"±{row['mask_iou_change_se']:.3f}  clipped {100 * row['clipped_align']:.1f}%"
        )
    payload = {
        "variant": args.variant,
        "precision": args.precision,
        "clip": {"height": height, "width": width, "frames": 24, "seeds": args.seeds},
        "kinds": rows,
    }
    print(write_result(f"temporal-{height}x{width}", payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
