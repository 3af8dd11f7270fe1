"""PyTorch graph export: torch.export, then AOTInductor into a `.pt2` package.

The exported module takes uint8 NHWC, like the OpenVINO IR (xdepth.export.wrappers.
U8InverseDepth), so both formats share one runtime contract. bf16 runs under CPU autocast;
inductor's freezing turns the weights into constants and folds their casts, so the package
stores bf16 weights and prepacked oneDNN layouts, and loading it compiles nothing.

IPEX (intel_extension_for_pytorch) is an optional flavour: `ipex.optimize` plus a frozen
TorchScript trace, only where IPEX is importable with a matching torch. IPEX is end of life
(last release 2.8, for torch 2.8); the aoti flavour gets the same oneDNN kernels upstream.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from xdepth.errors import XDepthError
from xdepth.export.load import LoadedModel
from xdepth.export.wrappers import U8InverseDepth, export_program
from xdepth.model.cards import Preprocess
from xdepth.model.manifest import ArtifactFile, file_record

PACKAGE = "model.pt2"
IPEX_FILE = "model.ipex.pt"
FLAVOURS = ("aoti", "ipex")
_DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
_DTYPE_LINE = re.compile(r"constants_info_\[(\d+)\]\.dtype = cached_torch_dtype_(\w+);")
_SIZE_LINE = re.compile(r"constants_info_\[(\d+)\]\.data_size = (\d+);")


class FlavourUnavailable(XDepthError, ImportError):
    """The requested torch flavour cannot be built with what is installed."""


@dataclass
class GraphExport:
    """What a torch-graph export wrote, for the manifest."""

    files: list[ArtifactFile]
    runtime: dict[str, Any]
    weights_storage: dict[str, Any]


def _example(input_hw: tuple[int, int]) -> torch.Tensor:
    return torch.zeros((1, *input_hw, 3), dtype=torch.uint8)


def compile_flags() -> str:
    """The instruction-set flags inductor compiles CPU kernels with on this machine."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    return pick_vec_isa().build_arch_flags()


def export_aoti(
    loaded: LoadedModel,
    pre: Preprocess,
    input_hw: tuple[int, int],
    precision: str,
    out: Path,
    per_image: bool = False,
) -> GraphExport:
    """Compile the uint8-input graph into `out/model.pt2` (grad off, or freezing is skipped);
    `per_image`: height and width symbolic (multiples of the card's ensure_multiple_of)."""
    wrapper = U8InverseDepth(loaded.model.float().eval(), pre, _DTYPES[precision]).eval()
    multiple = pre.ensure_multiple_of
    example_hw = (input_hw[0], input_hw[1] + multiple) if per_image else input_hw
    with torch.no_grad():
        axes = (1, 2) if per_image else None
        program = export_program(wrapper, _example(example_hw), axes, multiple)
        torch._inductor.aoti_compile_and_package(
            program,
            package_path=str(out / PACKAGE),
            inductor_configs={"freezing": True},
        )
    runtime = {
        "inference_precision": precision,
        "compile_flags": compile_flags(),
        "suggested_num_requests": 1,
    }
    storage = {"constant_bytes_by_dtype": package_weight_bytes(out / PACKAGE), "frozen": True}
    return GraphExport([file_record(out, PACKAGE, "model")], runtime, storage)


def package_weight_bytes(package: Path) -> dict[str, int]:
    """Bytes of stored constants per dtype, read from the package's generated wrapper.

    AOTInductor embeds the frozen constants in the compiled library and lists them, with
    dtype and size, in the wrapper source it packages alongside; this is the evidence that
    freezing folded the bf16 casts (a package compiled with grad enabled keeps f32 weights).
    """
    totals: dict[str, int] = {}
    with zipfile.ZipFile(package) as archive:
        for name in archive.namelist():
            if not name.endswith(".wrapper.cpp"):
                continue
            text = archive.read(name).decode("utf-8", "replace")
            dtypes = dict(_DTYPE_LINE.findall(text))
            sizes = _SIZE_LINE.findall(text)
            for index, size in sizes:
                dtype = dtypes.get(index, "unknown")
                totals[dtype] = totals.get(dtype, 0) + int(size)
    return totals


def _import_ipex() -> Any:
    try:
        import intel_extension_for_pytorch as ipex
    except ImportError as exc:
        raise FlavourUnavailable(
            f"the ipex flavour needs intel_extension_for_pytorch built for torch "
            f"{torch.__version__.split('+')[0]}, and it is not importable here ({exc}). IPEX is "
            "end of life (its last release, 2.8, supports only torch 2.8); use the default aoti "
            "flavour, which uses the same oneDNN bf16 kernels through inductor"
        ) from None
    ipex_release = ".".join(ipex.__version__.split(".")[:2])
    torch_release = ".".join(torch.__version__.split(".")[:2])
    if ipex_release != torch_release:
        raise FlavourUnavailable(
            f"intel_extension_for_pytorch {ipex.__version__} does not match torch "
            f"{torch.__version__} (IPEX needs the same major.minor release)"
        )
    return ipex


def export_ipex(
    loaded: LoadedModel, pre: Preprocess, input_hw: tuple[int, int], precision: str, out: Path
) -> GraphExport:
    """ipex.optimize + frozen TorchScript trace into `out/model.ipex.pt`."""
    ipex = _import_ipex()
    dtype = _DTYPES[precision]
    wrapper = U8InverseDepth(loaded.model.float().eval(), pre).eval()
    optimized = ipex.optimize(wrapper, dtype=dtype)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        traced = torch.jit.freeze(torch.jit.trace(optimized, _example(input_hw)))
    traced.save(str(out / IPEX_FILE))
    runtime = {"inference_precision": precision, "suggested_num_requests": 1}
    storage = {"frozen": True, "ipex_version": ipex.__version__}
    return GraphExport([file_record(out, IPEX_FILE, "model")], runtime, storage)


def export_torch_graph(
    loaded: LoadedModel,
    pre: Preprocess,
    input_hw: tuple[int, int],
    precision: str,
    out: Path,
    flavour: str = "aoti",
    per_image: bool = False,
) -> GraphExport:
    if precision not in _DTYPES:
        raise XDepthError(
            f"precision {precision!r} is not available for the torch format (f32 or bf16); "
            "int8 artifacts are OpenVINO IR (--format openvino)"
        )
    if flavour == "aoti":
        return export_aoti(loaded, pre, input_hw, precision, out, per_image)
    if flavour == "ipex":
        if per_image:
            raise XDepthError(
                f"{loaded.card.name} keeps each image's aspect ratio, and an IPEX trace takes "
                "one input size: use the aoti flavour, or fix a size with --input-size H W "
                "(which squashes other aspect ratios, unlike the reference)"
            )
        return export_ipex(loaded, pre, input_hw, precision, out)
    raise XDepthError(f"torch flavour {flavour!r} is not one of {', '.join(FLAVOURS)}")
