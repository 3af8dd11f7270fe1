"""`xdepth run`, `xdepth demo` and `xdepth variants` end to end on the reference backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xdepth.cli.main import main
from xdepth.eval.scenes import make_scene
from xdepth.export.load import load_model
from xdepth.export.reference import ReferenceBackend, image_processor
from xdepth.model.cards import real_cards
from xdepth.outputs.result import DepthResult
from xdepth.outputs.settings import make_settings

TINY = ["--variant", "tiny-dpt-beit", "--random-init", "--reference"]
KINDS = ("depth16.png", "depth-color.png", "mask.png", "cutout.png")


def _scene_jpeg(path: Path, seed: int, size: int = 96) -> None:
    Image.fromarray(make_scene(seed, size, size + 32).rgb).save(path, quality=90)


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """Good JPEGs (one in a subfolder) among a zero-byte, a non-image and a truncated file."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _scene_jpeg(folder / "a.jpg", 1)
    _scene_jpeg(folder / "sub" / "b.jpg", 2)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("this is not a picture")
    whole = (folder / "a.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    return folder


def test_run_isolates_bad_files(mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", str(mixed_folder), "-o", str(out), *TINY, "--quiet"]) == 1
    for rel in ("a", "sub/b"):
        for kind in KINDS:
            with Image.open(out / f"{rel}.{kind}") as image:
                image.load()
                assert image.size == (128, 96)
        with Image.open(out / f"{rel}.depth16.png") as depth16:
            assert depth16.mode.startswith("I;16") or depth16.mode == "I"
        with Image.open(out / f"{rel}.cutout.png") as cutout:
            assert cutout.mode == "RGBA"
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(Path(e["path"]).name for e in errors) == ["cut.jpg", "notes.png", "zero.jpg"]
    assert all(e["stage"] == "read" and e["reason"] for e in errors)
    assert not list(out.rglob("*tmp*"))


def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """0 all good, 1 some images failed, 2 usage errors (nothing processed)."""
    folder = tmp_path / "in"
    folder.mkdir()
    _scene_jpeg(folder / "a.jpg", 1)
    assert main(["run", str(folder), "-o", str(tmp_path / "o0"), *TINY, "--quiet"]) == 0
    (folder / "zero.jpg").write_bytes(b"")
    assert main(["run", str(folder), "-o", str(tmp_path / "o1"), *TINY, "--quiet"]) == 1
    assert (tmp_path / "o1" / "a.cutout.png").is_file()
    usage = [
        [str(tmp_path / "missing")],  # an input that names nothing
        [str(tmp_path / "empty-folder")],  # no image files at all
        [str(folder), "--outputs", "depth16,nope"],
        [str(folder), "--threshold", "abs:300"],
        [str(folder), "--threshold", "metric:2"],  # a metric cut on a relative model
        [str(folder), "--background", "#12345"],
        [str(folder), "--streams", "2"],  # OpenVINO option without an artifact
        [str(folder), "--artifact", str(tmp_path), "--variant", "xdepth-tiny"],
    ]
    (tmp_path / "empty-folder").mkdir()
    for args in usage:
        assert main(["run", *args, "-o", str(tmp_path / "o2"), *TINY[2:]]) == 2, args
    assert not (tmp_path / "o2" / "a.cutout.png").exists()
    assert capsys.readouterr().err.count("xdepth run:") == len(usage)


def test_unknown_variant_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _scene_jpeg(tmp_path / "a.jpg", 1)
    assert (
        main(["run", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "o"), "--variant", "nope"]) == 2
    )
    assert "unknown variant 'nope'" in capsys.readouterr().err


def test_variants_lists_every_real_card(capsys: pytest.CaptureFixture) -> None:
    assert main(["variants"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]}
    assert listed == {card.name for card in real_cards()}
    assert "dpt-beit-large-512" in listed and "depth-pro" in listed


def test_reference_recipe_is_the_seed_bit_for_bit() -> None:
    """The seed notebook's lines and xdepth's reference path give identical bytes."""
    loaded = load_model("tiny-dpt-beit", random_init=True)
    image = Image.fromarray(make_scene(3, 80, 120).rgb)
    # --- the seed notebook, verbatim in substance ---
    inputs = image_processor(loaded.card)(images=image, return_tensors="pt")
    with torch.no_grad():
        predicted_depth = loaded.model(**inputs).predicted_depth
    prediction = torch.nn.functional.interpolate(
        predicted_depth.unsqueeze(1), size=image.size[::-1], mode="bicubic", align_corners=False
    )
    output = prediction.squeeze().cpu().numpy()
    formatted = (output * 255 / np.max(output)).astype("uint8")
    depth = np.array(Image.fromarray(formatted))
    mask = Image.fromarray(np.where(depth > 45, 255, 0).astype(np.uint8))
    seed = Image.composite(image, Image.fromarray(depth * 0).convert("L"), mask)  # grey
    # --- xdepth ---
    ours_depth = ReferenceBackend(loaded).predict(np.asarray(image))
    result = DepthResult(np.asarray(image), ours_depth, make_settings("seed"))
    np.testing.assert_array_equal(ours_depth, output)
    np.testing.assert_array_equal(result.depth_u8, formatted)
    np.testing.assert_array_equal(result.mask, np.asarray(mask) == 255)
    np.testing.assert_array_equal(result.composite, np.asarray(seed))
    colour = DepthResult(np.asarray(image), ours_depth, make_settings("default"))
    np.testing.assert_array_equal(colour.composite[colour.mask], np.asarray(image)[colour.mask])
    # The default saturates the undershoot instead of wrapping it to "near".
    undershoot = output < 0
    assert undershoot.any()
    clipped = DepthResult(np.asarray(image), ours_depth, make_settings("default"))
    assert not clipped.mask[undershoot].any()
    assert result.mask[output * 255 / output.max() <= -1].all()


def test_demo_writes_outputs_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--count", "2", *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("images", "mask_iou_mean", "delta1_mean", "abs_rel_mean", "seconds"):
        assert key in summary
    assert 0 <= summary["mask_iou_mean"] <= 1 and 0 <= summary["delta1_mean"] <= 1
    assert summary["images"] == 2 and summary["images_per_s"] > 0
    assert summary["model"] == "tiny-dpt-beit (random-init)"
    assert summary["backend"] == "reference"
    # Photo-shaped scenes: a landscape 16:9 and a portrait 3:4 one.
    assert summary["scenes"]["sizes_hw"] == [[216, 384], [384, 288]]
    with Image.open(out / "contact_sheet.png") as sheet:  # rows 192 px high, the widest first
        assert sheet.size == (round(3 * 384 * 192 / 216), 2 * 192)
    for kind in KINDS:
        assert (out / f"scene-001.{kind}").stat().st_size > 0


def test_quiet_is_quiet_while_the_model_is_first_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """A first use exports the model, and the libraries doing it (transformers, NNCF)
    print bars and warnings of their own: --quiet shows none of them; the summary stays."""
    monkeypatch.setenv("XDEPTH_ARTIFACTS", str(tmp_path / "fresh"))
    image = tmp_path / "scene.png"
    Image.fromarray(make_scene(3, 48, 64).rgb).save(image)
    args = ["run", str(image), "-o", str(tmp_path / "out"), "--variant", "xdepth-tiny"]
    assert main([*args, "--precision", "int8", "--outputs", "mask", "--quiet"]) == 0
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "1 ok" in captured.out
