"""How close an artifact is to the fp32 model, and to ground truth, on held-out images.

The artifact runs through the engine (xdepth.model.backends: host resize, compiled graph, cv2
bicubic upsample); the reference is transformers' fp32 eager model on the same host
preprocessing, upsampled with torch's bicubic (align_corners=False), as the seed recipe
does. Scores use xdepth.eval.metrics: delta1 and AbsRel after scale-shift alignment in inverse
depth, the seed recipe's mask (max-scaled uint8 > 45) IoU, and the raw relative error
``max |artifact - reference| / max |reference|``, which is what f32 parity is held to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from xdepth.eval.metrics import depth_metrics, inv_depth_agreement, mask_iou, recipe_mask
from xdepth.export.calibration import ImageSet
from xdepth.export.load import LoadedModel
from xdepth.export.wrappers import InverseDepth
from xdepth.model.cards import Preprocess
from xdepth.model.preprocess import normalize

REFERENCE = (
    "transformers fp32 eager on xdepth.model.preprocess inputs (the card's image processor, "
    "reproduced), torch bicubic upsample (align_corners=False)"
)
F32_MAX_REL_ERROR = 1e-4
DEFAULT_DELTA1_FLOORS = {"bf16": 0.99, "int8": 0.97}


class Predictor(Protocol):
    def predict_many(self, images_u8: list[np.ndarray]) -> list[np.ndarray]: ...


@torch.no_grad()
def model_outputs(
    loaded: LoadedModel, pre: Preprocess, inputs_u8: list[np.ndarray]
) -> list[np.ndarray]:
    """fp32 inverse depth h x w of each uint8 input already at its model input size."""
    graph = InverseDepth(loaded.model.float().eval())
    return [graph(torch.from_numpy(normalize(x, pre)))[0].numpy() for x in inputs_u8]


@torch.no_grad()
def upsample(depth: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """The seed recipe's upsample: torch bicubic, align_corners=False."""
    tensor = torch.from_numpy(np.ascontiguousarray(depth, np.float32))[None, None]
    out = torch.nn.functional.interpolate(tensor, size=size_hw, mode="bicubic", align_corners=False)
    return out[0, 0].numpy()


@dataclass
class Reference:
    """The fp32 model on an image set: inputs and outputs at model size, and upsampled."""

    inputs_u8: list[np.ndarray]  # h x w x 3 each, host-resized as the engine resizes
    outputs: list[np.ndarray]  # h x w inverse depth each, at model resolution
    predictions: list[np.ndarray]  # each at its image's size (the seed recipe's upsample)
    truth: dict[str, float] | None  # the fp32 model's own scores against ground truth


def reference(
    loaded: LoadedModel, pre: Preprocess, input_hw: tuple[int, int] | None, images: ImageSet
) -> Reference:
    """Run the fp32 reference on every image; score it against truth when weights are real.

    `input_hw` None: each image at the size the card's preprocessing gives it, as
    transformers' image processor does (aspect-keeping variants)."""
    inputs = images.model_inputs(pre, input_hw)
    outputs = model_outputs(loaded, pre, inputs)
    preds = [upsample(d, im.shape[:2]) for d, im in zip(outputs, images.images, strict=True)]
    with_truth = bool(images.scenes) and not loaded.random_init
    truth = ground_truth_scores(preds, images) if with_truth else None
    return Reference(inputs, outputs, preds, truth)


def max_rel_error(outputs: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> float:
    """Largest ``max |out - ref| / max |ref|`` over a batch of maps."""
    errors = [
        float(np.abs(o.astype(np.float64) - r).max() / np.abs(r).max())
        for o, r in zip(outputs, references, strict=True)
    ]
    return max(errors)


def _recipe_mask_or_empty(inv_depth: np.ndarray) -> np.ndarray:
    """The recipe's mask; a map with no positive value (e.g. all zero) has no foreground."""
    if not np.nanmax(inv_depth) > 0:
        return np.zeros(inv_depth.shape, bool)
    return recipe_mask(inv_depth)


def _mask_iou(pred: np.ndarray, ref: np.ndarray) -> float | None:
    """IoU of the seed recipe's masks; None when the reference has no positive value."""
    if not np.nanmax(ref) > 0:
        return None
    return mask_iou(_recipe_mask_or_empty(pred), recipe_mask(ref))


def ground_truth_scores(predictions: list[np.ndarray], images: ImageSet) -> dict[str, float]:
    """Mean delta1 / AbsRel (scale-shift aligned) and mask IoU against the scenes' truth."""
    d1, rel, iou = [], [], []
    for pred, scene in zip(predictions, images.scenes, strict=True):
        scores = depth_metrics(pred, scene.depth_m)
        d1.append(scores["delta1"])
        rel.append(scores["abs_rel"])
        iou.append(mask_iou(_recipe_mask_or_empty(pred), scene.mask))
    return {
        "delta1": float(np.mean(d1)),
        "abs_rel": float(np.mean(rel)),
        "mask_iou": float(np.mean(iou)),
        "mask_iou_min": float(np.min(iou)),
    }


def measure(
    predictor: Predictor, images: ImageSet, ref: Reference
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Scores of `predictor` against the reference (and the truth); also its predictions."""
    preds = predictor.predict_many(images.images)
    rel_max, rel_mean, d1, abs_rel, ious = [], [], [], [], []
    for pred, target in zip(preds, ref.predictions, strict=True):
        peak = float(np.abs(target).max())
        diff = np.abs(pred.astype(np.float64) - target)
        rel_max.append(float(diff.max()) / peak if peak > 0 else float("inf"))
        rel_mean.append(float(diff.mean()) / peak if peak > 0 else float("inf"))
        agreement = inv_depth_agreement(pred, target)
        d1.append(agreement["delta1"])
        abs_rel.append(agreement["abs_rel"])
        ious.append(_mask_iou(pred, target))
    known_ious = [v for v in ious if v is not None]
    vs_reference = {
        "delta1": float(np.mean(d1)),
        "delta1_min": float(np.min(d1)),
        "abs_rel": float(np.mean(abs_rel)),
        "mask_iou": float(np.mean(known_ious)) if known_ious else None,
        "mask_iou_min": float(np.min(known_ious)) if known_ious else None,
        "max_rel_error": float(np.max(rel_max)),
        "mean_rel_error": float(np.mean(rel_mean)),
    }
    result: dict[str, Any] = {"vs_reference": vs_reference}
    if ref.truth is not None:
        result["vs_ground_truth"] = ground_truth_scores(preds, images)
    return result, preds


def floors(precision: str, delta1_floor: float | None) -> dict[str, float]:
    """The limits an artifact must meet: f32 by relative error, bf16/int8 by delta1."""
    limits: dict[str, float] = {}
    if precision == "f32":
        limits["max_rel_error"] = F32_MAX_REL_ERROR
    elif delta1_floor is None:
        limits["delta1"] = DEFAULT_DELTA1_FLOORS[precision]
    if delta1_floor is not None:
        limits["delta1"] = delta1_floor
    return limits


def failures(vs_reference: dict[str, Any], limits: dict[str, float]) -> list[str]:
    """Human-readable reasons the scores miss the limits (empty when they meet them)."""
    out = []
    if "max_rel_error" in limits and vs_reference["max_rel_error"] > limits["max_rel_error"]:
        out.append(
            f"max relative error {vs_reference['max_rel_error']:.3g} > {limits['max_rel_error']:g}"
        )
    if "delta1" in limits and vs_reference["delta1"] < limits["delta1"]:
        out.append(f"delta1 {vs_reference['delta1']:.4f} < {limits['delta1']:g}")
    return out
