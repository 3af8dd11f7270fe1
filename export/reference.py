"""The reference recipe, exactly as the seed notebook runs it.

transformers' own image processor (built from the card, offline), fp32 eager inference,
bicubic upsample to the original size with ``align_corners=False``. Every faster path is
measured against this.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image

from xdepth.export.load import LoadedModel
from xdepth.model.backends.interface import Backend
from xdepth.model.cards import Card
from xdepth.model.manifest import sha256_file
from xdepth.model.weights import weights_stamp

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


class ReferenceBackend(Backend):
    """transformers fp32 eager, batch 1: the seed notebook's model half.

    It predicts whole images (its processor resizes, its upsample is the seed's torch
    bicubic), so `prepare` passes the image through and `run` returns depth at its size.
    """

    name = "reference"

    def __init__(self, loaded: LoadedModel, threads: int | None = None) -> None:
        super().__init__()
        self.loaded = loaded
        self.card = loaded.card
        self.model = loaded.model.float().eval()
        self.processor = image_processor(loaded.card)
        weights = "random-init" if loaded.random_init else loaded.origin
        self.label = f"{loaded.card.name} ({weights})"
        self.semantics = loaded.card.output
        if threads:
            torch.set_num_threads(threads)

    def prepare(self, image_u8: np.ndarray) -> np.ndarray:
        return image_u8

    def _infer(self, model_input: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict(model_input), dtype=np.float32)

    def identity(self) -> dict[str, Any]:
        loaded = self.loaded
        card_path = loaded.card.path
        return {
            "kind": "reference",
            "variant": loaded.card.name,
            "card_sha256": sha256_file(card_path) if card_path else "",
            "weights": loaded.origin,
            "weights_files": [] if loaded.random_init else weights_stamp(loaded.origin),
            "random_init": loaded.random_init,
        }

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
