"""Accuracy metrics for relative inverse depth and masks (numpy only).

Relative-depth models (MiDaS, DPT) predict inverse depth up to an unknown scale and shift,
so predictions are scored as MiDaS's evaluation code does (``BadPixelMetric`` in
https://gist.github.com/ranftlr/a1c7a24ebb24ce0e2f2ace5bce917022, the NYU script the
github.com/isl-org/MiDaS authors published; DPT scores KITTI the same way):

1. align: least-squares scale and shift of the prediction to the reference in inverse
   depth (``compute_scale_and_shift`` there, `align_scale_shift` here);
2. cap: the aligned inverse depth is clamped so no predicted depth lies outside the
   reference's range. MiDaS floors it at ``disparity_cap = 1.0 / depth_cap``, the
   dataset's depth cap (10 m for NYU, 80 m for KITTI); synthetic scenes have no dataset
   cap, so here the cap is the reference's farthest valid depth in the image and, in the
   same way, the floor its nearest. Without the cap a fit that maps a few far pixels to
   zero or negative inverse depth makes them infinitely far, and those pixels alone
   decide the mean AbsRel;
3. score in depth (1 / capped inverse depth): delta1 and AbsRel over valid pixels.

The cap moves a predicted depth toward the reference's range, never past the pixel's own
reference value (which lies inside it), so delta1 can only rise or stay and AbsRel only
fall or stay. The same functions compare an artifact's output with the fp32 reference
model's, whose own range then sets the cap.
"""

from __future__ import annotations

import numpy as np

from xdepth.post.threshold import SEED_THRESHOLD_U8

# A reference inverse depth at or below this share of its maximum has no finite depth to
# score against (sky at infinity): `inv_depth_agreement` leaves such pixels out.
MIN_INV_DEPTH = 1e-6


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names}: shapes differ, {a.shape} vs {b.shape}")


def recipe_mask(inv_depth: np.ndarray, threshold_u8: int = SEED_THRESHOLD_U8) -> np.ndarray:
    """The seed recipe's foreground: ``(inv * 255 / inv.max()).astype(uint8) > threshold``.

    Computed as the recipe does (same dtype arithmetic), so ground truth and predictions
    are thresholded the same way. Negative values (bicubic overshoot of an upsampled
    prediction) are clipped to 0 first: inverse depth cannot be negative, and casting a
    negative float to uint8 is undefined in numpy.
    """
    inv = np.asarray(inv_depth)
    inv = np.maximum(inv, inv.dtype.type(0))
    peak = inv.max()
    if not np.isfinite(peak) or peak <= 0:
        raise ValueError(f"inverse depth needs a positive finite maximum, got {peak}")
    return (inv * 255 / peak).astype(np.uint8) > threshold_u8


