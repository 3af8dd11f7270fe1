"""Compositing: Pillow-exact blends, cutouts, background replacement, portrait blur, DoF."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xdepth.post import (
    blur_background,
    composite_color,
    composite_over,
    cover_resize,
    cutout_rgba,
    feather,
    grayscale_background,
    luma,
    refocus,
    replace_background,
)


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def pil_composite(image: np.ndarray, background: np.ndarray, alpha_u8: np.ndarray) -> np.ndarray:
    out = Image.composite(
        Image.fromarray(image), Image.fromarray(background), Image.fromarray(alpha_u8)
    )
    return np.asarray(out)


def disc_mask(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(height, width) / 3) ** 2


@pytest.mark.parametrize("width", [61, 128, 203])
def test_soft_alpha_blends_like_pillow_on_both_paths(width: int) -> None:
    image, background = photo(90, width, 1), photo(90, width, 2)
    thin = feather(disc_mask(90, width), 3.0)  # soft only along the edge: gather path
    wide = np.random.default_rng(3).integers(0, 256, (90, width), dtype=np.uint8)  # blendLinear
    for alpha in (thin, wide):
        np.testing.assert_array_equal(
            composite_over(image, background, alpha), pil_composite(image, background, alpha)
        )
        flat = np.zeros_like(image) + np.array([17, 200, 90], np.uint8)
        expected = pil_composite(image, flat, alpha)
        np.testing.assert_array_equal(composite_color(image, alpha, (17, 200, 90)), expected)


def test_every_byte_triple_rounds_like_pillow() -> None:
    levels = np.arange(256, dtype=np.uint8)
    fg, bg, a = np.meshgrid(levels, levels, levels[::5], indexing="ij")
    image = np.repeat(fg.reshape(256, -1)[..., None], 3, axis=2)
    background = np.repeat(bg.reshape(256, -1)[..., None], 3, axis=2)
    alpha = np.ascontiguousarray(a.reshape(256, -1))
    np.testing.assert_array_equal(
        composite_over(image, background, alpha), pil_composite(image, background, alpha)
    )


def test_float_alpha_is_rounded_to_uint8_coverage() -> None:
    image, background = photo(40, 50, 4), photo(40, 50, 5)
    alpha_f = np.random.default_rng(6).random((40, 50)).astype(np.float32)
    alpha_u8 = np.rint(alpha_f * 255).astype(np.uint8)
    np.testing.assert_array_equal(
        composite_over(image, background, alpha_f), composite_over(image, background, alpha_u8)
    )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        composite_over(image, background, alpha_f * 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        composite_over(image, background, np.full((40, 50), np.nan, np.float32))


@pytest.mark.parametrize("value", [True, False])
def test_uniform_masks(value: bool) -> None:
    image = photo(20, 30, 7)
    mask = np.full((20, 30), value)
    out = composite_color(image, mask, (1, 2, 3))
    expected = image if value else np.broadcast_to(np.array([1, 2, 3], np.uint8), image.shape)
    np.testing.assert_array_equal(out, expected)
    rgba = cutout_rgba(image, mask)
    np.testing.assert_array_equal(rgba[..., :3], image)
    assert (rgba[..., 3] == (255 if value else 0)).all()


def test_cutout_keeps_colours_and_uses_alpha() -> None:
    image = photo(1, 10000, 8)
    alpha = np.linspace(0, 1, 10000, dtype=np.float32).reshape(1, -1)
    rgba = cutout_rgba(image, alpha)
    assert rgba.shape == (1, 10000, 4)
    np.testing.assert_array_equal(rgba[..., :3], image)
    np.testing.assert_array_equal(rgba[..., 3], np.rint(alpha * 255).astype(np.uint8))
    assert cutout_rgba(photo(1, 1), np.ones((1, 1), bool)).shape == (1, 1, 4)


def test_cover_resize_crops_the_centre() -> None:
    background = photo(100, 400, 9)
    np.testing.assert_array_equal(cover_resize(background, 100, 100), background[:, 150:250])
    blocks = background.reshape(50, 2, 200, 2, 3).astype(float).mean(axis=(1, 3))
    assert np.abs(cover_resize(background, 50, 200) - blocks).max() <= 0.5  # same aspect: area mean
    tall = cover_resize(background, 400, 100)  # upscale 4x, keep the middle quarter
    assert tall.shape == (400, 100, 3)


def test_luma_is_pillows_grey_for_every_colour() -> None:
    code = np.arange(1 << 24, dtype=np.uint32)
    channels = [(code >> shift) & 255 for shift in (16, 8, 0)]
    every = np.stack(channels, axis=-1).astype(np.uint8).reshape(4096, 4096, 3)
    np.testing.assert_array_equal(luma(every), np.asarray(Image.fromarray(every).convert("L")))


def test_grey_composites_are_pillows_over_a_grey_background() -> None:
    """mode="L" is ``Image.composite(image, background.convert("L"), alpha)``: grey out."""
    image, background = photo(90, 61, 4), photo(90, 61, 5)
    thin = feather(disc_mask(90, 61), 3.0)
    wide = np.random.default_rng(6).integers(0, 256, (90, 61), dtype=np.uint8)
    for alpha in (disc_mask(90, 61), thin, wide):
        alpha_u8 = alpha.view(np.uint8) * np.uint8(255) if alpha.dtype == bool else alpha

        def pil(bg: np.ndarray, a: np.ndarray = alpha_u8) -> np.ndarray:
            grey = Image.fromarray(bg).convert("L")
            out = Image.composite(Image.fromarray(image), grey, Image.fromarray(a))
            assert out.mode == "L"
            return np.asarray(out)

        flat = np.zeros_like(image) + np.array([17, 200, 90], np.uint8)
        got = composite_color(image, alpha, (17, 200, 90), mode="L")
        np.testing.assert_array_equal(got, pil(flat))
        np.testing.assert_array_equal(
            composite_over(image, background, alpha, mode="L"), pil(background)
        )
        # Without exclude_foreground the blurred background does not depend on the mask.
        blurred = blur_background(image, np.zeros((90, 61), bool), 4.0, exclude_foreground=False)
        grey = blur_background(image, alpha, 4.0, exclude_foreground=False, mode="L")
        np.testing.assert_array_equal(grey, pil(blurred))
    with pytest.raises(ValueError, match="mode must be one of RGB, L"):
        composite_color(image, thin, mode="RGBA")  # type: ignore[arg-type]


def test_replace_and_grayscale_backgrounds() -> None:
    image = photo(60, 80, 10)
    mask = disc_mask(60, 80)
    sky = np.zeros((30, 200, 3), np.uint8)
    sky[:, 60:140] = (0, 0, 255)  # the centre of the new background is blue
    out = replace_background(image, mask, sky)
    np.testing.assert_array_equal(out[mask], image[mask])
    assert (out[~mask] == (0, 0, 255)).all()
    gray = grayscale_background(image, mask)
    np.testing.assert_array_equal(gray[mask], image[mask])
    rest = gray[~mask]
    assert (rest[:, 0] == rest[:, 1]).all() and (rest[:, 1] == rest[:, 2]).all()


@pytest.mark.parametrize("sigma", [2.0, 15.0])
def test_portrait_blur_has_no_halo(sigma: float) -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    image[:] = (40, 90, 160)  # flat background
    mask = disc_mask(200, 300)
    image[mask] = (250, 250, 250)  # bright subject
    out = blur_background(image, mask, sigma)
    np.testing.assert_array_equal(out[mask], image[mask])
    assert (np.abs(out[~mask].astype(int) - (40, 90, 160)) <= 1).all()
    halo = blur_background(image, mask, sigma, exclude_foreground=False)
    assert halo[~mask].max() > 200  # plain blur smears the subject into the background


def test_portrait_blur_blurs_the_background() -> None:
    image = photo(120, 160, 11)
    mask = np.zeros((120, 160), bool)
    out = blur_background(image, mask, 6.0)
    assert out.std() < image.std() / 4


def test_refocus_keeps_the_focal_plane_sharp() -> None:
    image = photo(100, 120, 12)
    inv_depth = np.zeros((100, 120), np.float32)
    inv_depth[:, 60:] = 1.0  # near right half
    out = refocus(image, inv_depth, focus=1.0, max_sigma_px=6.0)
    np.testing.assert_array_equal(out[:, 66:], image[:, 66:])  # beyond the blur reach
    assert out[:, :50].std() < image[:, :50].std() / 3
    np.testing.assert_array_equal(refocus(image, inv_depth, (100, 10), max_sigma_px=6.0), out)
    far = refocus(image, inv_depth, focus=0.0, max_sigma_px=6.0)
    np.testing.assert_array_equal(far[:, :54], image[:, :54])
    flat = refocus(image, np.ones((100, 120), np.float32), focus=0.5)
    np.testing.assert_array_equal(flat, image)  # constant depth: all on the focal plane


def test_compositing_rejects_bad_input() -> None:
    image = photo(10, 10)
    with pytest.raises(ValueError, match="must match"):
        composite_color(image, np.ones((10, 11), bool))
    with pytest.raises(ValueError, match="color"):
        composite_color(image, np.ones((10, 10), bool), (0, 0, 256))
    with pytest.raises(TypeError, match="uint8"):
        composite_color(image.astype(np.float32), np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="outside"):
        refocus(image, np.ones((10, 10), np.float32), focus=(10, 0))
    with pytest.raises(ValueError, match="sigma_px"):
        blur_background(image, np.ones((10, 10), bool), 0.0)
