"""The fast path by default: `xdepth run` without a model option runs a cached OpenVINO
artifact at the precision measured fastest on this CPU, and says what this CPU computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from xdepth.api import DepthEngine
from xdepth.cli.main import main
from xdepth.eval.scenes import HELD_OUT_BASE_SEED, make_scene, photo_hw
from xdepth.model.backends import open_artifact
from xdepth.model.cache import AUTO_MARGIN, artifacts_dir, choose_precision, native_precisions
from xdepth.model.hardware import (
    CpuInfo,
    PrecisionFallbackWarning,
    cpu_info,
    fallback_note,
    machine_key,
)

ZEN3 = {"avx2", "fma", "sse4_2"}
ZEN3_ISA = {"f32": "AVX2", "bf16": "none", "int8": "AVX2 (no VNNI)"}
ZEN4_ISA = {"f32": "AVX-512", "bf16": "AVX512_BF16", "int8": "AVX512_VNNI"}
SPR_ISA = {"f32": "AVX-512", "bf16": "AMX", "int8": "AMX"}
ZEN4 = ZEN3 | {"avx512f", "avx512_bf16", "avx512_vnni"}
SAPPHIRE_RAPIDS = ZEN4 | {"amx_tile", "amx_bf16", "amx_int8"}


@pytest.mark.parametrize(
    ("flags", "caps", "isa", "bf16"),
    [
        (ZEN3, ("FP32", "INT8"), ZEN3_ISA, False),
        (ZEN4, ("BF16", "FP32", "INT8"), ZEN4_ISA, True),
        (SAPPHIRE_RAPIDS, ("BF16", "FP32", "INT8"), SPR_ISA, True),
    ],
)
def test_cpu_isa_per_precision(flags: set, caps: tuple, isa: dict, bf16: bool) -> None:
    info = CpuInfo("some CPU", frozenset(flags), caps)
    assert info.isa == isa and info.has_bf16 is bf16
    assert info.describe()["isa"] == isa and info.summary().startswith("some CPU (f32 ")


def test_fallback_is_named_only_when_the_cpu_computes_less(monkeypatch) -> None:
    avx2 = CpuInfo("AMD EPYC 7B13", frozenset(ZEN3), ("FP32", "INT8"))
    monkeypatch.setattr("xdepth.model.hardware.cpu_info", lambda: avx2)
    monkeypatch.setattr("xdepth.model.cache.cpu_info", lambda: avx2)
    assert fallback_note("bf16", "bf16", "bf16") is None
    assert fallback_note("f32", "f32", "f32") is None
    note = fallback_note("bf16", "f32", "bf16")
    assert (
        note and "AMD EPYC 7B13" in note and "no native bf16" in note and "runs it in f32" in note
    )
    assert "its float layers" in (fallback_note("int8", "f32", "bf16") or "")
    assert native_precisions() == ("f32", "int8")  # no bf16 candidate without native bf16


def test_native_precisions_follow_openvino() -> None:
    expected = ("f32", "bf16", "int8") if cpu_info().has_bf16 else ("f32", "int8")
    assert native_precisions() == expected


def test_choose_precision_prefers_precision_within_the_margin() -> None:
    assert choose_precision({"f32": 10.0, "bf16": 20.0, "int8": 30.0}) == "int8"
    close = 30.0 * (1 - AUTO_MARGIN) + 0.01
    assert choose_precision({"f32": 10.0, "bf16": close, "int8": 30.0}) == "bf16"
    assert choose_precision({"f32": 31.0, "int8": 30.0}) == "f32"
    assert choose_precision({"int8": 1.0}) == "int8"


def test_engine_warns_when_the_artifact_falls_back(tiny_artifact: Path) -> None:
    backend = open_artifact(tiny_artifact, use_cache=False)
    backend.fallback = "this CPU has no native bf16"  # what a CPU without bf16 reports
    with pytest.warns(PrecisionFallbackWarning, match="no native bf16"):
        DepthEngine(backend)


def test_run_without_a_model_option_runs_the_fastest_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        scene = make_scene(HELD_OUT_BASE_SEED + 700 + i, *photo_hw(i, 256))
        Image.fromarray(scene.rgb).save(photos / f"p{i}.jpg", quality=92)
    out = tmp_path / "out"
    assert main(["run", str(photos), "-o", str(out)]) == 0
    said = capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    precision = run["precision"]
    record_file = next(artifacts_dir().glob("auto-xdepth-tiny-*.json"))
    record = json.loads(record_file.read_text())[machine_key()]
    assert precision["effective"] == record["chosen"] in native_precisions()
    assert set(record["model_images_per_s"]) | set(record["dropped"]) == set(native_precisions())
    assert f"{record['chosen']} is the fastest on this CPU" in said
    assert run["model"] == f"xdepth-tiny openvino {record['chosen']}" and run["ok"] == 2
    assert precision["cpu"] == cpu_info().summary() and precision["fallback"] is None
    # The second run reuses the measured choice: nothing is exported or measured again.
    assert main(["run", str(photos), "-o", str(tmp_path / "again")]) == 0
    said = capsys.readouterr().err
    assert "the fastest on this CPU (measured" in said and "exporting" not in said


def test_export_auto_keeps_the_fastest_precision_that_passes(tmp_path: Path) -> None:
    """Random weights miss the bf16 and int8 delta1 floors, so f32 is what is left; the
    candidates that were exported and not chosen leave nothing behind."""
    from xdepth.export.auto import export_fastest

    out = tmp_path / "art"
    folder, record = export_fastest("tiny-dpt-beit", out, random_init=True, fidelity_images=2)
    assert folder == out and record["chosen"] == "f32"
    assert set(record["dropped"]) == set(native_precisions()) - {"f32"}
    assert all("under the floor" in reason for reason in record["dropped"].values())
    assert json.loads((out / "manifest.json").read_text())["precision"] == "f32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
