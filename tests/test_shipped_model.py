"""The shipped xdepth-tiny: its train log tells the truth, and its figures hold.

The held-out scores in configs/weights/xdepth-tiny/train_log.json gate other tests and are
quoted in the README, so they are recomputed here from the weights as shipped. The demo's
figures on the fp32 reference are held just under what the shipped weights score, so a
change that costs accuracy fails here (tests/test_export_trained.py holds the int8 ones).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xdepth.cli.main import main
from xdepth.export.load import load_model
from xdepth.export.train.tiny import evaluate
from xdepth.model.cards import get_card
from xdepth.model.weights import local_weights

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


def test_demo_keeps_the_shipped_figures(tmp_path: Path, no_network) -> None:
    """`xdepth demo` on the fp32 reference, 24 held-out photo-shaped scenes: measured mask
    IoU 0.890, delta1 0.867, AbsRel 0.176 (the aim is 0.90 for both mask IoU and delta1)."""
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--variant", CARD.name, "--reference", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 24 and summary["backend"] == "reference"
    assert summary["mask_iou_mean"] >= 0.88, summary
    assert summary["delta1_mean"] >= 0.86, summary
    assert summary["abs_rel_mean"] <= 0.185, summary
