"""Metrics against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from xdepth.eval.metrics import (
    MIN_INV_DEPTH,
    abs_rel,
    align_scale_shift,
    delta1,
    depth_metrics,
    inv_depth_agreement,
    mask_iou,
    recipe_mask,
)


@pytest.fixture
def depth_m() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(1.0, 12.0, size=(32, 48)).astype(np.float32)


def test_perfect_prediction(depth_m: np.ndarray) -> None:
    assert delta1(depth_m, depth_m) == 1.0
    assert abs_rel(depth_m, depth_m) == 0.0
    scores = depth_metrics(1.0 / depth_m, depth_m)
    assert scores["delta1"] == 1.0
    assert scores["abs_rel"] == pytest.approx(0.0, abs=1e-6)


def test_scaled_and_shifted_inverse_depth_aligns_back(depth_m: np.ndarray) -> None:
    gt_inv = 1.0 / depth_m.astype(np.float64)
    pred = 37.0 * gt_inv + 5.0
    aligned, scale, shift = align_scale_shift(pred, gt_inv)
    assert scale == pytest.approx(1 / 37.0, rel=1e-9)
    assert shift == pytest.approx(-5.0 / 37.0, rel=1e-9)
    np.testing.assert_allclose(aligned, gt_inv, rtol=1e-9)
    scores = depth_metrics(pred, depth_m)
    assert scores["delta1"] == 1.0
    assert scores["abs_rel"] == pytest.approx(0.0, abs=1e-9)


def test_alignment_uses_only_valid_pixels() -> None:
    gt = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([2.0, 4.0, 6.0, 100.0])  # last pixel is an outlier, excluded
    _, scale, shift = align_scale_shift(pred, gt, np.array([True, True, True, False]))
    assert scale == pytest.approx(0.5) and shift == pytest.approx(0.0, abs=1e-12)


def test_delta1_and_abs_rel_known_values() -> None:
    gt = np.array([1.0, 2.0, 4.0, 10.0])
    pred = np.array([1.2, 2.6, 4.0, 5.0])  # ratios 1.2, 1.3, 1.0, 2.0
    assert delta1(pred, gt) == 0.5
    assert abs_rel(pred, gt) == pytest.approx((0.2 + 0.3 + 0.0 + 0.5) / 4)


def test_aligned_depth_is_capped_to_the_ground_truths_range() -> None:
    """Hand-computed: the fit maps the farthest pixel to negative inverse depth.

    Fitting gt_inv = (0.1, 0.2, 1.0) on pred = (0, 1, 2) by least squares gives scale 9/20,
    shift -1/60: aligned inverse depth (-1/60, 13/30, 53/60). The first pixel has no depth;
    capped at the farthest ground truth (10 m) it is exact. The others: 30/13 m against
    5 m, 60/53 m against 1 m.
    """
    gt_depth = np.array([10.0, 5.0, 1.0])
    scores = depth_metrics(np.array([0.0, 1.0, 2.0]), gt_depth)
    assert scores["scale"] == pytest.approx(9 / 20) and scores["shift"] == pytest.approx(-1 / 60)
    assert scores["abs_rel"] == pytest.approx((0.0 + (35 / 13) / 5 + 7 / 53) / 3, rel=1e-12)
    assert scores["delta1"] == pytest.approx(2 / 3)  # ratios 1, 13/6, 60/53
    # Uncapped, the first pixel would lie at 1 / MIN_INV_DEPTH = 1e6 m: AbsRel about 33 000.
    # The near side is floored the same way: aligned 65/60 > 1 / (nearest 1 m) is 1 m.
    near = depth_metrics(np.array([0.0, 1.0, 2.0]), np.array([10.0, 1.25, 1.0]))
    expected = ((10 - 60 / 11) / 10 + (60 / 38 - 1.25) / 1.25 + 0.0) / 3
    assert near["abs_rel"] == pytest.approx(expected, rel=1e-12)


def test_capping_only_raises_delta1() -> None:
    """Capped pixels move toward their own ground truth: delta1 never drops."""
    rng = np.random.default_rng(1)
    gt = rng.uniform(1.0, 10.0, (40, 50))
    pred = 1.0 / gt + rng.normal(0.0, 0.08, gt.shape)  # noise pushes some below zero
    scores = depth_metrics(pred, gt)
    aligned, *_ = align_scale_shift(pred, 1.0 / gt)
    uncapped = 1.0 / np.maximum(aligned, MIN_INV_DEPTH)
    assert (aligned <= 0).any()  # some pixels have no depth before the cap
    assert scores["delta1"] >= delta1(uncapped, gt)
    assert scores["abs_rel"] < abs_rel(uncapped, gt)


def test_mask_iou_known_values() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True  # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, ~a) == 0.0


def test_mask_iou_empty_masks() -> None:
    empty = np.zeros((3, 3), bool)
    assert mask_iou(empty, empty) == 1.0
    full = np.ones((3, 3), bool)
    assert mask_iou(empty, full) == 0.0


def test_shape_mismatch_is_named() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        mask_iou(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="shapes differ"):
        depth_metrics(np.ones((2, 2)), np.ones((3, 2)))


def test_recipe_mask_matches_the_seed_expression() -> None:
    inv = np.array([[1.0, 0.5, 0.18], [0.17, 0.1, 0.0]], dtype=np.float32)
    expected = (inv * 255 / inv.max()).astype(np.uint8) > 45
    assert np.array_equal(recipe_mask(inv), expected)
    assert recipe_mask(inv).tolist() == [[True, True, False], [False, False, False]]
    # Overshoot below zero counts as far, not as a wrapped-around uint8.
    assert not recipe_mask(np.array([1.0, -0.01]))[1]
    with pytest.raises(ValueError, match="positive finite maximum"):
        recipe_mask(np.zeros((2, 2)))


def test_inv_depth_agreement_between_two_predictions(depth_m: np.ndarray) -> None:
    ref = 3.0 / depth_m
    scores = inv_depth_agreement(0.25 * ref + 1.0, ref)  # float32 inputs: exact to ~1e-7
    assert scores["delta1"] == 1.0 and scores["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    noisy = ref * np.where(np.arange(ref.size).reshape(ref.shape) % 2 == 0, 1.0, 2.0)
    worse = inv_depth_agreement(noisy, ref)
    assert worse["delta1"] < 0.75 and worse["abs_rel"] > 0.1
