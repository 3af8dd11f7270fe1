"""The engine on a tiny exported artifact: parity with the reference, the API, bad files,
EXIF orientation and focal length, and outputs that never leave OUT."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import modules_loaded_by
from PIL import Image
from test_inputs import bad_files  # the same bad files, read through the whole engine

import xdepth
from xdepth.api import ImageFailed
from xdepth.cli.main import main
from xdepth.eval.scenes import make_scene
from xdepth.export.load import load_model
from xdepth.export.reference import ReferenceBackend
from xdepth.job.imageio import load_rgb
from xdepth.post import TEMP_PREFIX

DEFAULT_FILES = ("depth16.png", "depth-color.png", "mask.png", "cutout.png")


@pytest.fixture(autouse=True)
def _compile_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDEPTH_CACHE", str(tmp_path_factory.getbasetemp() / "ov-cache"))


@pytest.fixture(scope="module")
def reference() -> ReferenceBackend:
    return ReferenceBackend(load_model("tiny-dpt-beit", random_init=True))


def _scene_file(path: Path, seed: int, height: int = 72, width: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_scene(seed, height, width).rgb).save(path)
    return path


def test_engine_matches_the_reference_within_the_artifact_tolerance(
    tiny_artifact: Path, reference: ReferenceBackend
) -> None:
    manifest = json.loads((tiny_artifact / "manifest.json").read_text())
    tolerance = manifest["fidelity"]["floors"]["max_rel_error"]
    engine = xdepth.DepthEngine(tiny_artifact)
    images = [make_scene(seed, 90 + 10 * seed, 120).rgb for seed in range(3)]
    for image, result in zip(images, engine.map(images), strict=True):
        expected = reference.predict(image)
        assert result.depth.shape == image.shape[:2] == expected.shape
        rel_error = np.abs(result.depth - expected).max() / np.abs(expected).max()
        assert rel_error <= tolerance


def test_sync_backend_in_its_thread_gives_the_reference_exactly(
    reference: ReferenceBackend,
) -> None:
    engine = xdepth.DepthEngine(reference, preset="seed")
    images = [make_scene(seed, 64, 80).rgb for seed in range(3)]
    results = list(engine.map(images))
    for image, result in zip(images, results, strict=True):
        np.testing.assert_array_equal(result.depth, reference.predict(image))
        np.testing.assert_array_equal(result.mask, result.depth_u8 > 45)


def test_map_keeps_input_order_and_takes_paths_pil_and_arrays(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    engine = xdepth.DepthEngine(tiny_artifact, post_workers=2, readers=2)
    big = make_scene(10, 600, 800).rgb  # slow to post-process: finishes after the small ones
    path = _scene_file(tmp_path / "a.png", 11)
    pil = Image.fromarray(make_scene(12, 40, 50).rgb)
    inputs = [big, str(path), pil, *[make_scene(s, 30 + s, 40).rgb for s in range(13, 18)]]
    results = list(engine.map(inputs))
    expected = [big, load_rgb(path), np.asarray(pil), *inputs[3:]]
    assert len(results) == len(expected)
    for result, image in zip(results, expected, strict=True):
        np.testing.assert_array_equal(result.image, image)
        assert result.mask.shape == image.shape[:2] and result.mask.dtype == bool
    png = results[2]._repr_png_()
    with Image.open(io.BytesIO(png)) as preview:
        assert preview.size == (3 * 50, 40)
    with pytest.raises(ImageFailed, match="empty file"):
        empty = tmp_path / "empty.jpg"
        empty.write_bytes(b"")
        list(engine.map([pil, empty, pil]))
    assert len(list(engine.map([pil, tmp_path / "empty.jpg", pil], errors="skip"))) == 2
    assert engine.predict(pil).depth.shape == (40, 50)


def test_every_bad_file_is_logged_and_the_good_ones_finish(
    tiny_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    good = [_scene_file(folder / f"good{i}.png", i) for i in range(3)]
    bad = bad_files(folder / "bad")
    denied = _scene_file(folder / "bad" / "denied.png", 9)
    bad["permission"] = (denied, "permission denied")
    # As root, permissions never deny: the reader's own open() is made to refuse this file
    # (a real denial is tested in test_inputs.test_permission_denied_for_real).
    original_open = os.open

    def refusing_open(path: str | Path, *args: Any, **kwargs: Any) -> int:
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return original_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    listing = folder / "all.txt"
    listing.write_text("\n".join(str(p) for p in [*good, *(p for p, _ in bad.values())]))
    out = tmp_path / "out"
    args = ["run", f"@{listing}", "-o", str(out), "--artifact", str(tiny_artifact)]
    assert main([*args, "--max-pixels", "1000000", "--quiet"]) == 1
    lines = (out / "errors.jsonl").read_text().splitlines()
    errors = {entry["path"]: entry for entry in map(json.loads, lines)}
    assert set(errors) == {str(p) for p, _ in bad.values()}
    for kind, (path, phrase) in bad.items():
        entry = errors[str(path)]
        assert entry["stage"] == "read" and phrase in entry["reason"], (kind, entry)
    for path in good:
        for suffix in DEFAULT_FILES:
            with Image.open(out / f"{path.stem}.{suffix}") as written:
                written.load()
                assert written.size == (100, 72)
    report = json.loads((out / "run.json").read_text())
    assert (report["ok"], report["failed"], report["skipped"]) == (3, len(bad), 0)
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))


def test_exif_rotated_input_comes_out_upright_with_its_focal_length(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    upright = make_scene(4, 64, 96).rgb
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored turned 90 degrees clockwise
    exif.get_ifd(0x8769)[0xA405] = 28
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.rot90(upright, k=1)).save(folder / "turned.png", exif=exif.tobytes())
    out = tmp_path / "out"
    outputs = "depth16,cutout,ply"
    args = ["run", str(folder), "-o", str(out), "--artifact", str(tiny_artifact), "--quiet"]
    assert main([*args, "--outputs", outputs]) == 0
    with Image.open(out / "turned.depth16.png") as depth16:
        assert depth16.size == (96, 64)
    cutout = np.asarray(Image.open(out / "turned.cutout.png"))
    kept = cutout[..., 3] > 0
    assert kept.any()
    np.testing.assert_array_equal(cutout[..., :3][kept], upright[kept])
    header = (out / "turned.points.ply").read_bytes().split(b"end_header")[0].decode()
    f_px = 28 / 36 * 96
    assert f"f_px={f_px:.3f}" in header and "source=exif" in header


def test_nothing_is_written_outside_out(tiny_artifact: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _scene_file(folder / "top.png", 1)
    _scene_file(folder / "sub" / "x.png", 2)
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside)  # a folder inside OUT that leads out of it
    args = ["run", str(folder), "-o", str(out), "--artifact", str(tiny_artifact), "--quiet"]
    assert main(args) == 1
    assert list(outside.iterdir()) == []
    (entry,) = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert entry["stage"] == "write" and "outside the output folder" in entry["reason"]
    assert (out / "top.cutout.png").is_file()


def test_import_xdepth_stays_light() -> None:
    heavy = ("torch", "transformers", "openvino")
    assert modules_loaded_by("import xdepth; xdepth.DepthEngine", heavy) == []
