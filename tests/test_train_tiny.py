"""The tiny-model trainer: reproducible, its weights load through the normal offline path.

A short run on the smallest test card: the shipped xdepth-tiny is trained the same way, only
longer (`python -m xdepth.export.train.tiny --out configs/weights/xdepth-tiny --seed 1`).
"""

from __future__ import annotations

import itertools
import json
import platform
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from xdepth.eval.scenes import HELD_OUT_BASE_SEED, make_scene
from xdepth.export.load import load_model
from xdepth.export.train.data import (
    BACKGROUND,
    DECOY,
    SHADOW_DECOY,
    SOLID,
    _pool_part,
    augment,
    make_pool,
)
from xdepth.export.train.loss import (
    MASK_MARGIN,
    aligned_log_error,
    depth_loss,
    edge_mask_loss,
    ramp,
)
from xdepth.export.train.tiny import evaluate, keep_freed_memory, main
from xdepth.model.cards import get_card

ARGS = ["--variant", "tiny-dpt-beit", "--steps", "12", "--pool", "16", "--batch", "4"]
ARGS += ["--val-every", "6", "--val-scenes", "2", "--eval-scenes", "2", "--threads", "1"]
ARGS += ["--aligned-weight", "1", "--edge-weight", "1"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    for name in ("a", "b"):
        assert main([*ARGS, "--out", str(root / name)]) == 0
    return root / "a", root / "b"


def test_same_seed_same_weights(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_log_records_the_run_and_the_kept_step(two_runs: tuple[Path, Path]) -> None:
    log = json.loads((two_runs[0] / "train_log.json").read_text())
    assert (log["variant"], log["steps"], log["pool_scenes"], log["batch"]) == (
        "tiny-dpt-beit",
        12,
        16,
        4,
    )
    assert log["kept_step"] in (6, 12)
    assert log["command"].startswith("python -m xdepth.export.train.tiny --variant tiny-dpt-beit")
    assert 0.0 <= log["held_out"]["mask_iou_mean"] <= 1.0
    assert log["held_out"]["scenes"] == 2


@pytest.mark.parametrize(
    ("flag", "value", "logged"),
    [
        ("--edge-pixels", "area", "area"),  # targets: mixed pixels averaged
        ("--attention", "sdpa", "sdpa"),  # the fused kernel; the default is plain attention
        ("--grad-clip", "1e9", 1e9),  # gradient norms exceed the default clip of 1
    ],
)
def test_option_reaches_the_run(
    two_runs: tuple[Path, Path], tmp_path: Path, flag: str, value: str, logged: object
) -> None:
    """Each option is logged and trains other weights than the defaults do."""
    assert main([*ARGS, flag, value, "--out", str(tmp_path)]) == 0
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert log[flag.removeprefix("--").replace("-", "_")] == logged
    other = (tmp_path / "model.safetensors").read_bytes()
    assert other != (two_runs[0] / "model.safetensors").read_bytes()


def test_rejects_a_gradient_clip_that_stops_training(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main([*ARGS, "--grad-clip", "0", "--out", str(tmp_path)])
    assert not (tmp_path / "model.safetensors").exists()


def test_eager_attention_weights_are_scored_as_the_engine_loads_them(
    two_runs: tuple[Path, Path],
) -> None:
    """The default run trains with plain attention; its log scores the engine's model."""
    log = json.loads((two_runs[0] / "train_log.json").read_text())
    assert log["attention"] == "eager"
    loaded = load_model("tiny-dpt-beit", weights=two_runs[0])
    assert loaded.model.config._attn_implementation != "eager"
    assert evaluate(loaded.model, loaded.card, 2, HELD_OUT_BASE_SEED) == log["held_out"]


def test_weights_load_offline_and_predict(two_runs: tuple[Path, Path], no_network) -> None:
    loaded = load_model("tiny-dpt-beit", weights=two_runs[0])
    h, w = loaded.card.input_hw
    with torch.no_grad():
        out = loaded.model(pixel_values=torch.zeros(1, 3, h, w)).predicted_depth
    assert out.shape[-2:] == (h, w) and torch.isfinite(out).all()


def test_loss_is_zero_only_at_the_target() -> None:
    inv = 1.0 / torch.from_numpy(make_scene(3, 64, 64).depth_m)[None]
    target = inv / inv.amax()
    assert float(depth_loss(target, target, 1.0)) == pytest.approx(0.0, abs=1e-5)
    for wrong in (target * 1.2, target.flip(-1), torch.full_like(target, float(target.mean()))):
        assert float(depth_loss(wrong, target, aligned_weight=1.0)) > 0.01


def test_refuses_a_pool_outside_the_training_seeds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TRAIN_SEEDS"):
        main([*ARGS, "--seed", str(10**9), "--out", str(tmp_path)])
    assert not (tmp_path / "model.safetensors").exists()


def test_init_continues_from_earlier_weights(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    start = two_runs[0]
    assert main([*ARGS, "--init", str(start), "--lr", "1e-12", "--out", str(tmp_path)]) == 0
    before = load_file(str(start / "model.safetensors"))
    after = load_file(str(tmp_path / "model.safetensors"))
    assert before.keys() == after.keys()
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, rtol=0, atol=1e-6, msg=name)
    assert json.loads((tmp_path / "train_log.json").read_text())["init"] == str(start)


def test_aligned_error_ignores_scale_and_shift_but_not_shape() -> None:
    inv = 1.0 / torch.from_numpy(make_scene(5, 64, 64).depth_m)[None]
    target = inv / inv.amax()
    affine = aligned_log_error(3.0 * target + 0.2, target)
    assert float(affine.max()) < 1e-4
    # The background is most pixels and small: a wall tilted by +-5 % of the peak leaves
    # delta1's band (log 1.25 = 0.22) after any scale and shift, though L1 barely sees it.
    tilt = 0.05 * torch.linspace(-1, 1, target.shape[-1])
    background = target < 0.2
    wrong = torch.where(background, target + tilt, target)
    assert float(aligned_log_error(wrong, target)[background].mean()) > 0.2
    assert float((wrong - target).abs().mean()) < 0.03


def test_edge_loss_is_the_margin_hinge_on_the_recipe_level() -> None:
    level = 46 / 255
    flat = torch.ones(1, 8, 8)
    assert float(edge_mask_loss(flat, torch.ones(1, 16, 16, dtype=torch.bool))) == 0.0
    wrong = float(edge_mask_loss(flat, torch.zeros(1, 16, 16, dtype=torch.bool)))
    assert wrong == pytest.approx(MASK_MARGIN + 1 - level, abs=1e-6)
    # Weights scale each pixel's hinge: a quarter of the pixels at weight 5 -> mean 2x.
    weight = torch.ones(1, 16, 16)
    weight[:, :8, :8] = 5
    zeros = torch.zeros(1, 16, 16, dtype=torch.bool)
    assert float(edge_mask_loss(flat, zeros, weight=weight)) == pytest.approx(2 * wrong)


def test_edge_loss_sees_the_outward_growth_of_area_averaged_depth() -> None:
    """Matching area-averaged depth is not enough: upsampled and thresholded, it grows the
    mask; a prediction whose edges are sharpened towards the background does not."""
    scene = make_scene(5, 128, 128)
    inv = torch.from_numpy(1.0 / scene.depth_m)
    inv = (inv / inv.max())[None, None]
    area = F.avg_pool2d(inv, 2)[:, 0]
    fine = torch.from_numpy(scene.mask)[None]
    # Pull every low-resolution pixel that is not wholly foreground down to the background.
    whole = F.avg_pool2d(fine[:, None].float(), 2)[:, 0] == 1
    sharp = torch.where(whole, area, torch.minimum(area, torch.tensor(0.1)))
    assert float(edge_mask_loss(area, fine)) > 2 * float(edge_mask_loss(sharp, fine))


def test_pool_targets_give_mixed_pixels_to_the_background() -> None:
    card = get_card("xdepth-tiny")
    inputs, sharp, labels = make_pool(card, 3, 40, (32, 32))
    _, area, _ = make_pool(card, 3, 40, (32, 32), sharp_edges=False)
    assert (inputs.shape, sharp.shape, labels.shape) == ((3, 128, 128, 3), (3, 32, 32), (3, 64, 64))
    assert (labels == SOLID).any() and not (labels == SOLID).all()
    changed = sharp != area
    assert changed.any()
    # Only edge pixels change, and only downwards: towards the (farther) background.
    assert (sharp[changed] < area[changed]).all()
    assert changed.mean() < 0.1


def test_pool_labels_are_the_solids_and_the_decoys() -> None:
    card = get_card("xdepth-tiny")
    scenes = (make_scene(seed, 256, 256) for seed in range(60, 90))
    painted = list(itertools.islice((sc for sc in scenes if sc.painted.mean() > 0.05), 2))
    assert len(painted) == 2
    for scene in painted:  # render at 256 px, labels at 2 x 64: one label per 2x2 block
        job = [(scene.seed, 256, 256)]
        labels = _pool_part(card.preprocess, job, (64, 64), True, True)[2][0]
        assert set(np.unique(labels)) == {BACKGROUND, SOLID, DECOY}
        shadow = scene.shadow >= SHADOW_DECOY
        assert shadow.any() and not (shadow & scene.mask).any()
        solid, decoy = (
            truth.reshape(128, 2, 128, 2).mean(axis=(1, 3)) >= 0.5
            for truth in (scene.mask, scene.painted | shadow)
        )
        assert np.array_equal(labels == SOLID, solid)
        assert np.array_equal(labels == DECOY, decoy & ~solid)  # solid wins a tie


def test_pool_is_the_same_for_any_number_of_workers() -> None:
    card = get_card("xdepth-tiny")
    one = make_pool(card, 11, 7, (16, 16))
    two = make_pool(card, 11, 7, (16, 16), workers=2)
    for a, b in zip(one, two, strict=True):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b)


def test_augment_flips_all_three_together_and_swaps_colours_only() -> None:
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8))
    y = torch.from_numpy(rng.random((16, 4, 4), dtype=np.float32))
    m = torch.from_numpy(rng.random((16, 8, 8)) < 0.5)
    fx, fy, fm = augment(x, y, m, np.random.default_rng(0))
    flipped = [not torch.equal(fy[i], y[i]) for i in range(16)]
    assert 0 < sum(flipped) < 16
    for i in range(16):
        want = (x[i].flip(1), y[i].flip(1), m[i].flip(1)) if flipped[i] else (x[i], y[i], m[i])
        assert all(torch.equal(a, b) for a, b in zip((fx[i], fy[i], fm[i]), want, strict=True))
    sx, sy, sm = augment(x, y, m, np.random.default_rng(0), colour_swap=True)
    assert torch.equal(sy, fy) and torch.equal(sm, fm)
    # Each image's channels are reordered as a whole: the same sorted values per pixel.
    assert torch.equal(sx.sort(dim=3).values, fx.sort(dim=3).values)
    swapped = [not torch.equal(sx[i], fx[i]) for i in range(16)]
    assert 0 < sum(swapped) < 16
    for i in range(16):
        sources = [(fx[i] == sx[i, ..., c : c + 1]).all(dim=(0, 1)).nonzero() for c in range(3)]
        assert sorted(int(s[0]) for s in sources) == [0, 1, 2]


def test_late_terms_ramp_in_after_their_start() -> None:
    assert [ramp(step, 100, 0.25) for step in (0, 25, 30, 35, 99)] == pytest.approx(
        [0.0, 0.0, 0.5, 1.0, 1.0]
    )
    assert ramp(0, 100, 0.0) == 1.0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_memory_settings() -> None:
    assert keep_freed_memory() is True
