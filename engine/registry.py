"""Variant cards: one TOML file per model variant, read by one registry.

A card is data, not code (DESIGN.md): the exact Hugging Face architecture config, the
preprocessing, the output semantics, the licence and the source id. The registry is
stdlib-only so the runtime can list variants without torch.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from xdepth.errors import XDepthError

OutputSemantics = Literal["relative_inverse_depth", "metric_depth_m"]
_SEMANTICS = ("relative_inverse_depth", "metric_depth_m")
_RESAMPLE = ("nearest", "bilinear", "bicubic", "lanczos")
DEFAULT_VARIANT = "xdepth-tiny"


class CardError(XDepthError, ValueError):
    """A card is missing, malformed or names an unknown value."""


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the model's input; mirrors the HF image processor's fields."""

    height: int
    width: int
    keep_aspect_ratio: bool = False
    ensure_multiple_of: int = 1
    resample: str = "bicubic"
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    # Name of the transformers image processor whose output this reproduces.
    processor: str = "DPTImageProcessor"


@dataclass(frozen=True)
class Card:
    """One model variant."""

    name: str
    source: str
    licence: str
    family: str
    description: str
    output: OutputSemantics
    preprocess: Preprocess
    config: dict[str, Any]
    params_published: int | None = None
    params_source: str = ""
    test_only: bool = False
    weights: str = ""  # weights shipped inside the package (relative to configs/), if any
    path: Path | None = field(default=None, compare=False)

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.preprocess.height, self.preprocess.width


def cards_dir() -> Path:
    """The folder that holds the shipped cards (configs/models)."""
    return Path(str(resources.files("xdepth.configs"))) / "models"


def configs_dir() -> Path:
    return Path(str(resources.files("xdepth.configs")))


def parse_card(data: dict[str, Any], path: Path | None = None) -> Card:
    """Validate a card's dict; errors name the file and the field."""
    where = str(path) if path else "card"
    try:
        pre = dict(data["preprocess"])
        output = data["output"]["semantics"]
        card = Card(
            name=data["name"],
            source=data["source"],
            licence=data["licence"],
            family=data["family"],
            description=data.get("description", ""),
            output=output,
            preprocess=Preprocess(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in pre.items()}
            ),
            config=dict(data["config"]),
            params_published=data.get("params_published"),
            params_source=data.get("params_source", ""),
            test_only=bool(data.get("test_only", False)),
            weights=data.get("weights", ""),
            path=path,
        )
    except KeyError as exc:
        raise CardError(f"{where}: missing field {exc}") from None
    except TypeError as exc:
        raise CardError(f"{where}: {exc}") from None
    if output not in _SEMANTICS:
        raise CardError(f"{where}: output.semantics {output!r} is not one of {_SEMANTICS}")
    if card.preprocess.resample not in _RESAMPLE:
        raise CardError(
            f"{where}: preprocess.resample {card.preprocess.resample!r} is not one of {_RESAMPLE}"
        )
    if "model_type" not in card.config:
        raise CardError(f"{where}: config.model_type is missing")
    return card


def load_card_file(path: str | Path) -> Card:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CardError(f"{path}: no such card file") from None
    except tomllib.TOMLDecodeError as exc:
        raise CardError(f"{path}: not valid TOML ({exc})") from None
    return parse_card(data, path)


@cache
def all_cards() -> dict[str, Card]:
    """Every shipped card, by name (file stem must equal the card's name)."""
    cards: dict[str, Card] = {}
    for path in sorted(cards_dir().glob("*.toml")):
        card = load_card_file(path)
        if card.name != path.stem:
            raise CardError(f"{path}: name {card.name!r} differs from the file name")
        cards[card.name] = card
    return cards


def get_card(name: str) -> Card:
    """A shipped card by name, or a card file by path."""
    if name.endswith(".toml"):
        return load_card_file(name)
    cards = all_cards()
    if name not in cards:
        known = ", ".join(sorted(cards))
        raise CardError(f"unknown variant {name!r}; known variants: {known}")
    return cards[name]


def real_cards() -> list[Card]:
    return [c for c in all_cards().values() if not c.test_only]


def test_cards() -> list[Card]:
    return [c for c in all_cards().values() if c.test_only]
