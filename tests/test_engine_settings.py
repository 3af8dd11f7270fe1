"""Presets, post-process options and every output kind, on arrays (no model)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xdepth.job.output_folder import settings_hash, settings_record
from xdepth.outputs.kinds import OUTPUT_KINDS
from xdepth.outputs.result import METRIC, DepthResult
from xdepth.outputs.settings import (
    PostSettings,
    SettingsError,
    background_kind,
    make_settings,
    parse_threshold,
)
from xdepth.post import decode_pfm


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A 40x60 image whose left third is near (inverse depth 4) and the rest far (0.5)."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    inv_depth = np.full((40, 60), 0.5, np.float32)
    inv_depth[:, :20] = 4.0
    return image, inv_depth


def test_presets_and_overrides() -> None:
    portrait = make_settings("portrait", feather_px=0)
    assert (portrait.threshold, portrait.feather_px, portrait.largest) == ("otsu", 0.0, True)
    seed = make_settings("seed")
    assert (seed.outputs, seed.overflow, seed.background) == (
        ("depth8", "mask", "composite"),
        "wrap",
        "black",
    )
    assert (seed.composite_mode, seed.resize) == ("L", "seed")  # the notebook's grey clip
    assert make_settings("default").composite_mode == "RGB"  # the photo's colours
    assert seed.hashed()["composite_mode"] == "L"  # a grey clip is other bytes: a new job
    with pytest.raises(SettingsError, match="composite_mode must be one of 'RGB', 'L'"):
        make_settings("seed", composite_mode="RGBA")
    assert make_settings(None) == make_settings("default") == PostSettings()
    assert make_settings(threshold="abs:45.0").threshold == "abs:45"
    assert parse_threshold("45") == "abs:45" and parse_threshold("otsu") == "otsu"
    with pytest.raises(SettingsError, match="unknown preset 'nope'"):
        make_settings("nope")
    with pytest.raises(SettingsError, match="applies to abs:N only"):
        make_settings("seed", threshold="otsu")
    with pytest.raises(SettingsError, match="unknown output"):
        make_settings(outputs=("depth16", "hologram"))


def test_a_preset_file_is_checked(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    good.write_text('outputs = ["mask"]\nthreshold = "nearest:25%"\n')
    assert make_settings(good).threshold == "nearest:25%"
    bad = tmp_path / "bad.toml"
    bad.write_text("feathr_px = 3\n")
    with pytest.raises(SettingsError, match=r"bad\.toml: unknown key\(s\) feathr_px"):
        make_settings(bad)


def test_backgrounds(tmp_path: Path) -> None:
    assert background_kind("#ff8000") == ("color", (255, 128, 0))
    assert background_kind("white") == ("color", (255, 255, 255))
    for bad in ("#12345", str(tmp_path / "missing.png")):
        with pytest.raises(SettingsError, match="--background"):
            background_kind(bad)


def test_every_output_kind_decodes() -> None:
    image, inv_depth = _scene()
    settings = PostSettings(outputs=tuple(OUTPUT_KINDS), ply_stride=2)
    files = DepthResult(image, inv_depth, settings, f_35mm=50.0).files()
    assert set(files) == {s for kind in OUTPUT_KINDS.values() for s in kind.suffixes}
    for suffix, data in files.items():
        if suffix.endswith((".png", ".jpg")):
            with Image.open(io.BytesIO(data)) as decoded:
                assert decoded.size == (60, 40), suffix
    np.testing.assert_array_equal(np.load(io.BytesIO(files["depth.npy"])), inv_depth)
    np.testing.assert_array_equal(decode_pfm(files["depth.pfm"]), inv_depth)
    mask = np.asarray(Image.open(io.BytesIO(files["mask.png"])))
    assert (mask[:, :20] == 255).all() and (mask[:, 20:] == 0).all()
    header = files["points.ply"].split(b"end_header")[0].decode()
    assert "element vertex 600" in header  # 20 x 30 pixels at stride 2
    assert "source=exif (35 mm equivalent 50 mm)" in header


def test_cutout_zeroes_hidden_colour_and_composites_follow_the_background(
    tmp_path: Path,
) -> None:
    image, inv_depth = _scene()
    cutout = DepthResult(image, inv_depth).cutout
    np.testing.assert_array_equal(cutout[:, :20, :3], image[:, :20])
    assert (cutout[:, :20, 3] == 255).all() and (cutout[:, 20:] == 0).all()
    colored = DepthResult(image, inv_depth, PostSettings(background="#0a141e")).composite
    assert (colored[:, 20:] == (10, 20, 30)).all()
    np.testing.assert_array_equal(colored[:, :20], image[:, :20])
    backdrop = tmp_path / "backdrop.png"
    Image.new("RGB", (120, 80), (200, 0, 100)).save(backdrop)
    settings = PostSettings(background=str(backdrop), outputs=("composite",))
    replaced = DepthResult(
        image, inv_depth, settings, background_image=np.full((80, 120, 3), (200, 0, 100), np.uint8)
    ).composite
    assert (replaced[:, 20:] == (200, 0, 100)).all()
    # The backdrop's bytes are part of the job's settings hash.
    before = settings_hash(settings_record({"kind": "test"}, settings))
    Image.new("RGB", (120, 80), (0, 0, 0)).save(backdrop)
    assert settings_hash(settings_record({"kind": "test"}, settings)) != before


def test_metric_models_cut_in_metres() -> None:
    image, inv_depth = _scene()  # inverse depth in 1/m: near 0.25 m, far 2 m
    result = DepthResult(image, inv_depth, PostSettings(threshold="metric:0.5"), semantics=METRIC)
    np.testing.assert_allclose(result.depth_m[0, [0, 59]], [0.25, 2.0])
    assert result.mask[:, :20].all() and not result.mask[:, 20:].any()
    with pytest.raises(ValueError, match="no metric depth"):
        DepthResult(image, inv_depth).depth_m  # noqa: B018
