"""The artifact contract on the engine side: manifest checks, backends, compile cache.

These tests build a small OpenVINO model directly (uint8 NHWC in, channel mean out), so the
contract is tested without torch and without an export.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from xdepth.errors import XDepthError
from xdepth.model.backends import BackendUnavailable, open_artifact
from xdepth.model.backends.openvino import OpenVINOBackend
from xdepth.model.backends.torch_graph import missing_cpu_features
from xdepth.model.manifest import (
    FORMAT_VERSION,
    ArtifactFileError,
    InputSpec,
    Manifest,
    ManifestError,
    OutputSpec,
    UnsupportedFormatVersion,
    file_record,
    load_manifest,
    write_manifest,
)
from xdepth.model.preprocess import resize_for_model
from xdepth.paths import compile_cache_dir
from xdepth.post.resize import resize_depth

H, W = 24, 32


def _mean_model(divisor: float = 255.0) -> ov.Model:
    """uint8 1 x H x W x 3 -> float32 1 x H x W: the mean of the channels / `divisor`."""
    image = ops.parameter([1, H, W, 3], ov.Type.u8, name="image")
    value = ops.divide(ops.convert(image, ov.Type.f32), np.float32(divisor))
    mean = ops.reduce_mean(value, np.int64(3), keep_dims=False)
    return ov.Model([ops.result(mean)], [image], "channel-mean")


def write_artifact(
    folder: Path,
    *,
    runtime: dict | None = None,
    fmt: str = "openvino",
    torch: str = "",
    divisor: float = 255.0,
) -> Manifest:
    """A complete artifact folder around the channel-mean model (or a stand-in .pt2)."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "openvino":
        ov.save_model(_mean_model(divisor), folder / "model.xml")
        files = (
            file_record(folder, "model.xml", "model"),
            file_record(folder, "model.bin", "data"),
        )
    else:
        (folder / "model.pt2").write_bytes(b"not a real package")
        files = (file_record(folder, "model.pt2", "model"),)
    manifest = Manifest(
        directory=folder,
        format_version=FORMAT_VERSION,
        variant="channel-mean",
        source="tests",
        weights={"origin": "random-init", "random_init": True},
        input=InputSpec("image", H, W, "NHWC", "u8", True, "bicubic", False, 1),
        output=OutputSpec(
            "inverse_depth", "relative_inverse_depth", "inverse_depth", (1, H, W), "f32"
        ),
        format=fmt,
        flavour="ir" if fmt == "openvino" else "aoti",
        precision="f32",
        files=files,
        runtime=runtime if runtime is not None else {"inference_precision": "f32"},
        libraries={"openvino": ov.__version__, "torch": torch},
        calibration=None,
        export={"seconds": 0.0},
        fidelity={"status": "not measured"},
    )
    write_manifest(manifest)
    return manifest


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    write_artifact(tmp_path / "art")
    return tmp_path / "art"


def _edit_manifest(folder: Path, **changes: object) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_manifest_round_trips(artifact: Path) -> None:
    manifest = load_manifest(artifact)
    on_disk = json.loads((artifact / "manifest.json").read_text())
    assert manifest.to_dict() == on_disk
    assert manifest.model_file == artifact / "model.xml"
    assert [f.name for f in manifest.files] == ["model.xml", "model.bin"]
    assert manifest.files[1].bytes == (artifact / "model.bin").stat().st_size
    assert manifest.input.hw == (H, W) and manifest.random_init


def test_missing_file_is_named(artifact: Path) -> None:
    (artifact / "model.bin").unlink()
    with pytest.raises(ArtifactFileError, match=r"model\.bin: missing"):
        load_manifest(artifact)


def test_truncated_file_is_named(artifact: Path) -> None:
    data = (artifact / "model.xml").read_bytes()
    (artifact / "model.xml").write_bytes(data[:-10])
    with pytest.raises(ArtifactFileError) as err:
        load_manifest(artifact)
    message = str(err.value)
    assert "model.xml: truncated" in message
    assert f"{len(data) - 10} bytes" in message and f"lists {len(data)}" in message


def test_altered_file_fails_sha256(artifact: Path) -> None:
    path = artifact / "model.bin"
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactFileError, match=r"model\.bin: sha256 mismatch"):
        load_manifest(artifact)
    load_manifest(artifact, check_sha256=False)  # sizes alone still match


