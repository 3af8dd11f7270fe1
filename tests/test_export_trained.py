"""Fidelity floors on the trained, shipped xdepth-tiny: f32 parity, bf16 and int8 accuracy.

A trained model gives depth with structure, so here delta1 and the seed recipe's mask
mean something: against the fp32 reference recipe and against the scenes' ground truth,
on held-out scenes the export never saw (neither calibration nor fidelity images).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import shipped_model_structured

from xdepth.cli.main import main
from xdepth.eval.metrics import inv_depth_agreement, mask_iou, recipe_mask
from xdepth.eval.scenes import HELD_OUT_BASE_SEED, Scene, make_scene
from xdepth.export.exporter import export
from xdepth.export.load import load_model
from xdepth.export.reference import ReferenceBackend
from xdepth.model.backends import open_artifact
from xdepth.model.cards import get_card
from xdepth.model.manifest import load_manifest
from xdepth.model.weights import local_weights

CARD = get_card("xdepth-tiny")
pytestmark = [
    pytest.mark.skipif(
        local_weights(CARD) is None, reason="the xdepth-tiny weights are not in this checkout"
    ),
    pytest.mark.usefixtures("one_torch_thread"),
]
# Floors against fp32 need a model with structure.
needs_structured_model = pytest.mark.skipif(
    not shipped_model_structured()[0], reason=shipped_model_structured()[1]
)
EVAL_SEEDS = range(HELD_OUT_BASE_SEED + 700, HELD_OUT_BASE_SEED + 708)
H, W = CARD.input_hw


class Artifacts:
    """f32, bf16 and int8 IRs with the default fidelity floors enforced, made on first use."""

    def __init__(self, root: Path) -> None:
        self.root, self.made = root, {}

    def __getitem__(self, precision: str) -> Path:
        if precision not in self.made:
            self.made[precision] = export("xdepth-tiny", self.root / precision, precision=precision)
        return self.made[precision]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    return Artifacts(tmp_path_factory.mktemp("xdepth-tiny"))


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [make_scene(seed, H + H // 2, W + W // 2) for seed in EVAL_SEEDS]


@pytest.fixture(scope="module")
def recipe(scenes: list[Scene]) -> list[np.ndarray]:
    """The seed recipe's output (transformers fp32 eager) on every evaluation scene."""
    backend = ReferenceBackend(load_model("xdepth-tiny"))
    return [backend.predict(scene.rgb) for scene in scenes]


def _predict(folder: Path, scenes: list[Scene]) -> list[np.ndarray]:
    return open_artifact(folder, use_cache=False).predict_many([s.rgb for s in scenes])


def test_f32_reproduces_the_recipe(
    artifacts: Artifacts, scenes: list[Scene], recipe: list[np.ndarray]
) -> None:
    manifest = load_manifest(artifacts["f32"])
    assert not manifest.random_init and Path(manifest.weights["origin"]).is_dir()
    truth = manifest.fidelity["vs_ground_truth"]
    assert truth["artifact"]["mask_iou"] == pytest.approx(truth["reference"]["mask_iou"], abs=1e-3)
    for got, want in zip(_predict(artifacts["f32"], scenes), recipe, strict=True):
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


@needs_structured_model
def test_bf16_keeps_delta1(
    artifacts: Artifacts, scenes: list[Scene], recipe: list[np.ndarray]
) -> None:
    manifest = load_manifest(artifacts["bf16"])
    assert manifest.fidelity["floors"] == {"delta1": 0.99} and manifest.fidelity["passed"]
    assert manifest.fidelity["vs_reference"]["delta1"] >= 0.99
    got = _predict(artifacts["bf16"], scenes)
    scores = [inv_depth_agreement(g, r)["delta1"] for g, r in zip(got, recipe, strict=True)]
    assert np.mean(scores) >= 0.99


@needs_structured_model
def test_int8_keeps_delta1_and_the_mask(
    artifacts: Artifacts, scenes: list[Scene], recipe: list[np.ndarray]
) -> None:
    manifest = load_manifest(artifacts["int8"])
    fidelity = manifest.fidelity
    assert fidelity["floors"] == {"delta1": 0.97} and fidelity["passed"]
    assert fidelity["vs_reference"]["delta1"] >= 0.97
    assert (manifest.calibration or {})["images"]["count"] == 64

    got = _predict(artifacts["int8"], scenes)
    d1 = [inv_depth_agreement(g, r)["delta1"] for g, r in zip(got, recipe, strict=True)]
    iou = [mask_iou(recipe_mask(g), s.mask) for g, s in zip(got, scenes, strict=True)]
    iou_fp32 = [mask_iou(recipe_mask(r), s.mask) for r, s in zip(recipe, scenes, strict=True)]
    assert np.mean(d1) >= 0.97
    assert np.mean(iou) >= np.mean(iou_fp32) - 0.03  # int8 costs at most 3 points of IoU


def test_int8_demo_keeps_the_shipped_figures(artifacts: Artifacts, tmp_path: Path) -> None:
    """What `make demo` prints and the README quotes, through the int8 artifact: measured
    mask IoU 0.890, delta1 0.867, AbsRel 0.176 on the 24 photo-shaped demo scenes; and the
    export's own ground-truth check on its 8 fidelity images (mask IoU 0.864)."""
    manifest = load_manifest(artifacts["int8"])
    assert manifest.fidelity["vs_ground_truth"]["artifact"]["mask_iou"] >= 0.85
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--artifact", str(artifacts["int8"]), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 24 and summary["backend"] == "openvino-int8"
    assert summary["mask_iou_mean"] >= 0.88, summary
    assert summary["delta1_mean"] >= 0.86, summary
    assert summary["abs_rel_mean"] <= 0.185, summary


def test_int8_with_accuracy_control(tmp_path: Path) -> None:
    """The accuracy-control path: NNCF validates with delta1 against the fp32 outputs.

    A loose drop keeps it to the first validation round (reverting layers one by one
    takes minutes); the floors are held in the tests above.
    """
    folder = export(
        "xdepth-tiny",
        tmp_path / "ac",
        precision="int8",
        accuracy_control=True,
        max_delta1_drop=0.5,
        calibration_size=8,
        fidelity_images=2,
        fidelity_floor=0.0,
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    calibration = manifest["calibration"]
    assert calibration["method"] == "nncf.quantize_with_accuracy_control"
    assert calibration["accuracy_control"]["max_delta1_drop"] == 0.5
    assert calibration["images"]["count"] == 8 and calibration["fake_quantize_nodes"] > 0
    assert 0.0 <= manifest["fidelity"]["vs_reference"]["delta1"] <= 1.0
