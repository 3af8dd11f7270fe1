"""The format-specific step of an export: a loaded model -> model files in the staging folder.

Each artifact format registers its build function in xdepth.model.formats; `export` (in
xdepth.export.exporter) calls it with the job, the fp32 reference on the fidelity images and
the options, then measures and writes the manifest the same way for every format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdepth.export import openvino_export as ovx
from xdepth.export.calibration import calibration_set
from xdepth.export.describe import Built, Job, model_key
from xdepth.export.fidelity import Reference, model_outputs
from xdepth.model.preprocess import normalize

Progress = Callable[[str], None]
# The runtime precision of the layers NNCF leaves in float in an int8 IR. bf16: on this
# Zen 4 (AVX512_BF16, no AMX) DPT-BEiT-L-512 int8 ran at 0.446 images/s with bf16 and 0.406
# with f32 (interleaved runs, THROUGHPUT), and on a trained xdepth-tiny checkpoint the mask
# IoU against fp32 was 0.9965 vs 0.9967. The fidelity floor is measured with it. A CPU
# without bf16 runs these layers in f32 (xdepth.model.hardware).
INT8_INFERENCE_PRECISION = "bf16"


@dataclass(frozen=True)
class BuildOptions:
    """What an export asks beyond the job: int8 calibration and accuracy control."""

    calibration: str | Path | None
    calibration_size: int
    accuracy_control: bool
    max_delta1_drop: float


def build_openvino(job: Job, ref: Reference, options: BuildOptions, say: Progress) -> Built:
    """An IR with the preprocessing in its graph; int8 quantized by NNCF before that."""
    loaded, pre, input_hw = job.loaded, job.pre, job.input_hw
    size = "each image at its own size" if job.per_image else f"{input_hw[0]}x{input_hw[1]}"
    say(f"converting {loaded.card.name} to OpenVINO IR ({size})")
    key = model_key(loaded)
    model = ovx.convert(loaded, input_hw, key, job.per_image)
    float_ir = ovx.with_preprocessing(model.clone(), pre)
    f32_error = ovx.check_f32(float_ir, ref.inputs_u8, ref.outputs, key)
    calibration_info = None
    if job.precision == "int8":
        calib = calibration_set(input_hw, options.calibration_size, options.calibration)
        inputs_u8 = calib.model_inputs(pre, job.fixed_hw)
        normalised = [normalize(x, pre) for x in inputs_u8]
        refs = model_outputs(loaded, pre, inputs_u8) if options.accuracy_control else None
        result = ovx.quantize_int8(
            model,
            normalised,
            accuracy_control=options.accuracy_control,
            references=refs,
            max_delta1_drop=options.max_delta1_drop,
            progress=say,
        )
        model = result.model
        calibration_info = {"images": calib.description} | result.description
    model = ovx.with_preprocessing(model, pre)
    files = ovx.save(model, job.staging, compress_to_fp16=True)
    runtime: dict[str, Any] = {
        "performance_hint": "THROUGHPUT",
        "inference_precision": (
            INT8_INFERENCE_PRECISION if job.precision == "int8" else job.precision
        ),
        "ov_properties": dict(ovx.SNIPPETS_OFF),
        "ov_properties_reason": ovx.OV_PROPERTIES_REASON,
    }
    storage = {"compress_to_fp16": True}
    built = Built(files, runtime, storage, calibration_info, ov_model=model)
    built.export_info["conversion_f32_max_rel_error"] = f32_error
    return built


def build_torch(job: Job, ref: Reference, options: BuildOptions, say: Progress) -> Built:
    """A torch.export graph compiled ahead of time (AOTInductor; IPEX where importable)."""
    from xdepth.export.torch_export import export_torch_graph

    name = job.loaded.card.name
    say(f"compiling {name} ({job.flavour}, {job.precision}); this takes a while")
    graph = export_torch_graph(
        job.loaded, job.pre, job.input_hw, job.precision, job.staging, job.flavour, job.per_image
    )
    return Built(graph.files, graph.runtime, graph.weights_storage)
