"""The PyTorch graph (AOTInductor, bf16) artifact, and the engine running without torch.

One AOTInductor compile for the whole file (it takes tens of seconds on 2 cores): the
trained xdepth-tiny when it meets its accuracy targets, else tiny-dpt-beit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import shipped_model_structured

from xdepth.eval.metrics import inv_depth_agreement, mask_iou, recipe_mask
from xdepth.eval.scenes import HELD_OUT_BASE_SEED, make_scene
from xdepth.export.exporter import export
from xdepth.export.load import load_model
from xdepth.export.reference import ReferenceBackend
from xdepth.model.backends import open_artifact
from xdepth.model.backends.torch_graph import TorchGraphBackend
from xdepth.model.cards import get_card
from xdepth.model.manifest import load_manifest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAINED = shipped_model_structured()[0]  # a model with structure (conftest)
MODEL = "xdepth-tiny" if TRAINED else "tiny-dpt-beit"
SEEDS = [HELD_OUT_BASE_SEED + 600 + i for i in range(3)]  # not among the fidelity images


def _scene_rgb(seed: int) -> np.ndarray:
    h, w = get_card(MODEL).input_hw
    return make_scene(seed, h + h // 2, w + w // 2).rgb


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("torch-artifacts")
    common = {"random_init": not TRAINED, "fidelity_images": 4}
    return {
        "torch": export(
            MODEL,
            root / "torch-bf16",
            fmt="torch",
            precision="bf16",
            fidelity_floor=None if TRAINED else 0.0,
            **common,
        ),
        "openvino": export(MODEL, root / "openvino-f32", **common),
    }


@pytest.fixture(scope="module")
def reference() -> ReferenceBackend:
    return ReferenceBackend(load_model(MODEL, random_init=not TRAINED))


def test_torch_bf16_graph(artifacts: dict[str, Path], reference: ReferenceBackend) -> None:
    folder = artifacts["torch"]
    manifest = load_manifest(folder)
    assert (manifest.format, manifest.flavour, manifest.precision) == ("torch", "aoti", "bf16")
    assert [f.name for f in manifest.files] == ["model.pt2"]
    assert "-mavx" in manifest.runtime["compile_flags"]
    stored = (manifest.weights_storage or {})["constant_bytes_by_dtype"]
    assert stored["bfloat16"] > 10 * stored.get("float32", 0)  # freezing folded the casts

    backend = open_artifact(folder)
    assert isinstance(backend, TorchGraphBackend) and backend.name == "torch-bf16"
    for seed in SEEDS:
        image = _scene_rgb(seed)
        got, want = backend.predict(image), reference.predict(image)
        assert got.shape == image.shape[:2] and got.dtype == np.float32
        rel = np.abs(got - want) / np.abs(want).max()
        assert rel.max() > 1e-4  # really bf16, not an f32 graph
        if TRAINED:
            assert inv_depth_agreement(got, want)["delta1"] >= 0.99
            assert mask_iou(recipe_mask(got), recipe_mask(want)) >= 0.95
        else:
            assert rel.max() <= 0.1 and rel.mean() <= 5e-3
    batch = np.stack([backend.resize(_scene_rgb(seed)) for seed in SEEDS[:2]])
    np.testing.assert_array_equal(
        backend.infer_u8(batch), np.concatenate([backend.infer_u8(x[None]) for x in batch])
    )


RUN_WITHOUT_TORCH = textwrap.dedent(
    """
    import json, sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    import numpy as np
    from xdepth.model.backends import BackendUnavailable, open_artifact
    from xdepth.eval.scenes import make_scene

    ov_dir, torch_dir, seed, h, w, out = sys.argv[1:]
    image = make_scene(int(seed), int(h), int(w)).rgb
    depth = open_artifact(ov_dir, use_cache=False).predict(image)
    np.save(out, depth)
    try:
        open_artifact(torch_dir)
        refused = ""
    except BackendUnavailable as exc:
        refused = str(exc)
    print(json.dumps({"refused": refused, "torch_loaded": sys.modules["torch"] is not None}))
    """
)


def test_engine_runs_without_torch(artifacts: dict[str, Path], tmp_path: Path) -> None:
    h, w = get_card(MODEL).input_hw
    out = tmp_path / "depth.npy"
    argv = [str(artifacts["openvino"]), str(artifacts["torch"]), str(SEEDS[0])]
    argv += [str(h + h // 2), str(w + w // 2), str(out)]
    done = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_TORCH, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert not report["torch_loaded"]
    assert "needs torch" in report["refused"] and "not importable" in report["refused"]
    in_process = open_artifact(artifacts["openvino"], use_cache=False).predict(_scene_rgb(SEEDS[0]))
    np.testing.assert_array_equal(np.load(out), in_process)
