"""The shape of one `xdepth bench` cell, shared by the suite, the report and the tests.

A cell is one contender (xdepth or a peer) running one variant in one format and
precision, model-only or end to end, at one number of streams. Every cell carries every
key below; a figure a contender cannot give (benchmark_app has no fidelity, a peer has no
OpenVINO cache) is None, never missing.
"""

from __future__ import annotations

from typing import Any

from xdepth.bench.ceiling import achieved
from xdepth.bench.cli import MODES

SUITE = "xdepth-bench"
# 2: peak_rss_mb is the engine in a process of its own (1: the bench process), peaks are
# native-only, cells carry the effective precision.
SCHEMA_VERSION = 2
CELL_KEYS = (
    "variant",
    "random_init",
    "weights",
    "contender",
    "format",
    "precision",
    "effective_precision",  # what the CPU computed: a bf16 request runs f32 without bf16
    "mode",
    "streams",
    "requests",
    "threads",
    "images_per_run",
    "runs",
    "run_s",
    "images_per_s",  # {"median", "min", "max"}
    "latency_ms",  # {"p50", "p95"}
    "peak_rss_mb",  # the engine alone, in its own process (xdepth.bench.memory)
    "steady_rss_mb",
    "artifact_mb",
    "memory",  # the stages behind those figures, cold and warm compile cache
    "bench_rss_mb",  # the bench process while the cell ran (holds the reference too)
    "rss_added_mb",
    "first_result_s",  # {"cold_cache", "warm_cache", "what"}
    "fidelity",  # vs the fp32 reference: {"delta1", "abs_rel", "mask_iou"}
    "accuracy",  # vs ground truth (real weights only): {"delta1", "abs_rel", "mask_iou"}
    "benchmarks",  # --eval-data: {"nyuv2": {"abs_rel", "delta1", "images"}, ...}
    "gflop_per_image",
    "achieved_tflops",
    "peak_key",
    "pct_of_peak",
    "notes",
    "error",
)
METRIC_KEYS = ("delta1", "abs_rel", "mask_iou")


def scores(measured: dict[str, Any] | None) -> dict[str, float | None] | None:
    """delta1, AbsRel and mask IoU out of xdepth.export.fidelity's figures."""
    if measured is None:
        return None
    return {key: _round(measured.get(key)) for key in METRIC_KEYS}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 5)


def make_cell(
    variant: dict[str, Any],
    peaks: dict[str, Any] | None,
    *,
    contender: str,
    fmt: str,
    precision: str,
    mode: str,
    timing: dict[str, Any] | None = None,
    **figures: Any,
) -> dict[str, Any]:
    """A complete cell: `variant` holds the per-variant facts (name, weights, GFLOP)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    cell: dict[str, Any] = dict.fromkeys(CELL_KEYS)
    cell |= {
        "variant": variant["name"],
        "random_init": variant["random_init"],
        "weights": variant["weights"],
        "contender": contender,
        "format": fmt,
        "precision": precision,
        "mode": mode,
        "gflop_per_image": variant.get("gflop_per_image"),
        "notes": [],
    }
    cell |= timing or {}
    unknown = set(figures) - set(CELL_KEYS)
    if unknown:
        raise ValueError(f"unknown cell figures: {', '.join(sorted(unknown))}")
    cell |= figures
    cell["effective_precision"] = cell["effective_precision"] or precision
    return with_share(cell, peaks)


def with_share(cell: dict[str, Any], peaks: dict[str, Any] | None) -> dict[str, Any]:
    """The cell with its TFLOP/s and share of the peak of the precision it ran in."""
    if cell.get("images_per_s") is None:
        return cell
    ran = cell.get("effective_precision") or cell["precision"]
    rate = cell["images_per_s"]["median"]
    return cell | achieved(rate, cell["gflop_per_image"], ran, peaks or {})


def failed_cell(variant: dict[str, Any], error: BaseException, **where: Any) -> dict[str, Any]:
    """A cell that could not be measured: the error instead of figures."""
    cell = make_cell(variant, None, **where)
    cell["error"] = f"{type(error).__name__}: {error}"
    return cell
