"""Variant cards: the shipped set, their preprocessing, and the modules they build offline."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import asdict
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from xdepth.export.models import build_model, count_params
from xdepth.export.reference import image_processor
from xdepth.model.cards import (
    Card,
    CardError,
    all_cards,
    cards_dir,
    get_card,
    load_card_file,
    parse_card,
    real_cards,
)
from xdepth.model.cards import test_cards as registry_test_cards  # not a test itself

# The published variants and the hub repository each one is converted from.
HUB_VARIANTS = {
    "dpt-beit-large-512": "Intel/dpt-beit-large-512",
    "dpt-beit-large-384": "Intel/dpt-beit-large-384",
    "dpt-beit-base-384": "Intel/dpt-beit-base-384",
    "dpt-swinv2-large-384": "Intel/dpt-swinv2-large-384",
    "dpt-swinv2-base-384": "Intel/dpt-swinv2-base-384",
    "dpt-swinv2-tiny-256": "Intel/dpt-swinv2-tiny-256",
    "dpt-large-384": "Intel/dpt-large",
    "dpt-hybrid-384": "Intel/dpt-hybrid-midas",
    "depth-anything-small": "LiheYoung/depth-anything-small-hf",
    "depth-anything-base": "LiheYoung/depth-anything-base-hf",
    "depth-anything-large": "LiheYoung/depth-anything-large-hf",
    "depth-anything-v2-small": "depth-anything/Depth-Anything-V2-Small-hf",
    "depth-anything-v2-base": "depth-anything/Depth-Anything-V2-Base-hf",
    "depth-anything-v2-large": "depth-anything/Depth-Anything-V2-Large-hf",
    "depth-pro": "apple/DepthPro-hf",
}
ALL = sorted(all_cards().values(), key=lambda c: c.name)
REAL = real_cards()
TINY = registry_test_cards()


def _ids(cards: list[Card]) -> list[str]:
    return [c.name for c in cards]


@cache
def _meta_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of the card's model, built on the meta device (no memory)."""
    model = build_model(get_card(name), "meta")
    return {key: tuple(p.shape) for key, p in model.named_parameters()}


def _hub_cards() -> list[Card]:
    """Real cards converted from a hub repository (not trained and shipped with xdepth)."""
    return [c for c in REAL if not c.weights]


# ---- the set of cards ---------------------------------------------------------------------


def test_published_variants_are_exactly_the_hub_ones() -> None:
    assert {c.name: c.source for c in _hub_cards()} == HUB_VARIANTS


def test_card_names_are_unique_and_equal_file_stems() -> None:
    paths = sorted(cards_dir().glob("*.toml"))
    names = [load_card_file(p).name for p in paths]
    assert names == [p.stem for p in paths]  # file stems are unique, so names are too
    assert sorted(all_cards()) == sorted(names)


def test_tiny_cards_cover_every_architecture_family() -> None:
    tiny = {c.name: c.family for c in TINY if c.source == "random-init"}
    assert tiny == {
        "tiny-dpt-beit": "dpt-beit",
        "tiny-dpt-swinv2": "dpt-swinv2",
        "tiny-dpt-hybrid": "dpt-hybrid",
        "tiny-depth-anything": "depth-anything",
        "tiny-depth-pro": "depth-pro",
    }
    assert all(c.licence == "Apache-2.0" for c in TINY if c.source == "random-init")


@pytest.mark.parametrize("card", _hub_cards(), ids=_ids(_hub_cards()))
def test_output_semantics(card: Card) -> None:
    """Depth Pro predicts metric depth; the MiDaS and Depth Anything models relative disparity."""
    expected = "metric_depth_m" if card.family == "depth-pro" else "relative_inverse_depth"
    assert card.output == expected


# ---- preprocessing ------------------------------------------------------------------------


def _native_size(config: dict[str, Any]) -> int:
    """The square input the architecture is built for (its position embeddings or windows)."""
    if config["model_type"] == "depth_pro":
        return round(config["patch_size"] / min(config["scaled_images_ratios"]))
    if "backbone_config" in config and not config.get("is_hybrid", False):
        return config["backbone_config"]["image_size"]
    return config["image_size"]


@pytest.mark.parametrize("card", ALL, ids=_ids(ALL))
def test_preprocess_size_fits_the_architecture(card: Card) -> None:
    pre = card.preprocess
    native = _native_size(card.config)
    assert card.input_hw == (native, native)
    assert pre.height % pre.ensure_multiple_of == 0 and pre.width % pre.ensure_multiple_of == 0


def _same_family_preprocess(card: Card) -> dict[str, Any]:
    fields = asdict(card.preprocess)
    del fields["height"], fields["width"]
    return fields


@pytest.mark.parametrize("card", ALL, ids=_ids(ALL))
def test_family_shares_preprocessing_apart_from_size(card: Card) -> None:
    """Tiny cards mirror their family, so parity tests on them mean something for the real one."""
    hub = [c for c in _hub_cards() if c.family == card.family]
    assert hub, f"family {card.family!r} has no published variant"
    assert _same_family_preprocess(card) == _same_family_preprocess(hub[0])


