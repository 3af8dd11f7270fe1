"""OpenVINO IR export: convert the torch model, bake preprocessing in, quantize with NNCF.

The IR takes uint8 RGB NHWC at the model's static input size; PrePostProcessor adds the
conversion to float, rescale, mean and std in front of the model, so the runtime only
resizes (on the host, with Pillow, as DPT's image processor does).

int8 is quantized *before* the preprocessing is added: NNCF then sees the model exactly as
transformers defines it (float NCHW input) and the uint8 -> float steps stay outside every
quantized region. Measured on a trained xdepth-tiny checkpoint (16 held-out scenes, 64
calibration scenes), quantizing after adding the preprocessing places the same 90
FakeQuantize nodes and scores the same (mask IoU against fp32 0.9969 vs 0.9967, max
relative error 0.057 vs 0.057); the simpler order wins.

Activation ranges are the global min/max over the calibration images, not NNCF's default
mean of per-image extremes: inverse depth peaks higher the nearer the nearest object is,
and averaging per-image maxima clipped every image with a nearer object than average (on
the same checkpoint: mask IoU 0.73 and max relative error 0.62 with the default, 0.997 and
0.057 with global min/max).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import nncf
import numpy as np
import openvino as ov
import torch
from nncf.common.logging import nncf_logger
from nncf.quantization.range_estimator import RangeEstimatorParametersSet
from openvino.preprocess import PrePostProcessor

from xdepth.errors import XDepthError
from xdepth.eval.metrics import inv_depth_agreement
from xdepth.export.describe import INPUT_NAME, OUTPUT_NAME
from xdepth.export.fidelity import F32_MAX_REL_ERROR, max_rel_error
from xdepth.export.load import LoadedModel
from xdepth.export.wrappers import InverseDepth, export_program
from xdepth.model.cards import Preprocess
from xdepth.model.manifest import ArtifactFile, file_record

MODEL_XML = "model.xml"
SMOOTH_QUANT_ALPHA_MATMUL = 0.95
PRESET = nncf.QuantizationPreset.MIXED
# int8 covers the transformer's matrix products; convolutions (patch embedding, a hybrid's
# BiT stem, DPT's reassemble/fusion/head decoder) stay float and run in bf16. The decoder
# carries inverse depth at full resolution, where far surfaces are small values: quantized,
# the trained xdepth-tiny (hybrid) fell to delta1 0.56 against its fp32 output; with
# convolutions float it keeps 1.00 (mask IoU 0.995). In DPT-BEiT-L-512 they are about a
# sixth of the work.
FLOAT_OP_TYPES = ("Convolution",)

# Compile properties every IR artifact asks the engine for: OpenVINO's CPU "snippets"
# (JIT-fused subgraphs) off. On OpenVINO 2026.4 they crash (SIGSEGV) compiling the shipped
# xdepth-tiny (hybrid BiT backbone) in f32, and with static shapes they compute the last
# Swin-V2 stage of tiny-dpt-swinv2 (2x2 windows) wrongly (0.1-0.3% of the output's
# maximum at the output). Turning them off cost nothing measurable: DPT-BEiT-L-512 bf16
# ran at 0.163 images/s without them and 0.140 with them (THROUGHPUT, 2 cores, busy CPU).
SNIPPETS_OFF = {"SNIPPETS_MODE": "DISABLE"}
OV_PROPERTIES_REASON = (
    "OpenVINO 2026.4 CPU snippets crash compiling some DPT variants (hybrid BiT in f32) and "
    "miscompute tiny Swin-V2 windows; off, DPT-BEiT-L-512 bf16 runs as fast"
)

# The last conversion (and its f32 check), so exporting several precisions of one model
# converts it once.
_converted: dict[Hashable, ov.Model] = {}
_checked: dict[Hashable, float] = {}


class ConversionError(XDepthError, RuntimeError):
    """The converted IR does not reproduce the torch model in f32."""


def clear_cache() -> None:
    """Drop the kept conversion (it holds a full copy of the model's weights)."""
    _converted.clear()
    _checked.clear()


def convert(
    loaded: LoadedModel, input_hw: tuple[int, int], key: Hashable, per_image: bool = False
) -> ov.Model:
    """The model as an ov.Model with a 1 x 3 x h x w float input (a fresh copy): h x w
    static, or (`per_image`) any multiple of the card's ensure_multiple_of.

    Converted from a torch.export program rather than a TorchScript trace: measured on
    DPT-BEiT-B-384 here, that converts in 28 s instead of 45 s and the IR runs faster
    (bf16 0.93 instead of 0.67 images/s, f32 0.42 instead of 0.35), with the same f32
    error against torch (4.5e-6). A per-image IR stays dynamic in height and width; see
    bench/results/input-size for why that beats a static IR reshaped per size.
    """
    key = (key, input_hw, per_image)
    if key not in _converted:
        clear_cache()
        multiple = loaded.card.preprocess.ensure_multiple_of
        # A non-square example, so that nothing in the trace can equate height and width.
        example_hw = (input_hw[0], input_hw[1] + multiple) if per_image else input_hw
        example = torch.zeros((1, 3, *example_hw), dtype=torch.float32)
        module = InverseDepth(loaded.model.float().eval())
        with torch.no_grad():
            program = export_program(module, example, (2, 3) if per_image else None, multiple)
            model = ov.convert_model(program)
        model.reshape({0: ov.PartialShape([1, 3, -1, -1]) if per_image else [1, 3, *input_hw]})
        _converted[key] = model
    return _converted[key].clone()


def with_preprocessing(model: ov.Model, pre: Preprocess) -> ov.Model:
    """uint8 NHWC in, float32 inverse depth out; rescale/mean/std done by the graph.

    PrePostProcessor edits `model` in place (and returns it): pass a clone to keep it.
    """
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    steps = ppp.input().preprocess().convert_element_type(ov.Type.f32)
    if pre.do_rescale:
        steps.scale(1.0 / pre.rescale_factor)  # x / 255 as the processor's x * (1 / 255)
    if pre.do_normalize:
        steps.mean(list(pre.mean)).scale(list(pre.std))
    ppp.output().tensor().set_element_type(ov.Type.f32)
    built = ppp.build()
    built.input(0).get_tensor().set_names({INPUT_NAME})
    built.output(0).get_tensor().set_names({OUTPUT_NAME})
    return built


def save(model: ov.Model, directory: Path, compress_to_fp16: bool) -> list[ArtifactFile]:
    """Write model.xml + model.bin and describe them for the manifest."""
    ov.save_model(model, directory / MODEL_XML, compress_to_fp16=compress_to_fp16)
    bin_name = Path(MODEL_XML).with_suffix(".bin").name
    return [file_record(directory, MODEL_XML, "model"), file_record(directory, bin_name, "data")]


def check_f32(
    model: ov.Model, inputs_u8: list[np.ndarray], outputs: list[np.ndarray], key: Hashable
) -> float:
    """Compile the float IR (with preprocessing) in f32 and compare it with torch's outputs.

    Returns the max relative error; raises ConversionError above the f32 target, which
    means the conversion itself is wrong for this architecture.
    """
    key = (key, tuple(x.shape for x in inputs_u8), model.input(0).get_partial_shape().is_static)
    if key not in _checked:
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        compiled = ov.Core().compile_model(model, "CPU", config | SNIPPETS_OFF)
        got = [compiled(x[None])[0][0] for x in inputs_u8]
        error = max_rel_error(got, outputs)
        if error > F32_MAX_REL_ERROR:
            raise ConversionError(
                f"the OpenVINO IR does not reproduce the torch model in f32: max relative "
                f"error {error:.3g} (target {F32_MAX_REL_ERROR:g}); the conversion is wrong "
                "for this architecture"
            )
        _checked[key] = error
    return _checked[key]


@dataclass
class QuantizeResult:
    model: ov.Model
    description: dict[str, Any]


def _advanced() -> nncf.AdvancedQuantizationParameters:
    return nncf.AdvancedQuantizationParameters(
        smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA_MATMUL),
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
    )


