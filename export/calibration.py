"""Image sets for export: calibration (int8) and fidelity evaluation, never overlapping.

By default both come from xdepth.eval.scenes' held-out range (never seen in training), from two
disjoint seed blocks: fidelity uses the first held-out scenes (the ones `xdepth demo`
scores), calibration a block 50 million seeds further on. Scenes are rendered at the shapes
photos come in (xdepth.eval.scenes.PHOTO_SHAPES: landscape 16:9, portrait 3:4 and square, at
several sizes around the model's input), so every image goes through the host resize a
photo does, and aspect-keeping models see every aspect ratio they will meet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xdepth.errors import XDepthError
from xdepth.eval.scenes import HELD_OUT_BASE_SEED, HELD_OUT_SEEDS, Scene, make_scene, photo_hw
from xdepth.job.imageio import load_rgb
from xdepth.job.inputs import collect_inputs
from xdepth.model.cards import Preprocess
from xdepth.model.preprocess import resize_for_model

FIDELITY_FIRST_SEED = HELD_OUT_BASE_SEED
CALIBRATION_FIRST_SEED = HELD_OUT_BASE_SEED + 50_000_000
DEFAULT_CALIBRATION_SIZE = 64
DEFAULT_FIDELITY_IMAGES = 8
_MAX_SEEDS_PER_BLOCK = CALIBRATION_FIRST_SEED - FIDELITY_FIRST_SEED


class CalibrationError(XDepthError, ValueError):
    """The calibration images cannot be used as asked."""


@dataclass
class ImageSet:
    """Images at their original size, with ground truth when they are synthetic scenes."""

    images: list[np.ndarray]
    description: dict[str, Any]
    scenes: list[Scene] = field(default_factory=list)

    def model_inputs(self, pre: Preprocess, input_hw: tuple[int, int] | None) -> list[np.ndarray]:
        """uint8 h x w x 3 model inputs, resized exactly as the engine does: to `input_hw`,
        or (None) each to the size the card's preprocessing gives it."""
        return [resize_for_model(image, pre, size_hw=input_hw) for image in self.images]


def synthetic_set(first_seed: int, count: int, input_hw: tuple[int, int], purpose: str) -> ImageSet:
    """`count` held-out scenes from `first_seed` on, in the shapes photos come in."""
    if count < 1:
        raise CalibrationError(f"{purpose}: need at least 1 image, got {count}")
    if count > _MAX_SEEDS_PER_BLOCK or first_seed + count > HELD_OUT_SEEDS.stop:
        raise CalibrationError(f"{purpose}: {count} scenes would leave the held-out seed range")
    sizes = [photo_hw(i, max(input_hw)) for i in range(count)]
    scenes = [make_scene(first_seed + i, *hw) for i, hw in enumerate(sizes)]
    description = {
        "source": "xdepth.eval.scenes (held-out seeds)",
        "first_seed": first_seed,
        "count": count,
        "sizes_hw": [list(hw) for hw in sizes],
    }
    return ImageSet([s.rgb for s in scenes], description, scenes)


def fidelity_set(input_hw: tuple[int, int], count: int = DEFAULT_FIDELITY_IMAGES) -> ImageSet:
    return synthetic_set(FIDELITY_FIRST_SEED, count, input_hw, "fidelity images")


def calibration_set(
    input_hw: tuple[int, int],
    count: int = DEFAULT_CALIBRATION_SIZE,
    folder: str | Path | None = None,
) -> ImageSet:
    """The calibration images: a folder's first `count` images (sorted), or held-out scenes."""
    if folder is None:
        return synthetic_set(CALIBRATION_FIRST_SEED, count, input_hw, "calibration")
    if count < 1:
        raise CalibrationError(f"calibration size must be at least 1, got {count}")
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: calibration folder does not exist")
    items = collect_inputs([str(folder)])
    if len(items) < count:
        raise CalibrationError(
            f"{folder}: holds {len(items)} image files, fewer than the calibration size "
            f"{count}; add images or pass --calibration-size {max(len(items), 1)}"
        )
    chosen = items[:count]
    description = {
        "source": "folder",
        "folder": str(folder.resolve()),
        "count": count,
        "first_files": [str(item.rel) for item in chosen[:5]],
    }
    return ImageSet([load_rgb(item.path) for item in chosen], description)
