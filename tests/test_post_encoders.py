"""Encoders decode with Pillow to the same pixels; atomic writes never leave partial files."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xdepth.post import (
    TEMP_PREFIX,
    encode,
    encode_jpeg,
    encode_png,
    encode_webp_lossless,
    remove_stale_temp_files,
    write_atomic,
)


def decoded(data: bytes) -> tuple[str, str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as img:
        return img.format, img.mode, np.asarray(img)


def picture(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB"), (4, "RGBA")])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_png_is_lossless_in_rgb_order(channels: int, mode: str, level: int) -> None:
    image = picture(37, 53, channels)
    fmt, got_mode, pixels = decoded(encode_png(image, level=level))
    assert (fmt, got_mode) == ("PNG", mode)
    np.testing.assert_array_equal(pixels, image)


def test_png_filters_all_decode_the_same() -> None:
    image = picture(20, 30, 3, seed=1)
    for png_filter in ("adaptive", "fast", "sub", "up", "none"):
        np.testing.assert_array_equal(decoded(encode_png(image, png_filter=png_filter))[2], image)


def test_png_16_bit_grey() -> None:
    levels = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    with Image.open(io.BytesIO(encode_png(levels))) as img:
        assert img.mode.startswith("I")
        np.testing.assert_array_equal(np.asarray(img).astype(np.uint16), levels)


@pytest.mark.parametrize(("channels", "mode"), [(3, "RGB"), (4, "RGBA")])
def test_webp_lossless(channels: int, mode: str) -> None:
    image = picture(31, 45, channels, seed=2)
    fmt, got_mode, pixels = decoded(encode_webp_lossless(image))
    assert (fmt, got_mode) == ("WEBP", mode)
    np.testing.assert_array_equal(pixels, image)


def test_jpeg_keeps_size_order_and_quality() -> None:
    image = np.zeros((64, 96, 3), np.uint8)
    image[..., 0] = 200  # red: a channel swap would show as blue
    fmt, mode, pixels = decoded(encode_jpeg(image, quality=95))
    assert (fmt, mode, pixels.shape) == ("JPEG", "RGB", (64, 96, 3))
    assert np.abs(pixels.astype(int) - image).max() <= 3
    assert len(encode_jpeg(picture(64, 96, 3), 30)) < len(encode_jpeg(picture(64, 96, 3), 95))
    assert decoded(encode_jpeg(picture(8, 8, 1)))[1] == "L"


def test_encode_dispatches_by_name() -> None:
    image = picture(5, 6, 3)
    assert encode(image, ".PNG", level=3) == encode_png(image, level=3)
    assert decoded(encode(image, "jpeg"))[0] == "JPEG"
    assert decoded(encode(image, "webp"))[0] == "WEBP"
    with pytest.raises(ValueError, match="unknown image format 'tiff'"):
        encode(image, "tiff")


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 10000), (10000, 1)])
def test_extreme_shapes_round_trip(height: int, width: int) -> None:
    image = picture(height, width, 3, seed=3)
    np.testing.assert_array_equal(decoded(encode_png(image))[2], image)


def test_encoders_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="no alpha"):
        encode_jpeg(picture(4, 4, 4))
    with pytest.raises(ValueError, match="level"):
        encode_png(picture(4, 4, 3), level=10)
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(picture(4, 4, 3), quality=0)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        encode_webp_lossless(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((4, 4, 2), np.uint8))


def test_write_atomic_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "clip.png"
    assert write_atomic(target, b"first") == target
    write_atomic(target, b"second", fsync=True)
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.png"]


def test_write_atomic_failure_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "depth.png"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.png"]


def test_write_atomic_uses_a_recognisable_temp_in_the_same_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append((Path(src), Path(dst)))
        assert Path(src).read_bytes() == b"payload" and not Path(dst).exists()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_atomic(tmp_path / "a.webp", b"payload")
    ((src, dst),) = seen
    assert src.parent == dst.parent == tmp_path
    assert src.name.startswith(TEMP_PREFIX + "a.webp.")


def test_write_atomic_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        write_atomic(tmp_path / "missing" / "x.png", b"")
    with pytest.raises(IsADirectoryError, match="folder"):
        write_atomic(tmp_path, b"")


def test_stale_temp_files_are_removed_and_others_kept(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    keep = [tmp_path / "out.png", tmp_path / "sub" / "xdepth-tmp-lookalike.png"]
    stale = [tmp_path / f"{TEMP_PREFIX}out.png.abc", tmp_path / "sub" / f"{TEMP_PREFIX}b.png.1"]
    for path in keep + stale:
        path.write_bytes(b"x")
    assert remove_stale_temp_files(tmp_path, recursive=False) == [stale[0]]
    assert remove_stale_temp_files(tmp_path) == [stale[1]]
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)


def test_young_temp_files_can_be_spared(tmp_path: Path) -> None:
    young, old = tmp_path / f"{TEMP_PREFIX}young", tmp_path / f"{TEMP_PREFIX}old"
    young.write_bytes(b"")
    old.write_bytes(b"")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert remove_stale_temp_files(tmp_path, min_age_s=60) == [old]
    assert young.exists()
    with pytest.raises(NotADirectoryError):
        remove_stale_temp_files(tmp_path / "nope")
