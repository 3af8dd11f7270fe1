"""Offline loading: local folders, the HF cache, random init, and the errors for each miss."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from xdepth.errors import XDepthError
from xdepth.export.load import ConfigMismatch, load_model
from xdepth.export.reference import image_processor
from xdepth.model.cards import get_card
from xdepth.model.cards import test_cards as tiny_cards
from xdepth.model.preprocess import preprocess
from xdepth.model.weights import WeightsNotFound

# Depth Pro's processor needs torchvision, which has no CPU build to install here.
TINY_DPT = [c.name for c in tiny_cards() if c.preprocess.processor == "DPTImageProcessor"]
HASH = "0123456789abcdef0123456789abcdef01234567"


def _save(name: str, folder: Path) -> None:
    load_model(name, random_init=True).model.save_pretrained(folder)


def _out(model: torch.nn.Module, pixels: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(pixels)).predicted_depth.numpy()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-dpt-beit")
    _save("tiny-dpt-beit", folder)
    return folder


def test_random_init_is_flagged_and_repeatable() -> None:
    a = load_model("tiny-dpt-beit", random_init=True)
    b = load_model("tiny-dpt-beit", random_init=True)
    assert a.random_init and a.origin == "random-init"
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_local_folder_by_weights_and_by_path(saved: Path, no_network: None) -> None:
    card = get_card("tiny-dpt-beit")
    x = np.random.default_rng(0).standard_normal((1, 3, *card.input_hw)).astype(np.float32)
    reference = _out(load_model("tiny-dpt-beit", random_init=True).model, x)
    by_weights = load_model("tiny-dpt-beit", weights=saved)
    by_path = load_model(saved)  # the card is inferred from config.json
    assert not by_weights.random_init and by_weights.origin == str(saved)
    assert by_path.card.name == "tiny-dpt-beit"
    np.testing.assert_array_equal(_out(by_weights.model, x), reference)
    np.testing.assert_array_equal(_out(by_path.model, x), reference)


def test_config_mismatch_lists_fields(saved: Path, tmp_path: Path) -> None:
    folder = tmp_path / "changed"
    shutil.copytree(saved, folder)
    config = json.loads((folder / "config.json").read_text())
    config["fusion_hidden_size"] += 8
    config["backbone_config"]["num_hidden_layers"] += 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigMismatch) as err:
        load_model("tiny-dpt-beit", weights=folder)
    message = str(err.value)
    assert "fusion_hidden_size" in message and "backbone_config.num_hidden_layers" in message
    assert "tiny-dpt-beit" in message


def test_missing_weights_names_every_place(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound) as err:
        load_model("dpt-beit-large-512")
    message = str(err.value)
    assert "dpt-beit-large-512" in message and "Intel/dpt-beit-large-512" in message
    assert "Hugging Face cache" in message and "--weights" in message
    with pytest.raises(WeightsNotFound) as err:
        load_model("tiny-dpt-beit", weights=tmp_path)
    assert str(tmp_path) in str(err.value)


def test_random_init_never_mixes_with_weights(saved: Path) -> None:
    with pytest.raises(XDepthError, match="exclude"):
        load_model("tiny-dpt-beit", weights=saved, random_init=True)


def test_hf_cache_offline(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    """A model id found in the local HF cache loads with the network unreachable."""
    import huggingface_hub.constants

    card_text = get_card("tiny-dpt-beit").path.read_text()
    card_file = tmp_path / "cached-beit.toml"
    card_file.write_text(
        card_text.replace('name = "tiny-dpt-beit"', 'name = "cached-beit"')
        .replace("test_only = true", "test_only = false")
        .replace('source = "random-init"', 'source = "xdepth-test/cached-beit"')
    )
    cache = tmp_path / "hub"
    repo = cache / "models--xdepth-test--cached-beit"
    shutil.copytree(saved, repo / "snapshots" / HASH)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(HASH)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    loaded = load_model(str(card_file))
    assert loaded.origin == str(repo / "snapshots" / HASH)
    assert not loaded.random_init


@pytest.mark.parametrize("name", TINY_DPT)
def test_preprocess_parity_with_transformers(name: str) -> None:
    """Our numpy preprocessing plus the model equals transformers' processor plus model."""
    card = get_card(name)
    model = load_model(name, random_init=True).model
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(45, 71, 3), dtype=np.uint8)
    theirs = image_processor(card)(images=image, return_tensors="pt")["pixel_values"]
    ours = preprocess(image, card.preprocess)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-6)
    np.testing.assert_allclose(_out(model, ours), _out(model, theirs.numpy()), atol=1e-5)
