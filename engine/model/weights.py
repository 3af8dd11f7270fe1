"""Where a variant's weights are looked for: explicit folder, shipped, local HF cache.

Only the local disk is read (huggingface_hub's cache lookup never reaches the network).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from xdepth.errors import XDepthError
from xdepth.model.cards import Card, configs_dir

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


class WeightsNotFound(XDepthError, FileNotFoundError):
    """No weights for a variant in any of the places looked."""


def has_weights(directory: Path) -> bool:
    return any((directory / name).is_file() for name in WEIGHT_FILES)


def hf_cache_snapshot(source: str) -> Path | None:
    """The snapshot folder of `source` in the local HF cache, if its weights are there."""
    from huggingface_hub import try_to_load_from_cache

    for name in WEIGHT_FILES:
        found = try_to_load_from_cache(source, name)
        if isinstance(found, str):
            return Path(found).parent
    return None


def weight_candidates(card: Card, weights: str | Path | None = None) -> list[tuple[str, Path]]:
    """Every place looked for a card's weights, in order, as (description, path)."""
    if weights is not None:
        return [("--weights", Path(weights))]
    places: list[tuple[str, Path]] = []
    if card.weights:
        places.append(("shipped with xdepth", (configs_dir() / card.weights).parent))
    if _REPO_ID.fullmatch(card.source):
        from huggingface_hub.constants import HF_HUB_CACHE

        cached = hf_cache_snapshot(card.source)
        repo_folder = "models--" + card.source.replace("/", "--")
        places.append(("Hugging Face cache", cached or Path(HF_HUB_CACHE) / repo_folder))
    return places


def local_weights(card: Card, weights: str | Path | None = None) -> Path | None:
    """The first folder holding the card's weights, or None."""
    for _, path in weight_candidates(card, weights):
        if path.is_dir() and has_weights(path):
            return path
    return None


def find_weights(card: Card, weights: str | Path | None = None) -> Path:
    """The first folder holding the card's weights, or a WeightsNotFound naming every place."""
    found = local_weights(card, weights)
    if found is not None:
        return found
    looked = "\n".join(f"  - {what}: {path}" for what, path in weight_candidates(card, weights))
    raise WeightsNotFound(
        f"no weights found for variant {card.name!r} (source {card.source}); looked in:\n"
        f"{looked}\n"
        f"Provide them with --weights DIR (a folder holding config.json and model.safetensors "
        f"or pytorch_model.bin), or put {card.source} into the local Hugging Face cache "
        f"(HF_HUB_CACHE, default ~/.cache/huggingface/hub; e.g. run `hf download {card.source}` "
        f"on a machine with access and copy the cache folder over). "
        f"--random-init gives random weights, for speed tests only."
    )


def weights_stamp(folder: str | Path) -> list[list[Any]]:
    """(name, bytes, mtime_ns) of a weights folder's files: cheap, and changes with them."""
    directory = Path(folder)
    if not directory.is_dir():
        return []
    return [
        [p.name, p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(directory.iterdir())
        if p.is_file()
    ]
