"""Synthetic scenes: deterministic, exact ground truth, and the seed threshold is meaningful."""

from __future__ import annotations

import numpy as np
import pytest

from xdepth.eval import scenes
from xdepth.eval.metrics import recipe_mask
from xdepth.eval.scenes import (
    HELD_OUT_BASE_SEED,
    HELD_OUT_SEEDS,
    TRAIN_SEEDS,
    make_scene,
    make_scenes,
)

SEEDS = [0, 1, 2, 3, 17, HELD_OUT_BASE_SEED, HELD_OUT_BASE_SEED + 5]


@pytest.fixture(scope="module")
def sample() -> list[scenes.Scene]:
    return [make_scene(s) for s in range(24)]


def test_same_seed_same_bytes() -> None:
    a, b = make_scene(123), make_scene(123)
    assert a.rgb.tobytes() == b.rgb.tobytes()
    assert a.depth_m.tobytes() == b.depth_m.tobytes()
    assert np.array_equal(a.mask, b.mask)
    assert np.array_equal(a.painted, b.painted)
    assert a.shadow.tobytes() == b.shadow.tobytes()


def test_different_seeds_differ() -> None:
    a, b = make_scene(123), make_scene(124)
    assert a.rgb.tobytes() != b.rgb.tobytes()
    assert not np.array_equal(a.depth_m, b.depth_m)


@pytest.mark.parametrize("seed", SEEDS)
def test_shapes_and_dtypes(seed: int) -> None:
    scene = make_scene(seed, height=96, width=160)
    assert scene.rgb.shape == (96, 160, 3) and scene.rgb.dtype == np.uint8
    assert scene.depth_m.shape == (96, 160) and scene.depth_m.dtype == np.float32
    assert scene.mask.shape == (96, 160) and scene.mask.dtype == bool
    assert scene.f_px == 160.0
    assert np.isfinite(scene.depth_m).all() and (scene.depth_m > 0).all()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("floor", [False, True])
def test_mask_is_the_seed_threshold_of_depth(seed: int, floor: bool) -> None:
    scene = make_scene(seed, floor=floor)
    inv = 1.0 / scene.depth_m
    recipe = (inv * 255 / inv.max()).astype(np.uint8) > 45  # the seed recipe, verbatim
    assert np.array_equal(recipe, scene.mask)
    assert np.array_equal(recipe_mask(inv), scene.mask)


def test_depth_ranges_leave_margin_around_the_threshold(sample: list[scenes.Scene]) -> None:
    for scene in sample:
        inv_u8 = 1.0 / scene.depth_m
        level = inv_u8 * 255 / inv_u8.max()
        # Foreground well above 45, background well below: noise in a prediction's maximum
        # does not flip whole regions.
        assert level[scene.mask].min() > 60
        assert level[~scene.mask].max() < 42
        assert scene.depth_m[scene.mask].max() <= scenes.SOLID_MAX_M
        assert scene.depth_m[~scene.mask].min() >= scenes.BACKGROUND_MIN_M - 1e-3


def test_scenes_vary_in_content(sample: list[scenes.Scene]) -> None:
    fractions = [s.mask.mean() for s in sample]
    assert min(fractions) > 0.01 and max(fractions) < 0.7
    assert any(s.floor for s in sample) and not all(s.floor for s in sample)


def test_painted_shapes_lie_at_wall_depth(sample: list[scenes.Scene]) -> None:
    with_paint = [s for s in sample if s.painted.sum() > 200]
    assert len(with_paint) >= len(sample) // 2
    for scene in with_paint:
        assert not (scene.painted & scene.mask).any()
        assert scene.depth_m[scene.painted].min() >= scenes.BACKGROUND_MIN_M - 1e-3
        # Painted pixels look like objects: their colours are not those of the bare wall.
        wall = ~scene.painted & ~scene.mask
        painted_mean = scene.rgb[scene.painted].mean(axis=0)
        wall_mean = scene.rgb[wall].mean(axis=0)
        assert np.abs(painted_mean - wall_mean).max() > 3


def test_shadows_darken_only_the_background(sample: list[scenes.Scene]) -> None:
    for scene in sample:
        assert scene.shadow.dtype == np.float32 and scene.shadow.shape == scene.mask.shape
        assert scene.shadow.min() >= 0 and scene.shadow.max() <= 0.5
        assert not scene.shadow[scene.mask].any()
        # Every solid casts one: somewhere the wall is darkened by at least a tenth.
        assert scene.shadow.max() > 0.1


def test_floor_is_a_plane_beyond_the_threshold() -> None:
    scene = make_scene(5, floor=True)
    bottom = scene.depth_m[-1][~scene.mask[-1]]
    assert bottom.size > 0
    assert bottom.min() >= scenes.BACKGROUND_MIN_M - 1e-3
    # The floor recedes upwards: depth grows from the bottom row to the wall.
    column = scene.depth_m[:, 0]
    assert column[-1] < column[-20] < column[0] * 1.5


def test_seed_ranges_are_disjoint() -> None:
    assert TRAIN_SEEDS.stop <= HELD_OUT_SEEDS.start
    assert HELD_OUT_BASE_SEED in HELD_OUT_SEEDS and HELD_OUT_BASE_SEED not in TRAIN_SEEDS


def test_make_scenes_uses_consecutive_held_out_seeds() -> None:
    batch = make_scenes(2, height=64, width=64)
    assert [s.seed for s in batch] == [HELD_OUT_BASE_SEED, HELD_OUT_BASE_SEED + 1]
    assert batch[1].rgb.tobytes() == make_scene(HELD_OUT_BASE_SEED + 1, 64, 64).rgb.tobytes()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        make_scene(0, height=8, width=64)
    with pytest.raises(ValueError, match=">= 0"):
        make_scenes(-1)
