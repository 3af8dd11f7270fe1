"""The torch modules that are exported: one tensor in, inverse depth out.

transformers' depth models return a ModelOutput; exporters need a plain tensor. Depth Pro
also returns a field of view, which transformers' post-processing folds into the depth
(``depth * width / f_px``, where the width cancels: ``depth * 2 * tan(fov / 2)``); that fold
is done in the graph, so every artifact outputs inverse depth, in 1/m for metric models.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import torch

from xdepth.model.cards import Preprocess

# Upper bound of a symbolic side, in patches (14 px: 7168 px), far above any preprocessed
# photo's (the longer side of a 518-px Depth Anything input reaches 7168 px at 14:1).
MAX_PATCHES = 512


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


def _head_forward(
    self: torch.nn.Module, hidden_states: list[torch.Tensor], patch_height: int, patch_width: int
) -> torch.Tensor:
    """DepthAnythingDepthEstimationHead.forward without its int() casts, which pin the
    output size to the example's in torch.export; the computation is the same."""
    depth = self.conv1(hidden_states[self.head_in_index])
    size = (patch_height * self.patch_size, patch_width * self.patch_size)
    depth = torch.nn.functional.interpolate(depth, size, mode="bilinear", align_corners=True)
    depth = self.conv3(self.activation1(self.conv2(depth)))
    return (self.activation2(depth) * self.max_depth).squeeze(dim=1)


@contextmanager
def shape_generic() -> Iterator[None]:
    """Inside this block, Depth Anything models export with a symbolic input size.

    Two spots in transformers specialise on the example's size: the head's ``int()`` output
    size, and DINOv2's shortcut that skips interpolating the position embeddings when the
    image is square at the trained size. The shortcut is replaced by the interpolation it
    skips, which is exact at the same size (bicubic weights at offset 0 are 0, 1, 0, 0), so
    the graph computes what the eager model computes at every size.
    """
    from transformers.models.depth_anything import modeling_depth_anything as depth_anything
    from transformers.models.dinov2 import modeling_dinov2 as dinov2

    interpolate = dinov2.Dinov2Embeddings.interpolate_pos_encoding

    def always_interpolate(
        self: torch.nn.Module, embeddings: torch.Tensor, height: int, width: int
    ) -> torch.Tensor:
        with mock.patch.object(torch.jit, "is_tracing", return_value=True):
            return interpolate(self, embeddings, height, width)

    head = depth_anything.DepthAnythingDepthEstimationHead
    with (
        mock.patch.object(head, "forward", _head_forward),
        mock.patch.object(dinov2.Dinov2Embeddings, "interpolate_pos_encoding", always_interpolate),
    ):
        yield


def export_program(
    module: torch.nn.Module, example: torch.Tensor, hw_axes: tuple[int, int] | None, multiple: int
) -> torch.export.ExportedProgram:
    """torch.export of `module`; with `hw_axes`, height and width are symbolic multiples of
    `multiple` (at least two of them each: torch specialises sizes of one)."""
    if hw_axes is None:
        return torch.export.export(module, (example,))
    height = torch.export.Dim("patches_h", min=2, max=MAX_PATCHES)
    width = torch.export.Dim("patches_w", min=2, max=MAX_PATCHES)
    dims = {hw_axes[0]: multiple * height, hw_axes[1]: multiple * width}
    with shape_generic():
        return torch.export.export(module, (example,), dynamic_shapes=(dims,))
