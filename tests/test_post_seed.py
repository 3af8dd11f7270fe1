"""Seed equivalence: xdepth reproduces the seed notebook's post-process lines bit for bit.

The notebook does, on the model's float32 ``predicted_depth`` (`notebook_lines` holds its
lines verbatim):
    prediction = torch.nn.functional.interpolate(predicted_depth.unsqueeze(1),
                 size=image.size[::-1], mode="bicubic", align_corners=False)
    output = prediction.squeeze().cpu().numpy()
    formatted = (output * 255 / np.max(output)).astype("uint8")
    depth = Image.fromarray(formatted)
    a = np.array(depth)
    mask = np.where(a > 45, 255, 0)
    black = Image.fromarray(a*0).convert('L')
    clip = Image.composite(image, black, Image.fromarray(mask.astype(np.uint8)))
``Image.composite`` takes the mode of its second image, so the clip is grey (mode L).
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xdepth import DepthEngine
from xdepth.cli.main import main
from xdepth.eval.scenes import make_scene
from xdepth.model.backends import open_artifact
from xdepth.outputs.settings import SettingsError
from xdepth.post import (
    composite_color,
    encode_png,
    mask_from_uint8,
    resize_depth,
    threshold_mask,
    to_uint8_max,
    uint8_cut,
)

torch = pytest.importorskip("torch")
X86 = platform.machine().lower() in ("x86_64", "amd64")


def scene_depth(seed: int, size: tuple[int, int] = (96, 128), sky: float = 0.3) -> np.ndarray:
    """DPT-like relative inverse depth: sky, a ground plane, sharp-edged near blobs."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / h, xx / w
    depth = np.where(yy > 0.4, 1.0 + (yy - 0.4) * 12.0, sky).astype(np.float32)
    for _ in range(3):
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.45, 0.85), rng.uniform(0.08, 0.2)
        inside = ((xx - cx) / r) ** 2 + ((yy - cy) / (1.4 * r)) ** 2 < 1
        depth[inside] = np.maximum(depth[inside], rng.uniform(8.0, 14.0))
    depth += rng.normal(0.0, 0.05, depth.shape).astype(np.float32)
    return (np.maximum(depth, 0.0) * 173.0).astype(np.float32)


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def notebook_lines(image: Image.Image, predicted_depth: torch.Tensor) -> tuple[object, ...]:
    """The notebook's lines, verbatim; ``predicted_depth`` is the model's 1 x h x w output."""
    prediction = torch.nn.functional.interpolate(predicted_depth.unsqueeze(1), size=image.size[::-1], mode="bicubic", align_corners=False)  # fmt: skip  # noqa: E501
    output = prediction.squeeze().cpu().numpy()
    formatted = (output * 255 / np.max(output)).astype("uint8")
    depth = Image.fromarray(formatted)
    a = np.array(depth)
    mask = np.where(a > 45, 255, 0)
    black = Image.fromarray(a*0).convert('L')  # fmt: skip
    clip = Image.composite(image, black, Image.fromarray(mask.astype(np.uint8)))
    return output, formatted, mask, clip


def seed_post(image: np.ndarray, predicted_depth: np.ndarray) -> tuple[np.ndarray, ...]:
    """`notebook_lines` on arrays: (upsampled depth, uint8 depth, mask 0/255, clip)."""
    output, formatted, mask, clip = notebook_lines(
        Image.fromarray(image), torch.from_numpy(predicted_depth)[None]
    )
    return output, formatted, mask, np.asarray(clip)  # type: ignore[arg-type]


@pytest.mark.parametrize(("seed", "height", "width"), [(0, 300, 400), (1, 211, 157), (2, 96, 128)])
def test_seed_mode_resize_is_the_seed_interpolate(seed: int, height: int, width: int) -> None:
    depth = scene_depth(seed)
    expected = seed_post(photo(height, width), depth)[0]
    got = resize_depth(depth, height, width, mode="seed")
    assert got.dtype == np.float32 and got.shape == (height, width)
    np.testing.assert_array_equal(got, expected)


