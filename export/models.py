"""Build transformers depth models from variant cards, with no hub access."""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForDepthEstimation, PretrainedConfig, PreTrainedModel

from xdepth.model.cards import Card


def build_config(card: Card) -> PretrainedConfig:
    """The exact transformers config of a card (nested sub-configs given as dicts)."""
    cfg: dict[str, Any] = copy.deepcopy(card.config)
    model_type = cfg.pop("model_type")
    return AutoConfig.for_model(model_type, **cfg)


def build_model(card: Card, device: str | torch.device = "cpu") -> PreTrainedModel:
    """A randomly initialised model of the card's architecture, in eval mode.

    On the ``meta`` device no memory is spent, which is how parameter counts are checked.
    """
    config = build_config(card)
    with torch.device(device):
        model = AutoModelForDepthEstimation.from_config(config)
    return model.eval()


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