@pytest.mark.parametrize("card", ALL, ids=_ids(ALL))
def test_processor_built_from_card_applies_it(card: Card) -> None:
    """The named transformers processor accepts the card and produces its size and normalisation."""
    pre = card.preprocess
    if pre.processor == "DepthProImageProcessor":
        pytest.importorskip("torchvision", reason="DepthProImageProcessor needs torchvision")
    rgb = np.array([200, 100, 50], dtype=np.uint8)
    image = Image.fromarray(np.broadcast_to(rgb, (36, 48, 3)).copy())  # landscape, 48 x 36
    pixels = image_processor(card)(images=image, return_tensors="np")["pixel_values"]
    assert pixels.dtype == np.float32 and pixels.shape[:2] == (1, 3)
    out_h, out_w = pixels.shape[2:]
    if pre.keep_aspect_ratio:
        # Upscaling a landscape image: the width changes least, so it is fitted exactly.
        assert out_w == pre.width and out_h < out_w and out_h % pre.ensure_multiple_of == 0
    else:
        assert (out_h, out_w) == card.input_hw
    expected = (rgb * pre.rescale_factor - np.array(pre.mean)) / np.array(pre.std)
    np.testing.assert_allclose(pixels[0, :, out_h // 2, out_w // 2], expected, atol=1e-5)


def _tiny_card_data() -> dict[str, Any]:
    return tomllib.loads((cards_dir() / "tiny-dpt-beit.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("height", 0),
        ("width", 64.0),
        ("ensure_multiple_of", -14),
        ("mean", [0.5, 0.5]),
        ("std", [0.5, 0.0, 0.5]),
        ("rescale_factor", 0),
        ("keep_aspect_ratio", "yes"),
        ("processor", ""),
    ],
)
def test_bad_preprocess_is_rejected_naming_the_field(field: str, value: object) -> None:
    data = _tiny_card_data()
    data["preprocess"][field] = value
    with pytest.raises(CardError, match=rf"bad\.toml: preprocess\.{field} "):
        parse_card(data, cards_dir() / "bad.toml")


def test_bad_parameter_figures_are_rejected() -> None:
    data = _tiny_card_data()
    data["params_not_in_checkpoint"] = 1000
    with pytest.raises(CardError, match="params_not_in_checkpoint needs params_published"):
        parse_card(data)
    data["params_published"] = 500_000
    data["params_not_in_checkpoint"] = -1
    with pytest.raises(CardError, match="params_not_in_checkpoint must be an integer >= 0"):
        parse_card(data)
    data["params_not_in_checkpoint"] = 0
    data["params_published"] = "0.5 M"
    with pytest.raises(CardError, match="params_published must be an integer"):
        parse_card(data)


# ---- the modules the cards build ----------------------------------------------------------


@pytest.mark.parametrize("card", REAL, ids=_ids(REAL))
def test_real_card_matches_published_parameter_count(card: Card) -> None:
    """Built on the meta device, offline: count plus what the checkpoint drops is within 1%."""
    assert card.params_published and card.params_published > 0, "params_published is not set"
    measured = sum(np.prod(shape, dtype=np.int64) for shape in _meta_shapes(card.name).values())
    total = int(measured) + card.params_not_in_checkpoint
    assert abs(total - card.params_published) <= 0.01 * card.params_published, (
        f"{card.name}: {measured:,} built + {card.params_not_in_checkpoint:,} not in the "
        f"checkpoint = {total:,}, published {card.params_published:,}"
    )


# Shapes fixed by the architecture, worked out from the papers' numbers (not from the code):
# BEiT's relative position table has (2*S/16 - 1)^2 + 3 rows, DINOv2 at 518 has (518/14)^2 + 1
# positions, ViT at 384 has (384/16)^2 + 1, SwinV2 patch merging maps 4C to 2C.
ANCHORS = {
    "dpt-beit-large-512": {
        "backbone.beit.layers.23.relative_position_bias.relative_position_bias_table": (3972, 16),
        "neck.reassemble_stage.readout_projects.3.0.weight": (1024, 2048),
    },
    "dpt-beit-large-384": {
        "backbone.beit.layers.23.relative_position_bias.relative_position_bias_table": (2212, 16),
    },
    "dpt-swinv2-large-384": {"backbone.encoder.layers.2.downsample.reduction.weight": (1536, 3072)},
    "dpt-large-384": {"dpt.embeddings.position_embeddings": (1, 577, 1024)},
    "dpt-hybrid-384": {
        "dpt.embeddings.position_embeddings": (1, 577, 768),
        "dpt.embeddings.projection.weight": (768, 1024, 1, 1),
    },
    "depth-anything-small": {
        "backbone.embeddings.position_embeddings": (1, 1370, 384),
        "backbone.embeddings.mask_token": (1, 384),
    },
    "depth-anything-v2-large": {"backbone.embeddings.position_embeddings": (1, 1370, 1024)},
    "depth-pro": {
        "depth_pro.encoder.patch_encoder.model.embeddings.position_embeddings": (1, 577, 1024),
        "depth_pro.encoder.image_encoder.model.embeddings.position_embeddings": (1, 577, 1024),
        "fov_model.fov_encoder.model.embeddings.position_embeddings": (1, 577, 1024),
    },
}


@pytest.mark.parametrize("name", sorted(ANCHORS))
def test_architecture_anchor_shapes(name: str) -> None:
    shapes = _meta_shapes(name)
    assert {key: shapes.get(key) for key in ANCHORS[name]} == ANCHORS[name]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads; on a busy 2-core machine spinning workers do harm."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("card", TINY, ids=_ids(TINY))
def test_tiny_card_runs_on_cpu(card: Card, one_thread: None) -> None:
    torch.manual_seed(0)
    model = build_model(card, "cpu")
    assert 50_000 <= count_params(model) <= 1_000_000
    pixels = torch.randn(2, 3, *card.input_hw)
    with torch.no_grad():
        out = model(pixel_values=pixels)
    assert out.predicted_depth.shape == (2, *card.input_hw)
    assert torch.isfinite(out.predicted_depth).all()
    if card.family == "depth-pro":
        assert out.field_of_view.shape == (2,)
