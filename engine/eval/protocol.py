"""The zero-shot evaluation protocol of the depth papers, one image at a time (numpy only).

For each image, at the ground truth's resolution (the prediction upsampled as the engine
upsamples it), following Marigold's ``script/eval/eval.py`` and ``src/util/alignment.py``
(github.com/prs-eth/Marigold), which reproduce the MiDaS, DPT and Depth Anything tables:

1. valid pixels: ground truth strictly inside the set's range (``min < d < max``), inside
   the set's crop, and inside its validity mask (DIODE);
2. alignment, by least squares over the valid pixels, in the space the model predicts:
   disparity (``1 / depth``) for relative inverse-depth models (MiDaS, DPT, Depth
   Anything), depth for depth models, none for metric models (Depth Pro); scale and shift,
   or scale only when asked. On images larger than ``max_align_px`` a side, the fit sees a
   nearest-neighbour subsample no larger than that (Marigold's ``alignment_max_res``), and
   the fitted scale and shift apply to the full image;
3. aligned disparity is floored at 1e-3 (Marigold's guard against zero disparity), turned
   into depth, clipped to the set's range and to at least 1e-6;
4. AbsRel, delta1-3, RMSE and log10 (`xdepth.eval.metrics.depth_errors`) over the valid pixels;
   the set's figure is the mean over images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from xdepth.errors import XDepthError
from xdepth.eval.datasets import DatasetSpec
from xdepth.eval.metrics import depth_errors, fit_scale_shift

METRICS = ("abs_rel", "delta1", "delta2", "delta3", "rmse", "log10")
ALIGNMENTS = ("auto", "scale-shift", "scale", "none")
SPACES = ("auto", "disparity", "depth")
MIN_DISPARITY = 1e-3  # Marigold eval.py: np.clip(disparity_pred, a_min=1e-3)
MIN_DEPTH_SCORED = 1e-6  # Marigold eval.py: np.clip(depth_pred, a_min=1e-6)
DEFAULT_ALIGN_PX = 1024

# Crops. eigen-nyu: Marigold nyu_dataset.py, eval_mask[45:471, 41:601] at NYU's 480 x 640
# (Eigen et al., NIPS 2014), applied as those indices. garg and eigen-kitti: fractions
# (top, bottom, left, right) of the ground truth's height and width, in Marigold
# kitti_dataset.py after BTS's bts_eval.py (Garg et al., ECCV 2016; Eigen et al., NIPS 2014).
NYU_EIGEN_ROWS, NYU_EIGEN_COLS = (45, 471), (41, 601)
CROP_FRACTIONS: dict[str, tuple[float, float, float, float]] = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen-kitti": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}
CROPS: dict[str, str] = {
    "eigen-nyu": "rows 45:471, cols 41:601 (Eigen crop of NYU's 480 x 640)",
} | {
    name: f"rows int({t} H):int({b} H), cols int({x0} W):int({x1} W)"
    for name, (t, b, x0, x1) in CROP_FRACTIONS.items()
}


class ProtocolError(XDepthError):
    """An alignment, space or crop that does not exist."""


@dataclass(frozen=True)
class Protocol:
    """Everything that decides a figure besides the model and the data."""

    dataset: str
    min_depth_m: float
    max_depth_m: float
    crop: str | None
    alignment: str  # scale-shift | scale | none
    space: str  # disparity | depth
    max_align_px: int | None

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["max_depth_m"] = None if math.isinf(self.max_depth_m) else self.max_depth_m
        record["crop_rule"] = CROPS.get(self.crop or "", "none")
        return record


def make_protocol(
    spec: DatasetSpec,
    semantics: str,
    *,
    alignment: str = "auto",
    space: str = "auto",
    crop: str = "auto",
    max_align_px: int | None = DEFAULT_ALIGN_PX,
) -> Protocol:
    """The set's protocol for a model of `semantics` ("relative_inverse_depth" or
    "metric_depth_m"); "auto" picks what the model predicts, the rest forces a choice."""
    metric = semantics == "metric_depth_m"
    if alignment not in ALIGNMENTS:
        raise ProtocolError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {alignment!r}")
    if space not in SPACES:
        raise ProtocolError(f"alignment space must be one of {', '.join(SPACES)}, got {space!r}")
    if crop != "auto" and crop != "none" and crop not in CROPS:
        raise ProtocolError(f"crop must be auto, none or one of {', '.join(CROPS)}, got {crop!r}")
    if max_align_px is not None and max_align_px < 2:
        raise ProtocolError(f"alignment resolution must be at least 2 pixels, got {max_align_px}")
    return Protocol(
        dataset=spec.name,
        min_depth_m=spec.min_depth_m,
        max_depth_m=spec.max_depth_m,
        crop=spec.crop if crop == "auto" else (None if crop == "none" else crop),
        alignment=("none" if metric else "scale-shift") if alignment == "auto" else alignment,
        space=("depth" if metric else "disparity") if space == "auto" else space,
        max_align_px=max_align_px,
    )


def crop_mask(crop: str | None, hw: tuple[int, int]) -> np.ndarray:
    """True inside the crop (everywhere without one)."""
    h, w = hw
    if crop is None:
        return np.ones(hw, bool)
    mask = np.zeros(hw, bool)
    if crop == "eigen-nyu":
        mask[slice(*NYU_EIGEN_ROWS), slice(*NYU_EIGEN_COLS)] = True
    elif crop in CROP_FRACTIONS:
        top, bottom, left, right = CROP_FRACTIONS[crop]
        mask[int(top * h) : int(bottom * h), int(left * w) : int(right * w)] = True
    else:
        raise ProtocolError(f"unknown crop {crop!r}")
    return mask


def valid_mask(
    gt_depth_m: np.ndarray, protocol: Protocol, extra_mask: np.ndarray | None = None
) -> np.ndarray:
    """Pixels scored: ground truth strictly inside the range, in the crop and the mask."""
    gt = np.asarray(gt_depth_m, dtype=np.float64)
    valid = np.isfinite(gt) & (gt > protocol.min_depth_m) & (gt < protocol.max_depth_m)
    valid &= crop_mask(protocol.crop, gt.shape)
    if extra_mask is not None:
        valid &= np.asarray(extra_mask, bool)
    return valid


def _subsample(max_px: int | None, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Nearest-neighbour subsample so neither side exceeds `max_px` (torch's "nearest"
    with a scale factor: source index floor(i / f))."""
    h, w = arrays[0].shape
    factor = min(max_px / h, max_px / w) if max_px else 1.0
    if factor >= 1:
        return arrays
    rows = np.minimum(np.floor(np.arange(math.floor(h * factor)) / factor).astype(int), h - 1)
    cols = np.minimum(np.floor(np.arange(math.floor(w * factor)) / factor).astype(int), w - 1)
    return tuple(a[np.ix_(rows, cols)] for a in arrays)