def test_fast_resize_stays_within_float_rounding_of_the_seed() -> None:
    depth = scene_depth(3)
    seed_up = resize_depth(depth, 600, 800, mode="seed")
    fast_up = resize_depth(depth, 600, 800)
    peak = float(seed_up.max())
    assert np.abs(fast_up - seed_up).max() <= 1e-4 * peak
    levels = np.abs(to_uint8_max(fast_up).astype(int) - to_uint8_max(seed_up).astype(int))
    assert levels.max() <= 1 and np.count_nonzero(levels) <= 1e-3 * levels.size


def test_the_whole_seed_chain_matches_bit_for_bit() -> None:
    depth = scene_depth(4)
    image = photo(300, 400, seed=4)
    _, seed_u8, seed_mask, seed_clip = seed_post(image, depth)
    up = resize_depth(depth, 300, 400, mode="seed")
    depth_u8 = to_uint8_max(up, overflow="wrap" if X86 else "clip")
    mask = mask_from_uint8(depth_u8, 45)
    if X86:
        np.testing.assert_array_equal(depth_u8, seed_u8)
    np.testing.assert_array_equal(mask, seed_mask == 255)
    assert seed_clip.shape == (300, 400)  # grey: the mode of the composite's black image
    np.testing.assert_array_equal(composite_color(image, mask, mode="L"), seed_clip)


SIZES_HW = [(300, 400), (211, 157), (97, 333), (480, 640), (1000, 750), (123, 456)]


@pytest.mark.skipif(not X86, reason="the seed's out-of-range cast is x86-64 behaviour")
def test_seed_preset_writes_the_notebooks_clip(tiny_artifact: Path, tmp_path: Path) -> None:
    """`--preset seed` on non-square photos: the files are the notebook's lines, run on the
    engine's own model output, pixel for pixel and (same PNG encoder) byte for byte."""
    photos = tmp_path / "in"
    photos.mkdir()
    for i, (height, width) in enumerate(SIZES_HW):
        Image.fromarray(make_scene(40 + i, height, width).rgb).save(photos / f"p{i}.png")
    out = tmp_path / "out"
    assert main(["run", str(photos), "-o", str(out), "--artifact", str(tiny_artifact),
                 "--preset", "seed", "--quiet"]) == 0  # fmt: skip
    backend = open_artifact(tiny_artifact, use_cache=False)
    for i, (height, width) in enumerate(SIZES_HW):
        with Image.open(photos / f"p{i}.png") as image:
            image.load()
        predicted_depth = backend.infer_u8(backend.resize(np.asarray(image))[None])
        _, formatted, mask, clip = notebook_lines(image, torch.from_numpy(predicted_depth))
        assert clip.mode == "L" and clip.size == (width, height)
        assert 0 < np.count_nonzero(mask) < mask.size  # a clip, neither empty nor everything
        written = {kind: out / f"p{i}.{kind}.png" for kind in ("composite", "depth8", "mask")}
        with Image.open(written["composite"]) as composite:
            assert composite.mode == "L"
            np.testing.assert_array_equal(np.asarray(composite), np.asarray(clip))
        assert written["composite"].read_bytes() == encode_png(np.asarray(clip), level=1)
        assert written["depth8"].read_bytes() == encode_png(formatted, level=1)
        assert written["mask"].read_bytes() == encode_png(mask.astype(np.uint8), level=1)


def test_to_uint8_max_clip_equals_seed_where_the_seed_is_defined() -> None:
    up = resize_depth(scene_depth(5, sky=2.0), 240, 320, mode="seed")
    # Small undershoot (> -1 after scaling) truncates to 0: every seed cast is defined here.
    assert up.min() < 0 and (up * 255 / np.max(up) > -1).all()
    seed = (up * 255 / np.max(up)).astype("uint8")
    np.testing.assert_array_equal(to_uint8_max(up), seed)
    np.testing.assert_array_equal(threshold_mask(up, "abs:45"), seed > 45)