def _delta1_validation(
    compiled: ov.CompiledModel, items: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[float, list[float]]:
    """Mean and per-image delta1 of a model's output against the stored fp32 output."""
    scores = []
    for model_input, reference in items:
        out = compiled(model_input)[0][0]
        scores.append(inv_depth_agreement(out, reference)["delta1"])
    return float(np.mean(scores)), scores


@contextmanager
def _snippets_off_everywhere() -> Iterator[None]:
    """Every OpenVINO compile in this block runs without CPU snippets.

    NNCF compiles the model itself (statistics, accuracy control), through its own
    `ov.Core()` or `ov.compile_model`, and takes no compile properties: with snippets on,
    that compile crashes on the hybrid BiT backbone exactly as the artifact's would.
    """

    compile_model = ov.Core.compile_model

    def without_snippets(self, model, device_name=None, config=None, **kwargs):
        merged = {**(config or {}), **SNIPPETS_OFF}
        return compile_model(self, model, device_name, merged, **kwargs)

    # The method itself, so Core objects made anywhere (ov.compile_model too) are covered.
    # NNCF also logs every node it leaves float at INFO, on stdout: keep warnings only.
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)
    try:
        with mock.patch.object(ov.Core, "compile_model", without_snippets):
            yield
    finally:
        nncf_logger.setLevel(level)