def aligned_depth(
    pred_inv: np.ndarray, gt_depth_m: np.ndarray, valid: np.ndarray, protocol: Protocol
) -> tuple[np.ndarray, float, float]:
    """The prediction (the engine's inverse depth) as depth in metres after alignment and
    clipping (steps 2-3 of the module docstring), with the fitted scale and shift."""
    pred = np.asarray(pred_inv, dtype=np.float64)
    gt = np.asarray(gt_depth_m, dtype=np.float64)
    scale, shift = 1.0, 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if protocol.space == "disparity":
            pred_s, gt_s = pred, np.where(gt > 0, 1.0 / gt, 0.0)
            fit = valid & (gt > 0) & (pred > 0)
        else:
            pred_s, gt_s = np.where(pred > 0, 1.0 / pred, np.inf), gt
            fit = valid
        if protocol.alignment != "none":
            p, g, m = _subsample(protocol.max_align_px, pred_s, gt_s, fit)
            try:
                scale, shift = fit_scale_shift(p, g, m, shift=protocol.alignment == "scale-shift")
            except ValueError as exc:
                raise ValueError(f"alignment: {exc}") from None
        aligned = scale * pred_s + shift
        if protocol.space == "disparity":
            depth = 1.0 / np.maximum(aligned, MIN_DISPARITY)
        else:
            depth = aligned
    depth = np.clip(depth, protocol.min_depth_m, protocol.max_depth_m)
    return np.maximum(depth, MIN_DEPTH_SCORED), scale, shift


def score_image(
    pred_inv: np.ndarray,
    gt_depth_m: np.ndarray,
    protocol: Protocol,
    extra_mask: np.ndarray | None = None,
) -> dict[str, float]:
    """One image's metrics (and its scale, shift and number of valid pixels)."""
    if np.shape(pred_inv) != np.shape(gt_depth_m):
        raise ValueError(f"prediction {np.shape(pred_inv)} vs ground truth {np.shape(gt_depth_m)}")
    valid = valid_mask(gt_depth_m, protocol, extra_mask)
    count = int(valid.sum())
    if count == 0:
        raise ValueError("no valid ground-truth pixels (range, crop and mask exclude all)")
    depth, scale, shift = aligned_depth(pred_inv, gt_depth_m, valid, protocol)
    errors = depth_errors(depth, gt_depth_m, valid)
    return errors | {"scale": scale, "shift": shift, "valid_px": count}


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each metric averaged over images (the tables' figure)."""
    if not rows:
        return {}
    return {name: float(np.mean([float(row[name]) for row in rows])) for name in METRICS}