@pytest.mark.skipif(not X86, reason="the seed's out-of-range cast is x86-64 behaviour")
def test_overflow_wrap_reproduces_the_seed_undershoot() -> None:
    # A near block against zero sky: bicubic undershoot goes far below -max/255.
    depth = np.zeros((16, 16), np.float32)
    depth[4:12, 4:12] = 1000.0
    up = resize_depth(depth, 64, 64, mode="seed")
    with np.errstate(invalid="ignore"):
        seed = (up * 255 / np.max(up)).astype("uint8")
    undershoot = up * 255 / np.max(up) <= -1
    assert undershoot.any()
    np.testing.assert_array_equal(to_uint8_max(up, overflow="wrap"), seed)
    clipped = to_uint8_max(up)
    assert (clipped[undershoot] == 0).all()
    assert (seed[undershoot] > 200).any()  # the seed's wrap makes far pixels look near
    np.testing.assert_array_equal(clipped[~undershoot], seed[~undershoot])


@pytest.mark.parametrize("peak", [1.0, 3.7, 255.0, 1234.567, 1e-3, 3e30])
@pytest.mark.parametrize("level", [0, 45, 45.5, 128, 254, 255])
def test_uint8_cut_splits_exactly_where_the_uint8_map_does(peak: float, level: float) -> None:
    peak32 = np.float32(peak)
    cut = uint8_cut(float(peak32), level)
    if np.isinf(cut):
        candidates = np.linspace(0, peak32, 1001, dtype=np.float32)
    else:
        cut32 = np.float32(cut)
        near = [cut32]
        for _ in range(40):
            near += [np.nextafter(near[-1], np.float32(np.inf))]
        below = [cut32]
        for _ in range(40):
            below += [np.nextafter(below[-1], np.float32(0))]
        candidates = np.array(near + below + [0, peak32], np.float32)
        candidates = candidates[candidates <= peak32]
    row = candidates.reshape(1, -1)
    expected = (row * 255 / peak32).astype("uint8") > level
    np.testing.assert_array_equal(row >= np.float32(cut), expected)
    np.testing.assert_array_equal(to_uint8_max(row, float(peak32)) > level, expected)


def test_composite_equals_pil_for_the_seed_mask() -> None:
    image = photo(123, 77, seed=9)
    mask = np.random.default_rng(9).random((123, 77)) > 0.5
    mask_u8 = np.where(mask, 255, 0).astype(np.uint8)
    pil = Image.composite(
        Image.fromarray(image), Image.new("RGB", (77, 123), (0, 0, 0)), Image.fromarray(mask_u8)
    )
    np.testing.assert_array_equal(composite_color(image, mask), np.asarray(pil))
    np.testing.assert_array_equal(composite_color(image, mask_u8), np.asarray(pil))


def test_seed_mode_without_torch_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="mode='fast'"):
        resize_depth(np.ones((4, 4), np.float32), 8, 8, mode="seed")
    fast = resize_depth(np.ones((4, 4), np.float32), 8, 8)
    np.testing.assert_allclose(fast, 1.0, rtol=1e-6)


def test_seed_preset_without_torch_is_refused_before_any_image(
    tiny_artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(SettingsError, match=r"needs torch: pip install 'xdepth\[export\]'"):
        DepthEngine(tiny_artifact, preset="seed")


def test_post_imports_without_torch() -> None:
    code = (
        "import sys, xdepth.post; sys.exit('torch' in sys.modules or 'matplotlib' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_resize_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        resize_depth(np.ones((4, 4), np.uint8), 8, 8)
    with pytest.raises(ValueError, match="2-D"):
        resize_depth(np.ones((1, 4, 4), np.float32), 8, 8)
    with pytest.raises(ValueError, match="height"):
        resize_depth(np.ones((4, 4), np.float32), 0, 8)
    with pytest.raises(ValueError, match="'fast' or 'seed'"):
        resize_depth(np.ones((4, 4), np.float32), 8, 8, mode="linear")  # type: ignore[arg-type]


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 10000), (10000, 1), (3, 7)])
def test_resize_extreme_sizes_match_between_modes(height: int, width: int) -> None:
    depth = scene_depth(6, size=(5, 9))
    fast = resize_depth(depth, height, width)
    seed = resize_depth(depth, height, width, mode="seed")
    assert fast.shape == seed.shape == (height, width)
    np.testing.assert_allclose(fast, seed, rtol=0, atol=1e-4 * float(np.abs(seed).max()))
