"""Offline loading: a variant name or path -> a torch model plus its card.

Weights come from (a) a local directory in Hugging Face format, (b) the local Hugging Face
cache, or (c) random initialisation when explicitly asked. Never from the network, and
random init is never a fallback.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForDepthEstimation, PreTrainedModel

from xdepth.errors import XDepthError
from xdepth.export.models import build_config, build_model
from xdepth.model.cards import Card, CardError, all_cards, get_card
from xdepth.model.weights import find_weights


class ConfigMismatch(XDepthError, ValueError):
    """A local config.json disagrees with the variant card."""


@dataclass
class LoadedModel:
    """A model ready for inference, and where its weights came from."""

    model: PreTrainedModel
    card: Card
    origin: str  # "random-init", or the weights directory
    random_init: bool


def _diff(card_value: Any, local_value: Any, key: str, out: list[str]) -> None:
    if isinstance(card_value, dict):
        local = local_value if isinstance(local_value, dict) else {}
        for sub, value in card_value.items():
            _diff(value, local.get(sub), f"{key}.{sub}", out)
        return
    if isinstance(card_value, (list, tuple)) and isinstance(local_value, (list, tuple)):
        same = len(card_value) == len(local_value) and all(
            _same(a, b) for a, b in zip(card_value, local_value, strict=True)
        )
    else:
        same = _same(card_value, local_value)
    if not same:
        out.append(f"{key}: card {card_value!r} != local {local_value!r}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and math.isclose(a, b, rel_tol=1e-9)
        )
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def config_differences(card: Card, config_json: Path) -> list[str]:
    """Fields where a local config.json disagrees with the card (card keys only)."""
    local = json.loads(config_json.read_text(encoding="utf-8"))
    # Compare with the card as transformers reads it (e.g. BiT upper-cases its padding).
    expected = _restrict(build_config(card).to_dict(), card.config)
    out: list[str] = []
    for key, value in expected.items():
        _diff(value, local.get(key), key, out)
    return out


def _restrict(full: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
    """`full`'s values for the keys (and nested keys) that `shape` has."""
    return {
        key: _restrict(full.get(key) or {}, value) if isinstance(value, dict) else full.get(key)
        for key, value in shape.items()
    }


def check_config(card: Card, directory: Path) -> None:
    config_json = directory / "config.json"
    if not config_json.is_file():
        return
    diffs = config_differences(card, config_json)
    if diffs:
        lines = "\n".join(f"  - {d}" for d in diffs)
        raise ConfigMismatch(
            f"{config_json} disagrees with the card of variant {card.name!r} "
            f"({card.path}):\n{lines}\nPass the matching --variant, or fix the weights folder."
        )


def card_for_directory(directory: Path) -> Card:
    """The shipped card whose architecture config matches a local HF folder."""
    config_json = directory / "config.json"
    if not config_json.is_file():
        raise CardError(
            f"{directory}: no config.json, so the variant cannot be inferred; pass --variant NAME"
        )
    matches = [c for c in all_cards().values() if not config_differences(c, config_json)]
    if len(matches) != 1:
        names = ", ".join(c.name for c in matches) or "none"
        raise CardError(
            f"{config_json}: matches {len(matches)} variant cards ({names}); pass --variant NAME"
        )
    return matches[0]


def resolve_card(variant_or_dir: str | Path) -> tuple[Card, Path | None]:
    """A card from a name, a .toml path, or a HF-format folder (whose weights are then used)."""
    path = Path(variant_or_dir)
    if path.is_dir():
        return card_for_directory(path), path
    return get_card(str(variant_or_dir)), None


def load_model(
    variant_or_dir: str | Path,
    weights: str | Path | None = None,
    random_init: bool = False,
) -> LoadedModel:
    """Load a variant for inference in fp32 eval mode, offline."""
    card, folder = resolve_card(variant_or_dir)
    if random_init:
        if weights is not None or folder is not None:
            raise XDepthError("--random-init and a weights folder exclude each other")
        torch.manual_seed(0)  # the same random model every time, so results compare
        return LoadedModel(build_model(card), card, "random-init", True)
    directory = find_weights(card, weights if weights is not None else folder)
    check_config(card, directory)
    model, info = AutoModelForDepthEstimation.from_pretrained(
        directory,
        config=build_config(card),
        local_files_only=True,
        output_loading_info=True,
    )
    missing = info.get("missing_keys") or []
    if missing:
        shown = ", ".join(sorted(missing)[:8])
        raise XDepthError(
            f"{directory}: weights do not fit variant {card.name!r}: {len(missing)} missing "
            f"tensors ({shown}...)"
        )
    return LoadedModel(model.float().eval(), card, str(directory), False)
