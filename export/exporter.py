"""`export`: a variant -> an artifact folder (model files + manifest.json), measured.

Every artifact is built in a hidden folder next to the destination, opened through the
engine's own backend, and scored against the fp32 reference on held-out images; only if it
meets its fidelity floor does it replace the destination. A failed export leaves nothing
behind, so a folder with a manifest is always an artifact that passed.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from xdepth.errors import XDepthError
from xdepth.export import openvino_export as ovx
from xdepth.export.build import BuildOptions
from xdepth.export.calibration import (
    DEFAULT_CALIBRATION_SIZE,
    DEFAULT_FIDELITY_IMAGES,
    ImageSet,
    fidelity_set,
)
from xdepth.export.describe import Built, Job, build_manifest, model_key
from xdepth.export.fidelity import (
    F32_MAX_REL_ERROR,
    REFERENCE,
    Reference,
    failures,
    floors,
    measure,
    reference,
)
from xdepth.export.load import load_model
from xdepth.model.backends import open_artifact
from xdepth.model.cards import Card
from xdepth.model.formats import FORMATS, PRECISIONS, get_format
from xdepth.model.hardware import cpu_info, cpu_model
from xdepth.model.manifest import write_manifest

_reference_cache: dict[Hashable, Reference] = {}

Progress = Callable[[str], None]


class ExportError(XDepthError, ValueError):
    """The export was asked for with options that do not fit together or the variant."""


class NondeterministicRuntime(XDepthError, RuntimeError):
    """The compiled artifact gives different outputs for the same input."""


class FidelityError(XDepthError):
    """The artifact misses its fidelity floor; nothing was written to the destination."""

    def __init__(self, message: str, fidelity: dict[str, Any]) -> None:
        super().__init__(message)
        self.fidelity = fidelity


def resolve_input_size(
    card: Card, input_size: tuple[int, int] | None
) -> tuple[tuple[int, int], bool]:
    """The input size and whether each image goes in at its own size.

    Variants that keep the aspect ratio run every image at the size their preprocessing
    gives it (around the card's size), as the reference does; `input_size` fixes one size
    instead, which squashes other aspect ratios and so deviates from the reference.
    Other variants resize every image to the card's size.
    """
    if input_size is None:
        return card.input_hw, card.preprocess.keep_aspect_ratio
    height, width = (int(v) for v in input_size)
    pre = card.preprocess
    if height <= 0 or width <= 0:
        raise ExportError(f"input size {height}x{width} must be positive")
    if (height, width) != card.input_hw and not pre.keep_aspect_ratio:
        raise ExportError(
            f"variant {card.name!r} resizes every image to {pre.height}x{pre.width} "
            "(keep_aspect_ratio is false), so --input-size cannot change it; it applies to "
            "variants that keep the aspect ratio"
        )
    multiple = pre.ensure_multiple_of
    if height % multiple or width % multiple:
        raise ExportError(
            f"input size {height}x{width}: both sides must be multiples of {multiple} "
            f"for variant {card.name!r}"
        )
    return (height, width), False


def _check_options(
    fmt: str, precision: str, flavour: str | None, int8_only: dict[str, bool]
) -> str:
    """Reject option combinations that cannot work; return the flavour to build."""
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise ExportError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    spec = FORMATS[fmt]
    if precision not in spec.precisions:
        offer = [name for name, f in FORMATS.items() if precision in f.precisions]
        raise ExportError(
            f"{precision} is available for the {' and '.join(offer)} format only; use "
            f"--format {offer[0]}"
        )
    if flavour not in (None, *spec.flavours):
        raise ExportError(
            f"{fmt} flavour {flavour!r} is not one of {', '.join(spec.flavours)}"
            + ("; flavours other than ir apply to the torch format" if fmt == "openvino" else "")
        )
    for option, given in int8_only.items():
        if given and precision != "int8":
            raise ExportError(f"{option} applies to int8 exports only (--precision int8)")
    return flavour or spec.flavours[0]


def _check_destination(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ExportError(
            f"{out}: folder is not empty and holds no manifest.json; refusing to overwrite it "
            "(choose a new or empty folder, or an existing artifact folder to replace)"
        )


def _reference(job: Job, images: ImageSet) -> Reference:
    """The fp32 reference on the fidelity images, computed once per model and size."""
    key = (
        model_key(job.loaded),
        dataclasses.astuple(job.pre),
        job.per_image,
        repr(images.description),
    )
    if key not in _reference_cache:
        if len(_reference_cache) >= 4:
            _reference_cache.pop(next(iter(_reference_cache)))
        _reference_cache[key] = reference(job.loaded, job.pre, job.fixed_hw, images)
    return _reference_cache[key]


def export(
    variant_or_dir: str | Path,
    out_dir: str | Path,
    *,
    weights: str | Path | None = None,
    random_init: bool = False,
    fmt: str = "openvino",
    precision: str = "f32",
    calibration: str | Path | None = None,
    calibration_size: int | None = None,
    input_size: tuple[int, int] | None = None,
    fidelity_floor: float | None = None,
    accuracy_control: bool = False,
    max_delta1_drop: float = 0.01,
    flavour: str | None = None,
    fidelity_images: int = DEFAULT_FIDELITY_IMAGES,
    progress: Progress | None = None,
) -> Path:
    """Export a variant into `out_dir` and return it; raises FidelityError under the floor.

    `fidelity_floor` is the minimum delta1 against the fp32 reference (defaults: bf16 0.99,
    int8 0.97); f32 must also stay within a relative error of 1e-4. int8 calibrates on
    `calibration_size` images (default 64) of the `calibration` folder, or on held-out
    synthetic scenes distinct from the fidelity images. `flavour` picks the torch
    flavour ("aoti" default, "ipex" where IPEX is installed). Raises ExportError for
    options that do not fit, NondeterministicRuntime when a second compile of the artifact
    gives different outputs; in every failure the destination is left untouched.
    """
    say = progress or (lambda message: None)
    flavour = _check_options(
        fmt,
        precision,
        flavour,
        {
            "calibration": calibration is not None,
            "calibration_size": calibration_size is not None,
            "accuracy_control": accuracy_control,
        },
    )
    if not 0 <= max_delta1_drop < 1:
        raise ExportError(f"max_delta1_drop {max_delta1_drop} must be in [0, 1)")
    if fidelity_floor is not None and not 0 <= fidelity_floor <= 1:
        raise ExportError(f"fidelity floor (minimum delta1) {fidelity_floor} must be in [0, 1]")
    out = Path(out_dir)
    _check_destination(out)
    started = time.perf_counter()
    loaded = load_model(variant_or_dir, weights=weights, random_init=random_init)
    input_hw, per_image = resolve_input_size(loaded.card, input_size)
    pre = dataclasses.replace(loaded.card.preprocess, height=input_hw[0], width=input_hw[1])
    load_seconds = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    job = Job(loaded, pre, fmt, flavour, precision, staging, per_image)
    try:
        images = fidelity_set(input_hw, fidelity_images)
        say(f"running the fp32 reference on {len(images.images)} held-out images")
        ref = _reference(job, images)
        options = BuildOptions(
            calibration,
            calibration_size or DEFAULT_CALIBRATION_SIZE,
            accuracy_control,
            max_delta1_drop,
        )
        _build_measured(job, ref, images, options, fidelity_floor, load_seconds, say)
        _make_public(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    say(f"wrote {out}")
    return out


def _build_measured(
    job: Job,
    ref: Reference,
    images: ImageSet,
    options: BuildOptions,
    fidelity_floor: float | None,
    load_seconds: float,
    say: Progress,
) -> None:
    """Build the format's files into the staging folder, measure them through the engine
    and write the manifest; raise FidelityError (manifest written) under the floor."""
    started = time.perf_counter()
    built = get_format(job.fmt).build_function()(job, ref, options, say)
    built.export_info |= {
        "seconds": round(load_seconds + time.perf_counter() - started, 3),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpu": cpu_model(), "cores": os.cpu_count()},
    }
    fidelity = _measure(job, built, images, ref, say)
    fidelity["floors"] = floors(job.precision, fidelity_floor)
    fails = failures(fidelity["vs_reference"], fidelity["floors"])
    fidelity["passed"] = not fails
    write_manifest(build_manifest(job, built, fidelity))
    if fails:
        hint = ", or try --accuracy-control" if job.precision == "int8" else ""
        raise FidelityError(
            f"{job.loaded.card.name} {job.fmt} {job.precision}: fidelity under the floor "
            f"({'; '.join(fails)}) against the fp32 reference on "
            f"{fidelity['images']['count']} held-out images; nothing was written to the "
            f"destination. Lower the floor with --min-delta1 if that is acceptable{hint}",
            fidelity,
        )


def _make_public(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; give the artifact the user's usual mode."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def _score(
    job: Job, built: Built, images: ImageSet, ref: Reference
) -> tuple[dict[str, Any], dict[str, Any], list[np.ndarray]]:
    """Write a provisional manifest, open the staged artifact in the engine, score it."""
    write_manifest(build_manifest(job, built, {"status": "pending"}))
    start = time.perf_counter()
    options = {"use_cache": False} if job.fmt == "openvino" else {}
    backend = open_artifact(job.staging, **options)
    result, preds = measure(backend, images, ref)
    hints = {}
    if job.fmt == "openvino":
        props = backend.properties()
        hints = {
            "suggested_num_streams": int(props["NUM_STREAMS"]),
            "suggested_num_requests": int(props["OPTIMAL_NUMBER_OF_INFER_REQUESTS"]),
        }
    result["seconds"] = round(time.perf_counter() - start, 3)
    result["measured_with"] = {
        "precision": backend.effective_precision,
        "float_precision": backend.float_precision,
        "cpu": cpu_info().describe(),
        "fallback": backend.fallback,
    }
    return result, hints, preds


def _check_repeatable(job: Job, images: ImageSet, preds: list[np.ndarray]) -> None:
    """A second, independent compile must reproduce the first one's outputs exactly.

    Runtimes are deterministic for a given model, configuration and CPU; an artifact that
    is not (seen with OpenVINO 2026.4's CPU plugin on int8 window attention over tiny
    Swin-V2 windows) cannot be trusted, so it is refused.
    """
    options = {"use_cache": False} if job.fmt == "openvino" else {}
    again = open_artifact(job.staging, **options).predict_many(images.images[:2])
    for first, second in zip(preds, again, strict=False):
        if not np.array_equal(first, second):
            spread = float(np.abs(first - second).max() / max(np.abs(first).max(), 1e-30))
            raise NondeterministicRuntime(
                f"{job.loaded.card.name} {job.fmt} {job.precision}: the runtime gives "
                f"different outputs for the same input (up to {spread:.3g} of the output's "
                "maximum apart between two compiles), so the artifact was not written; "
                "export another precision for this variant"
            )


def _measure(
    job: Job, built: Built, images: ImageSet, ref: Reference, say: Progress
) -> dict[str, Any]:
    """Score the staged artifact through the engine (floors are applied by the caller).

    f32 IRs are first tried with fp16-compressed weights (half the size); if that misses
    the relative-error target, the weights are stored as f32 and the manifest says why.
    """
    say(f"measuring fidelity on {len(images.images)} held-out images")
    model, built.ov_model = built.ov_model, None
    result, hints, preds = _score(job, built, images, ref)
    error = result["vs_reference"]["max_rel_error"]
    if job.fmt == "openvino" and job.precision == "f32" and error > F32_MAX_REL_ERROR:
        say(f"fp16-compressed weights give relative error {error:.3g}; storing f32 weights")
        built.files = ovx.save(model, job.staging, compress_to_fp16=False)
        built.weights_storage = {
            "compress_to_fp16": False,
            "reason": f"fp16-compressed weights gave a max relative error of {error:.3g} "
            f"against the fp32 reference (target {F32_MAX_REL_ERROR:g}); stored as f32",
        }
        result, hints, preds = _score(job, built, images, ref)
    _check_repeatable(job, images, preds)
    built.runtime |= hints
    if result["measured_with"]["fallback"]:
        say(
            f"{result['measured_with']['fallback']}; the artifact is valid for CPUs that have "
            f"it, but its {job.precision} fidelity was not measured here"
        )
    fidelity: dict[str, Any] = {
        "reference": REFERENCE,
        "images": images.description,
        "measured_with": result["measured_with"],
        "vs_reference": result["vs_reference"],
        "vs_ground_truth": None,
        "repeatable": "a second compile reproduced the outputs exactly",
        "seconds": result["seconds"],
    }
    if ref.truth is not None:
        fidelity["vs_ground_truth"] = {
            "artifact": result["vs_ground_truth"],
            "reference": ref.truth,
            "metrics": "delta1 and AbsRel after scale-shift alignment in inverse depth, "
            "aligned depth capped to the scene's true depth range (xdepth.eval.metrics); mask IoU "
            "of the seed recipe's mask (max-scaled uint8 > 45) vs the scene mask",
        }
    return fidelity
