"""The reference recipe, exactly as the seed notebook runs it.

transformers' own image processor (built from the card, offline), fp32 eager inference,
bicubic upsample to the original size with ``align_corners=False``. Every faster path is
measured against this.
"""

from __future__ import annotations

import numpy as np
import torch
import transformers
from PIL import Image

from xdepth.export.load import LoadedModel
from xdepth.registry import Card

_PIL_RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3}


def image_processor(card: Card) -> transformers.BaseImageProcessor:
    """The transformers image processor the card names, configured from the card alone."""
    pre = card.preprocess
    # Without torchvision, transformers serves the Pillow backend of each processor.
    cls = getattr(transformers, pre.processor + "Pil", None) or getattr(transformers, pre.processor)
    kwargs = {
        "size": {"height": pre.height, "width": pre.width},
        "resample": _PIL_RESAMPLE[pre.resample],
        "do_rescale": pre.do_rescale,
        "rescale_factor": pre.rescale_factor,
        "do_normalize": pre.do_normalize,
        "image_mean": list(pre.mean),
        "image_std": list(pre.std),
    }
    if pre.processor == "DPTImageProcessor":
        kwargs |= {
            "keep_aspect_ratio": pre.keep_aspect_ratio,
            "ensure_multiple_of": pre.ensure_multiple_of,
        }
    return cls(**kwargs)


class ReferenceBackend:
    """transformers fp32 eager, batch 1: the seed notebook's model half."""

    name = "reference"

    def __init__(self, loaded: LoadedModel, threads: int | None = None) -> None:
        self.loaded = loaded
        self.card = loaded.card
        self.model = loaded.model.float().eval()
        self.processor = image_processor(loaded.card)
        weights = "random-init" if loaded.random_init else loaded.origin
        self.label = f"{loaded.card.name} ({weights})"
        if threads:
            torch.set_num_threads(threads)

    # no_grad, not inference_mode: transformers caches tensors made in the forward pass (BEiT's
    # relative position index), and inference tensors in that cache break any later training
    # in the same process ("Inference tensors cannot be saved for backward").
    @torch.no_grad()
    def infer(self, image_u8: np.ndarray) -> torch.Tensor:
        """uint8 HxWx3 RGB -> predicted depth 1xhxw at model resolution (torch, fp32)."""
        inputs = self.processor(images=Image.fromarray(image_u8), return_tensors="pt")
        return self.model(**inputs).predicted_depth

    @torch.no_grad()
    def predict(self, image_u8: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 RGB -> float32 HxW model output at the original size (seed upsample)."""
        predicted = self.infer(image_u8)
        prediction = torch.nn.functional.interpolate(
            predicted.unsqueeze(1),
            size=image_u8.shape[:2],
            mode="bicubic",
            align_corners=False,
        )
        return prediction[0, 0].cpu().numpy()
