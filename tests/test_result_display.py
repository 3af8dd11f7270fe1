"""How results show themselves: the notebook preview, re-thresholding, the progress bar."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from xdepth.job.local import _progress_bar
from xdepth.outputs.result import DepthResult
from xdepth.outputs.settings import SettingsError
from xdepth.post import colorize, threshold_mask

HEIGHT_PX, WIDTH_PX = 48, 64


def square_scene(height: int = HEIGHT_PX, width: int = WIDTH_PX) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image and an inverse depth with one near square on a far, tilted wall."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    inv_depth = np.linspace(0.05, 0.1, height * width, dtype=np.float32).reshape(height, width)
    inv_depth[10:30, 20:44] = 1.0
    return image, inv_depth


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.mode == "RGB"
        return np.asarray(picture)


def test_png_preview_is_image_depth_and_cutout_side_by_side() -> None:
    image, inv_depth = square_scene()
    result = DepthResult(image, inv_depth)
    strip = decode(result._repr_png_())
    assert strip.shape == (HEIGHT_PX, 3 * WIDTH_PX, 3)
    left, middle, right = np.split(strip, 3, axis=1)
    np.testing.assert_array_equal(left, image)
    np.testing.assert_array_equal(middle, colorize(inv_depth, result.settings.colormap))
    assert result.mask.sum() == 20 * 24  # the near square, under the default abs:45
    np.testing.assert_array_equal(right[result.mask], image[result.mask])
    backdrop = right[~result.mask]
    assert set(np.unique(backdrop)) == {204, 255}  # the checkerboard's two greys
    assert (backdrop == backdrop[:, :1]).all()  # grey: equal channels


def test_wide_preview_is_scaled_down_keeping_its_aspect() -> None:
    image, inv_depth = square_scene(100, 1000)
    strip = decode(DepthResult(image, inv_depth)._repr_png_())
    assert strip.shape == (51, 1536, 3)  # 3000 px of panels, scaled to 1536 (100 -> 51.2)
    assert DepthResult(image, inv_depth).preview(max_width_px=300).shape == (10, 300, 3)


def test_with_settings_rethresholds_the_same_depth() -> None:
    image, inv_depth = square_scene()
    result = DepthResult(image, inv_depth)
    nearest = result.with_settings(threshold="nearest:10%", feather_px=2)
    np.testing.assert_array_equal(nearest.mask, threshold_mask(inv_depth, "nearest:10%"))
    assert nearest.depth is inv_depth and nearest.image is image
    assert nearest.settings.feather_px == 2.0 and 0 < nearest.alpha[nearest.mask].min() < 255
    assert result.settings.threshold == "abs:45" and result.mask.sum() == 20 * 24
    with pytest.raises(SettingsError, match="bad settings"):
        result.with_settings(thresold="otsu")
    with pytest.raises(SettingsError, match="--threshold"):
        result.with_settings(threshold="farthest")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_shows_on_a_terminal_only_and_never_when_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with _progress_bar(3, quiet=False) as bar:
        assert not bar.disable
        bar.update(3)
    assert "3/3" in terminal.getvalue()
    with _progress_bar(3, quiet=True) as bar:
        assert bar.disable
    monkeypatch.setattr("sys.stderr", io.StringIO())  # piped or captured: no bar
    with _progress_bar(3, quiet=False) as bar:
        assert bar.disable
