"""Normalisation, threshold policies, mask refinement and feathering: known answers."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from xdepth.post import (
    SEED_POLICY,
    ThresholdPolicy,
    cut_level,
    feather,
    fill_holes,
    finite_range,
    keep_largest_component,
    normalize_minmax,
    normalize_percentile,
    parse_policy,
    percentile_range,
    refine_mask,
    remove_small_islands,
    rescale,
    resize_depth,
    threshold_mask,
    to_uint8_max,
)


def staged_depth() -> np.ndarray:
    """Inverse depth: background 1, a mid box 5, a near box 10 (uint8 scale 25 / 127 / 255)."""
    depth = np.ones((60, 80), np.float32)
    depth[10:30, 10:30] = 5.0  # 400 px
    depth[35:50, 50:70] = 10.0  # 300 px
    return depth


def boxes(depth: np.ndarray, *values: float) -> np.ndarray:
    return np.isin(depth, np.array(values, np.float32))


# --- normalisation ---------------------------------------------------------------------


def test_normalisations_on_known_values() -> None:
    depth = staged_depth()
    np.testing.assert_array_equal(np.unique(to_uint8_max(depth)), [25, 127, 255])
    np.testing.assert_array_equal(np.unique(normalize_minmax(depth)), [0, 113, 255])
    assert finite_range(depth) == (1.0, 10.0)
    np.testing.assert_array_equal(
        np.unique(rescale(depth, 0.0, 20.0, dtype=np.uint16)), [3277, 16384, 32768]
    )
    unit = rescale(depth, 1.0, 10.0, dtype=np.float32)
    assert unit.dtype == np.float32 and unit.min() == 0.0 and unit.max() == 1.0
    lo, hi = percentile_range(np.arange(101, dtype=np.float32).reshape(1, -1), 10, 90)
    assert (lo, hi) == (10.0, 90.0)
    pct = normalize_percentile(np.arange(101, dtype=np.float32).reshape(1, -1), 10, 90)
    assert pct[0, :11].tolist() == [0] * 11 and pct[0, 90:].tolist() == [255] * 11


def test_fixed_range_saturates_and_is_shared() -> None:
    depth = staged_depth()
    scaled = rescale(depth * 3, 0.0, 10.0)  # values above the caller's range
    assert scaled.max() == 255 and (scaled[boxes(depth, 5.0, 10.0)] == 255).all()
    np.testing.assert_array_equal(to_uint8_max(depth, 20.0)[35, 50], 127)  # 10*255/20
    assert to_uint8_max(depth * 4, 20.0).max() == 255  # clip, not wrap


@pytest.mark.parametrize("value", [0.0, 7.5, -3.0])
def test_constant_maps_have_defined_results(value: float) -> None:
    depth = np.full((5, 7), value, np.float32)
    expected_max = 255 if value > 0 else 0
    assert (to_uint8_max(depth) == expected_max).all()
    assert (normalize_minmax(depth) == 0).all()
    assert (normalize_percentile(depth) == 0).all()
    assert threshold_mask(depth, SEED_POLICY).all() == (value > 0)


def test_non_finite_pixels_are_zero_and_never_kept() -> None:
    depth = staged_depth()
    depth[0, 0], depth[0, 1], depth[0, 2] = np.nan, np.inf, -np.inf
    depth[36, 51] = np.inf  # inside the near box
    for out in (to_uint8_max(depth), normalize_minmax(depth), normalize_percentile(depth)):
        assert out[0, 0] == out[0, 1] == out[0, 2] == out[36, 51] == 0
    assert to_uint8_max(depth)[40, 60] == 255  # scale from the finite maximum
    for policy in ("abs:45", "nearest:10%", "otsu", "range:0.5"):
        mask = threshold_mask(depth, policy)
        assert not mask[0, :3].any() and not mask[36, 51]
        assert mask[40, 60]


@pytest.mark.filterwarnings("error")  # no "invalid value encountered in cast"
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_each_kind_of_non_finite_pixel_alone(bad: float) -> None:
    depth = staged_depth()
    depth[40, 60] = bad  # inside the near box
    for out in (to_uint8_max(depth), to_uint8_max(depth, 20.0), normalize_minmax(depth)):
        assert out[40, 60] == 0 and out[40, 61] == out.max() and out.max() > 0
    assert not threshold_mask(depth, "abs:45")[40, 60]


def test_all_non_finite_map_gives_empty_results() -> None:
    depth = np.full((3, 4), np.nan, np.float32)
    depth[1, 1] = np.inf
    assert finite_range(depth) == (0.0, 0.0)
    assert not to_uint8_max(depth).any() and not normalize_minmax(depth).any()
    for policy in ("abs:45", "nearest:20%", "otsu", "range:0.3", "metric:2"):
        assert not threshold_mask(depth, policy).any()


def test_normalisation_rejects_bad_ranges() -> None:
    depth = staged_depth()
    with pytest.raises(ValueError, match="lo <= hi"):
        rescale(depth, 5.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        rescale(depth, 0.0, math.inf)
    with pytest.raises(ValueError, match="max_value"):
        to_uint8_max(depth, 0.0)
    with pytest.raises(ValueError, match="uint8, uint16 or float32"):
        rescale(depth, 0.0, 1.0, dtype=np.int8)
    with pytest.raises(ValueError, match="percentiles"):
        percentile_range(depth, 90, 10)


# --- threshold policies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        ("abs:45", (5.0, 10.0)),
        ("abs:127", (10.0,)),
        ("abs:126", (5.0, 10.0)),
        ("abs:255", ()),
        ("range:0.3", (10.0,)),
        ("range:0.6", (5.0, 10.0)),
        ("range:1", (1.0, 5.0, 10.0)),
        ("otsu", (5.0, 10.0)),
        ("nearest:6.25%", (10.0,)),
        ("nearest:100%", (1.0, 5.0, 10.0)),
    ],
)
def test_policies_keep_the_known_regions(policy: str, kept: tuple[float, ...]) -> None:
    depth = staged_depth()
    np.testing.assert_array_equal(threshold_mask(depth, policy), boxes(depth, *kept))


def test_nearest_keeps_exactly_the_requested_share_of_distinct_values() -> None:
    depth = np.random.default_rng(0).permutation(10000).astype(np.float32).reshape(100, 100)
    mask = threshold_mask(depth, "nearest:20%")
    assert mask.sum() == 2000 and depth[mask].min() == 8000.0


def test_otsu_splits_a_noisy_bimodal_map() -> None:
    rng = np.random.default_rng(1)
    depth = rng.normal(2.0, 0.2, (80, 80)).astype(np.float32)
    near = np.zeros((80, 80), bool)
    near[20:50, 30:70] = True
    depth[near] += 6.0
    np.testing.assert_array_equal(threshold_mask(depth, "otsu"), near)


def test_metric_policy_keeps_valid_close_pixels() -> None:
    depth_m = np.full((10, 10), 5.0, np.float32)
    depth_m[2:5, 2:5] = 1.2
    depth_m[0, 0], depth_m[0, 1], depth_m[0, 2] = 0.0, np.nan, -1.0
    expected = depth_m == np.float32(1.2)
    np.testing.assert_array_equal(threshold_mask(depth_m, "metric:2.5"), expected)
    assert threshold_mask(depth_m, ThresholdPolicy("metric", 5.0)).sum() == 97


def test_level_from_model_resolution_applies_to_the_upsampled_map() -> None:
    low = staged_depth()
    high = resize_depth(low, 240, 320)
    by_stats = threshold_mask(high, "range:0.3", stats_from=low)
    np.testing.assert_array_equal(by_stats, high >= np.float32(7.0))
    assert cut_level(low, parse_policy("range:0.3")) == pytest.approx(7.0)
    # One scale for a video: with max 20 the boxes read 127 and 63, the background 12.
    fixed = threshold_mask(low, "abs:45", max_value=20.0)
    np.testing.assert_array_equal(fixed, boxes(low, 5.0, 10.0))
    assert not threshold_mask(low, "abs:45", max_value=100.0).any()  # 10 reads 25


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 10000), (10000, 1)])
def test_policies_on_extreme_shapes(height: int, width: int) -> None:
    depth = np.linspace(0.0, 1.0, height * width, dtype=np.float32).reshape(height, width)
    for policy in ("abs:45", "nearest:20%", "otsu", "range:0.3", "metric:0.5"):
        mask = threshold_mask(depth, policy)
        assert mask.shape == (height, width) and mask.dtype == np.bool_
    if height * width > 1:
        assert threshold_mask(depth, "nearest:20%").sum() == math.ceil(0.2 * height * width)
    else:
        assert threshold_mask(depth, "nearest:20%").all()  # a single pixel is the nearest


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("abs:45", ThresholdPolicy("abs", 45.0)),
        (" ABS : 45 ", ThresholdPolicy("abs", 45.0)),
        ("nearest:20%", ThresholdPolicy("nearest", 20.0)),
        ("nearest:20", ThresholdPolicy("nearest", 20.0)),
        ("otsu", ThresholdPolicy("otsu")),
        ("range:0.3", ThresholdPolicy("range", 0.3)),
        ("metric:2.5", ThresholdPolicy("metric", 2.5)),
    ],
)
def test_parser_reads_the_documented_forms(text: str, policy: ThresholdPolicy) -> None:
    parsed = parse_policy(text)
    assert parsed == policy
    assert parse_policy(str(parsed)) == parsed


@pytest.mark.parametrize(
    "text",
    ["abs", "abs:", "abs:x", "abs:300", "abs:50%", "nearest:0%", "nearest:150%", "otsu:3",
     "range:1.5", "metric:-1", "metric:0", "foo:1", "", "abs:nan"],
)  # fmt: skip
def test_parser_names_the_bad_string(text: str) -> None:
    with pytest.raises(ValueError, match=f"bad threshold policy '{text}'"):
        parse_policy(text)


def test_policy_object_validates_itself() -> None:
    with pytest.raises(ValueError, match="kind"):
        ThresholdPolicy("median", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a finite value"):
        ThresholdPolicy("abs")
    assert str(SEED_POLICY) == "abs:45" and ThresholdPolicy("metric", 2.5).metric


# --- refinement ------------------------------------------------------------------------


def test_islands_holes_and_largest_component() -> None:
    mask = np.zeros((50, 50), bool)
    mask[5:25, 5:25] = True  # 400 px with a 4 px hole
    mask[12:14, 12:14] = False
    mask[30:36, 30:36] = True  # 36 px island
    mask[45, 45] = True  # 1 px speck
    no_specks = remove_small_islands(mask, 10)
    assert not no_specks[45, 45] and no_specks[30:36, 30:36].all()
    assert remove_small_islands(mask, 37).sum() == 396
    filled = fill_holes(mask)
    assert filled[12:14, 12:14].all() and filled.sum() == mask.sum() + 4
    assert fill_holes(mask, max_area_px=3).sum() == mask.sum()  # hole too big to fill
    largest = keep_largest_component(mask)
    assert largest.sum() == 396 and not largest[30:36, 30:36].any()
    refined = refine_mask(mask, min_island_px=10, fill=True, largest_only=True)
    np.testing.assert_array_equal(refined[5:25, 5:25], True)
    assert refined.sum() == 400
    assert refine_mask(mask) is not mask and (refine_mask(mask) == mask).all()


def test_a_notch_open_to_the_border_is_not_a_hole() -> None:
    mask = np.ones((20, 20), bool)
    mask[0:10, 9:11] = False  # a slot reaching the top edge
    mask[14:16, 14:16] = False  # an enclosed hole
    filled = fill_holes(mask)
    assert not filled[0:10, 9:11].any() and filled[14:16, 14:16].all()


@pytest.mark.parametrize("value", [True, False])
def test_refinement_of_uniform_masks(value: bool) -> None:
    mask = np.full((30, 40), value)
    assert (remove_small_islands(mask, 5) == value).all()
    assert (fill_holes(mask) == value).all()
    assert (keep_largest_component(mask) == value).all()
    assert (feather(mask, 6) == (255 if value else 0)).all()
    assert (feather(mask, 6, placement="centered") == (255 if value else 0)).all()


# --- feathering ------------------------------------------------------------------------


def test_inside_feather_ramp_on_a_straight_edge() -> None:
    mask = np.zeros((40, 100), bool)
    mask[:, :50] = True
    alpha = feather(mask, 4.0)
    # Distances to the background (5x5 chamfer: exact along a row) are 1, 2, 3, 4 px.
    np.testing.assert_array_equal(alpha[20, 44:52], [255, 255, 255, 191, 128, 64, 0, 0])
    assert (alpha[:, :46] == 255).all() and (alpha[:, 50:] == 0).all()


def test_centered_feather_straddles_the_edge() -> None:
    mask = np.zeros((40, 100), bool)
    mask[:, :50] = True
    alpha = feather(mask, 4.0, placement="centered")
    # Signed distance of pixel centres: 49 -> +0.5, 50 -> -0.5; alpha = 0.5 + s / 4.
    np.testing.assert_array_equal(alpha[20, 46:54], [255, 255, 223, 159, 96, 32, 0, 0])


def blob_mask(height: int, width: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).random((height // 16 + 1, width // 16 + 1))
    smooth = cv2.resize(noise.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    return smooth > 0.55


@pytest.mark.parametrize("placement", ["inside", "centered"])
@pytest.mark.parametrize(("radius", "mask_size"), [(3.0, 5), (10.0, 3), (25.5, 0), (70.0, 5)])
def test_tiled_feather_equals_the_whole_image_transform(
    placement: str, radius: float, mask_size: int
) -> None:
    mask = blob_mask(700, 900, seed=int(radius))
    fg = mask.view(np.uint8)
    d_in = cv2.distanceTransform(fg, cv2.DIST_L2, mask_size)
    if placement == "inside":
        expected = np.rint(np.minimum(d_in / np.float32(radius), 1) * 255).astype(np.uint8)
        got = feather(mask, radius, mask_size=mask_size)
        assert np.abs(got.astype(int) - expected).max() <= 1  # convertScaleAbs rounding
        return
    d_out = cv2.distanceTransform(1 - fg, cv2.DIST_L2, mask_size)
    signed = np.where(d_in > 0, d_in - 0.5, 0.5 - d_out)
    ramp = np.clip(0.5 + signed / np.float32(radius), 0.0, 1.0) * np.float32(255)
    expected = np.rint(ramp).astype(np.uint8)
    np.testing.assert_array_equal(
        feather(mask, radius, placement="centered", mask_size=mask_size), expected
    )


def test_feather_edge_cases_and_errors() -> None:
    mask = blob_mask(33, 47, seed=3)
    np.testing.assert_array_equal(feather(mask, 0), mask * np.uint8(255))
    assert feather(np.ones((1, 1), bool), 5).tolist() == [[255]]  # border is not background
    line = np.zeros((1, 10000), bool)
    line[0, 2000:8000] = True
    alpha = feather(line, 3)
    assert alpha[0, 2000] == 85 and alpha[0, 2002] == 255 and alpha[0, 1999] == 0
    with pytest.raises(ValueError, match="radius_px"):
        feather(mask, -1)
    with pytest.raises(ValueError, match="placement"):
        feather(mask, 2, placement="outside")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bool"):
        feather(mask.astype(np.uint8), 2)