def quantize_int8(
    model: ov.Model,
    calibration_inputs: list[np.ndarray],
    *,
    accuracy_control: bool = False,
    references: list[np.ndarray] | None = None,
    max_delta1_drop: float = 0.01,
    progress: Callable[[str], None] | None = None,
) -> QuantizeResult:
    """NNCF post-training int8 (transformer model type, mixed preset, SmoothQuant).

    `calibration_inputs` are float 1 x 3 x h x w model inputs (sizes may differ for a
    per-image IR). With `accuracy_control`, layers go back to float (most sensitive first)
    until delta1 against the fp32 `references` (h x w each, on the same images) drops by at
    most `max_delta1_drop`.
    """
    items = list(calibration_inputs)
    dataset = nncf.Dataset(items)
    common: dict[str, Any] = {
        "preset": PRESET,
        "model_type": nncf.ModelType.TRANSFORMER,
        "subset_size": len(items),
        "ignored_scope": nncf.IgnoredScope(types=list(FLOAT_OP_TYPES), validate=False),
    }
    description: dict[str, Any] = {
        "method": "nncf.quantize",
        "preset": PRESET.value,
        "model_type": "transformer",
        "smooth_quant_alpha_matmul": SMOOTH_QUANT_ALPHA_MATMUL,
        "activation_ranges": "global min/max over the calibration images",
        "fast_bias_correction": True,
        "float_op_types": list(FLOAT_OP_TYPES),
        "subset_size": len(items),
        "quantized_before_preprocessing": True,
    }
    if progress:
        progress(f"quantizing to int8 on {len(items)} calibration images")
    with _snippets_off_everywhere():
        if not accuracy_control:
            quantized = nncf.quantize(model, dataset, **common, advanced_parameters=_advanced())
        else:
            if references is None or len(references) != len(items):
                raise ValueError("accuracy control needs one fp32 reference per calibration image")
            # NNCF hands validation_fn the raw (input, reference) pairs and feeds item[0] itself.
            pairs = list(zip(items, references, strict=True))
            validation = nncf.Dataset(pairs, lambda item: item[0])
            quantized = nncf.quantize_with_accuracy_control(
                model,
                dataset,
                validation,
                validation_fn=_delta1_validation,
                max_drop=max_delta1_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                advanced_quantization_parameters=_advanced(),
                **common,
            )
            description |= {
                "method": "nncf.quantize_with_accuracy_control",
                "accuracy_control": {
                    "metric": "delta1 vs fp32 output at model resolution",
                    "validation_images": "the calibration images",
                    "max_delta1_drop": max_delta1_drop,
                    "drop_type": "absolute",
                },
            }
    description["fake_quantize_nodes"] = count_fake_quantize(quantized)
    return QuantizeResult(quantized, description)


def count_fake_quantize(model: ov.Model) -> int:
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