def fit_scale_shift(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, *, shift: bool = True
) -> tuple[float, float]:
    """Least-squares ``s, t`` minimising ``|s * pred + t - gt|^2`` over `valid` finite pixels
    (``t = 0`` when ``shift`` is False: scale-only alignment)."""
    p64 = np.asarray(pred, dtype=np.float64)
    g64 = np.asarray(gt, dtype=np.float64)
    _check_same_shape(p64, g64, "fit_scale_shift(pred, gt)")
    keep = np.ones(p64.shape, bool) if valid is None else np.asarray(valid, bool)
    _check_same_shape(p64, keep, "fit_scale_shift(pred, valid)")
    keep = keep & np.isfinite(p64) & np.isfinite(g64)
    if keep.sum() < 2:
        raise ValueError("fit_scale_shift: fewer than 2 valid pixels")
    p, g = p64[keep], g64[keep]
    if not shift:
        return float(np.dot(p, g) / np.dot(p, p)), 0.0
    a = np.stack([p, np.ones_like(p)], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(a, g, rcond=None)
    return float(scale), float(offset)


def align_scale_shift(
    pred_inv: np.ndarray, gt_inv: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    """Least-squares ``s, t`` minimising ``|s * pred + t - gt|^2`` over `valid` pixels.

    Returns ``(s * pred_inv + t, s, t)`` over the whole image, in float64.
    """
    scale, shift = fit_scale_shift(pred_inv, gt_inv, valid)
    return scale * np.asarray(pred_inv, dtype=np.float64) + shift, scale, shift


def delta1(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Fraction of pixels with ``max(p / g, g / p) < 1.25``."""
    p, g = _valid_pair(pred_depth, gt_depth, valid, "delta1")
    return float(np.mean(np.maximum(p / g, g / p) < 1.25))


def abs_rel(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean of ``|p - g| / g``."""
    p, g = _valid_pair(pred_depth, gt_depth, valid, "abs_rel")
    return float(np.mean(np.abs(p - g) / g))


def depth_errors(
    pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray | None = None
) -> dict[str, float]:
    """The benchmark table's metrics of one image, over valid positive finite pixels.

    AbsRel ``mean(|p - g| / g)``, delta_k the share with ``max(p / g, g / p) < 1.25 ** k``,
    RMSE ``sqrt(mean((p - g) ** 2))`` (metres for metric ground truth) and log10
    ``mean(|log10 p - log10 g|)``: the definitions of Marigold's ``src/util/metric.py``
    (github.com/prs-eth/Marigold), which the depth papers' tables share.
    """
    p, g = _valid_pair(pred_depth, gt_depth, valid, "depth_errors")
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
    }


def _valid_pair(pred, gt, valid, name: str) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    _check_same_shape(p, g, f"{name}(pred, gt)")
    keep = np.isfinite(g) & (g > 0) & np.isfinite(p) & (p > 0)
    if valid is not None:
        v = np.asarray(valid, bool)
        _check_same_shape(p, v, f"{name}(pred, valid)")
        keep &= v
    if not keep.any():
        raise ValueError(f"{name}: no valid pixels (need positive finite values)")
    return p[keep], g[keep]


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of two boolean masks; two empty masks agree fully (1.0)."""
    a, b = np.asarray(pred, bool), np.asarray(gt, bool)
    _check_same_shape(a, b, "mask_iou(pred, gt)")
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def depth_metrics(
    pred_inv: np.ndarray, gt_depth_m: np.ndarray, valid: np.ndarray | None = None
) -> dict[str, float]:
    """delta1 and AbsRel of a relative inverse depth against metric ground truth.

    The prediction is aligned to ``1 / gt_depth_m`` by scale and shift in inverse depth,
    capped to the ground truth's depth range (its nearest and farthest valid depth) and
    inverted (MiDaS's protocol, see the module docstring); pixels with non-positive or
    non-finite ground truth are ignored.
    """
    gt = np.asarray(gt_depth_m, dtype=np.float64)
    ok = np.isfinite(gt) & (gt > 0)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    gt_inv = np.where(ok, 1.0 / np.where(ok, gt, 1.0), 0.0)
    return _aligned_scores(pred_inv, gt_inv, ok)


def inv_depth_agreement(
    pred_inv: np.ndarray, ref_inv: np.ndarray, valid: np.ndarray | None = None
) -> dict[str, float]:
    """delta1 and AbsRel of one relative inverse depth against another (e.g. the fp32 model).

    Both are only known up to scale and shift, so the reference is first scaled to a
    maximum of 1 and the prediction aligned to it, then capped to the reference's own depth
    range, as against ground truth; ``ref_inv`` must have a positive maximum. Reference
    pixels at or below ``MIN_INV_DEPTH`` (scaled) have no finite depth and are left out.
    """
    ref = np.asarray(ref_inv, dtype=np.float64)
    ok = np.isfinite(ref)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    peak = ref[ok].max(initial=-np.inf)
    if not peak > 0:
        raise ValueError(f"inv_depth_agreement: reference needs a positive maximum, got {peak}")
    ref_norm = ref / peak
    ok &= ref_norm > MIN_INV_DEPTH
    return _aligned_scores(pred_inv, ref_norm, ok)


def _aligned_scores(pred_inv, gt_inv: np.ndarray, ok: np.ndarray) -> dict[str, float]:
    """Align in inverse depth, cap to the reference's depth range, score in depth."""
    aligned, scale, shift = align_scale_shift(pred_inv, gt_inv, ok)
    ref_inv = gt_inv[ok]
    depth_cap = 1.0 / ref_inv.min()  # the reference's farthest depth (MiDaS: the dataset's)
    depth_floor = 1.0 / ref_inv.max()  # and its nearest
    pred_depth = 1.0 / np.clip(aligned, 1.0 / depth_cap, 1.0 / depth_floor)
    gt_depth = np.where(ok, 1.0 / np.where(ok, gt_inv, 1.0), np.nan)
    return {
        "delta1": delta1(pred_depth, gt_depth, ok),
        "abs_rel": abs_rel(pred_depth, gt_depth, ok),
        "scale": scale,
        "shift": shift,
    }
