"""The shipped xdepth-tiny: its train log tells the truth, and it meets its targets.

The held-out scores in configs/weights/xdepth-tiny/train_log.json gate other tests and are
quoted in the README, so they are recomputed here from the weights as shipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shipped_model_accurate

from xdepth.cli import main
from xdepth.export.load import load_model
from xdepth.export.train_tiny import evaluate
from xdepth.registry import get_card
from xdepth.weights import local_weights

CARD = get_card("xdepth-tiny")
WEIGHTS = local_weights(CARD)
pytestmark = [
    pytest.mark.skipif(WEIGHTS is None, reason="the xdepth-tiny weights are not in this checkout"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def test_train_log_scores_are_the_shipped_weights_scores() -> None:
    log = json.loads((WEIGHTS / "train_log.json").read_text())
    held_out = log["held_out"]
    loaded = load_model(CARD.name)
    scores = evaluate(loaded.model, loaded.card, held_out["scenes"], held_out["first_seed"])
    for key in ("mask_iou_mean", "delta1_mean", "abs_rel_mean"):
        assert scores[key] == pytest.approx(held_out[key], abs=2e-3), key
    assert log["params"] == CARD.params_published
    assert log["seconds_total"] < 30 * 60  # trained in under half an hour


@pytest.mark.skipif(not shipped_model_accurate()[0], reason=shipped_model_accurate()[1])
def test_demo_scenes_meet_the_targets(tmp_path: Path, no_network) -> None:
    """`xdepth demo` on the 24 held-out scenes: mask IoU and delta1 both at least 0.90."""
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--variant", CARD.name, "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 24 and summary["backend"] == "reference"
    assert summary["mask_iou_mean"] >= 0.90, summary
    assert summary["delta1_mean"] >= 0.90, summary