def test_unknown_format_version(artifact: Path) -> None:
    _edit_manifest(artifact, format_version=FORMAT_VERSION + 1)
    with pytest.raises(UnsupportedFormatVersion) as err:
        load_manifest(artifact)
    assert "manifest.json" in str(err.value) and f"format_version {FORMAT_VERSION + 1}" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"precision": "int4"}, "field 'precision' is 'int4'"),
        (
            {"files": [{"name": "../model.xml", "bytes": 1, "sha256": "0", "role": "model"}]},
            "plain path",
        ),
        ({"input": {"height": 24}}, "'input.preprocessing_in_graph' is missing"),
        ({"format_version": True}, "'format_version' has the wrong type"),
    ],
)
def test_bad_fields_are_named(artifact: Path, change: dict, expected: str) -> None:
    _edit_manifest(artifact, **change)
    with pytest.raises(ManifestError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        load_manifest(artifact)


def test_missing_field_and_bad_json(artifact: Path) -> None:
    data = json.loads((artifact / "manifest.json").read_text())
    del data["fidelity"]
    (artifact / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="required fields missing: fidelity"):
        load_manifest(artifact)
    (artifact / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(artifact)


def test_folder_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not an artifact folder"):
        load_manifest(tmp_path)


def test_openvino_backend_runs_the_contract(artifact: Path, tmp_path: Path) -> None:
    backend = open_artifact(artifact, cache_dir=tmp_path / "cache")
    assert isinstance(backend, OpenVINOBackend) and backend.name == "openvino-f32"
    assert backend.properties()["INFERENCE_PRECISION_HINT"] == "f32"
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (5, H, W, 3), dtype=np.uint8)
    expected = batch.astype(np.float32).mean(axis=3) / 255
    np.testing.assert_allclose(backend.infer_u8(batch[:1]), expected[:1], rtol=1e-6)
    np.testing.assert_allclose(backend.infer_u8(batch), expected, rtol=1e-6)  # async queue

    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    resized = resize_for_model(image, backend.preprocess, (H, W))
    want = resize_depth(resized.astype(np.float32).mean(axis=2) / 255, 50, 70)
    got = backend.predict(image)
    assert got.shape == (50, 70) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    many = backend.predict_many([image, image[:30]])
    np.testing.assert_array_equal(many[0], got)
    assert many[1].shape == (30, 70)


def test_backend_rejects_bad_input(artifact: Path, tmp_path: Path) -> None:
    backend = OpenVINOBackend(artifact, use_cache=False)
    with pytest.raises(ValueError, match=r"uint8 N x 24 x 32 x 3"):
        backend.infer_u8(np.zeros((1, W, H, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        backend.predict(np.zeros((10, 10), np.uint8))
    with pytest.raises(XDepthError, match="hint 'FAST'"):
        OpenVINOBackend(artifact, use_cache=False, hint="FAST")


def test_manifest_compile_properties_are_applied(tmp_path: Path) -> None:
    folder = tmp_path / "art"
    runtime = {"inference_precision": "f32", "ov_properties": {"SNIPPETS_MODE": "DISABLE"}}
    write_artifact(folder, runtime=runtime)
    backend = OpenVINOBackend(folder, use_cache=False, inference_precision="bf16")
    assert backend.config["SNIPPETS_MODE"] == "DISABLE"  # compiled with it (not readable back)
    assert backend.config["INFERENCE_PRECISION_HINT"] == "bf16"  # the caller's choice wins


def test_compile_cache_is_filled_and_reused(artifact: Path, tmp_path: Path) -> None:
    cache = tmp_path / "ov-cache"
    first = OpenVINOBackend(artifact, cache_dir=cache)
    assert first.cache_dir is not None and first.cache_dir.parent == cache
    blobs = sorted(p.name for p in first.cache_dir.glob("*.blob"))
    assert blobs, "the first compile wrote nothing to the cache"
    second = OpenVINOBackend(artifact, cache_dir=cache)
    assert second.cache_dir == first.cache_dir
    assert sorted(p.name for p in second.cache_dir.glob("*.blob")) == blobs  # read, not added
    x = np.full((1, H, W, 3), 51, np.uint8)
    np.testing.assert_array_equal(first.infer_u8(x), second.infer_u8(x))
    np.testing.assert_allclose(second.infer_u8(x), 0.2, rtol=1e-6)


def test_cache_never_serves_a_replaced_artifact(tmp_path: Path) -> None:
    """Re-exporting into the same folder must not pick up the old compiled blob."""
    cache, folder = tmp_path / "ov-cache", tmp_path / "art"
    x = np.full((1, H, W, 3), 51, np.uint8)
    write_artifact(folder, divisor=255.0)
    np.testing.assert_allclose(OpenVINOBackend(folder, cache_dir=cache).infer_u8(x), 0.2)
    write_artifact(folder, divisor=51.0)
    np.testing.assert_allclose(OpenVINOBackend(folder, cache_dir=cache).infer_u8(x), 1.0)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDEPTH_CACHE", str(tmp_path / "c"))
    assert compile_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("XDEPTH_CACHE")
    assert compile_cache_dir() == Path.home() / ".cache" / "xdepth" / "ov-cache"


def test_torch_artifact_checks(tmp_path: Path) -> None:
    folder = tmp_path / "torch-art"
    write_artifact(folder, fmt="torch", torch="1.0.0")
    with pytest.raises(XDepthError, match="cache_dir do not apply"):
        open_artifact(folder, cache_dir=tmp_path)
    with pytest.raises(BackendUnavailable, match=r"exported with torch 1\.0\.0"):
        open_artifact(folder)


def test_cpu_feature_check() -> None:
    flags = "-mavx512f -mavx512dq -mfma -mavx512vnni -mamx-tile -march=native"
    available = {"avx512f", "avx512dq", "fma", "avx512_vnni"}
    assert missing_cpu_features(flags, available) == ["amx_tile"]
    assert missing_cpu_features(flags, available | {"amx_tile"}) == []
