"""The torch modules that are exported: one tensor in, inverse depth out.

transformers' depth models return a ModelOutput; exporters need a plain tensor. Depth Pro
also returns a field of view, which transformers' post-processing folds into the depth
(``depth * width / f_px``, where the width cancels: ``depth * 2 * tan(fov / 2)``); that fold
is done in the graph, so every artifact outputs inverse depth, in 1/m for metric models.
"""

from __future__ import annotations

import math

import torch

from xdepth.registry import Preprocess


class InverseDepth(torch.nn.Module):
    """float32 N x 3 x h x w normalised pixels -> float32 N x h x w inverse depth."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values)
        depth = out.predicted_depth
        fov_deg = getattr(out, "field_of_view", None)
        if fov_deg is not None:
            # math.pi / 360 is half a degree in radians (OpenVINO has no aten::deg2rad).
            scale = 2.0 * torch.tan(fov_deg.to(depth.dtype) * (math.pi / 360.0))
            depth = depth * scale.reshape(-1, 1, 1)
        return depth


class U8InverseDepth(torch.nn.Module):
    """uint8 N x h x w x 3 RGB -> float32 N x h x w: rescale and normalise inside the graph.

    With `compute_dtype=torch.bfloat16` the model runs under CPU autocast: matmuls and
    convolutions in bf16, reductions (softmax, layer norm) in float32, which keeps more
    accuracy than casting the whole model. Freezing then folds the weight casts, so the
    stored weights are bf16.
    """

    def __init__(
        self, model: torch.nn.Module, pre: Preprocess, compute_dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.depth = InverseDepth(model)
        self.compute_dtype = compute_dtype
        scale = torch.ones(3) * (pre.rescale_factor if pre.do_rescale else 1.0)
        mean = torch.tensor(pre.mean) if pre.do_normalize else torch.zeros(3)
        std = torch.tensor(pre.std) if pre.do_normalize else torch.ones(3)
        self.register_buffer("scale", scale.reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("mean", mean.reshape(1, 3, 1, 1).float(), persistent=False)
        self.register_buffer("std", std.reshape(1, 3, 1, 1).float(), persistent=False)

    def forward(self, image_u8: torch.Tensor) -> torch.Tensor:
        x = image_u8.permute(0, 3, 1, 2).to(torch.float32) * self.scale
        x = (x - self.mean) / self.std
        if self.compute_dtype == torch.float32:
            return self.depth(x)
        with torch.autocast("cpu", dtype=self.compute_dtype):
            depth = self.depth(x)
        return depth.to(torch.float32)
