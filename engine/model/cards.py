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
    # Parameters counted in params_published that the checkpoint does not hold (e.g. the
    # ImageNet classifier of the original timm backbone, dropped on conversion).
    params_not_in_checkpoint: int = 0
    test_only: bool = False
    weights: str = ""  # weights shipped inside the package (relative to configs/), if any
    # Published zero-shot figures per evaluation set (xdepth.eval): {"nyuv2": {"abs_rel":
    # 0.048, "delta1": 0.980, "source": "<paper or README, table>"}}; cited figures only.
    published: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
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
            params_not_in_checkpoint=data.get("params_not_in_checkpoint", 0),
            test_only=bool(data.get("test_only", False)),
            weights=data.get("weights", ""),
            published={k: dict(v) for k, v in data.get("published", {}).items()},
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
    _check_preprocess(card.preprocess, where)
    _check_params(card, where)
    _check_published(card, where)
    return card


def _check_published(card: Card, where: str) -> None:
    """Every published figure is a number and every set's figures name their source."""
    for dataset, figures in card.published.items():
        if not str(figures.get("source", "")).strip():
            raise CardError(f"{where}: published.{dataset} needs a source (paper, table)")
        for name, value in figures.items():
            if name != "source" and not _is_number(value):
                raise CardError(f"{where}: published.{dataset}.{name} must be a number")


def _check_preprocess(pre: Preprocess, where: str) -> None:
    """Reject values no image processor could use, naming the field."""
    for key in ("height", "width", "ensure_multiple_of"):
        value = getattr(pre, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CardError(f"{where}: preprocess.{key} must be a positive integer, got {value!r}")
    for key in ("keep_aspect_ratio", "do_rescale", "do_normalize"):
        if not isinstance(getattr(pre, key), bool):
            raise CardError(f"{where}: preprocess.{key} must be true or false")
    factor = pre.rescale_factor
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0:
        raise CardError(f"{where}: preprocess.rescale_factor must be > 0, got {factor!r}")
    for key in ("mean", "std"):
        values = getattr(pre, key)
        numbers = isinstance(values, tuple) and len(values) == 3
        if not numbers or not all(_is_number(v) for v in values):
            raise CardError(f"{where}: preprocess.{key} must be 3 numbers (RGB), got {values!r}")
    if min(pre.std) <= 0:
        raise CardError(f"{where}: preprocess.std must be > 0, got {pre.std!r}")
    if not isinstance(pre.processor, str) or not pre.processor:
        raise CardError(f"{where}: preprocess.processor must name a transformers image processor")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_params(card: Card, where: str) -> None:
    published, extra = card.params_published, card.params_not_in_checkpoint
    if published is not None and (isinstance(published, bool) or not isinstance(published, int)):
        raise CardError(f"{where}: params_published must be an integer, got {published!r}")
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 0:
        raise CardError(f"{where}: params_not_in_checkpoint must be an integer >= 0, got {extra!r}")
    if extra and published is None:
        raise CardError(f"{where}: params_not_in_checkpoint needs params_published")


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
