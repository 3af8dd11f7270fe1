"""The hardware ceiling: this CPU's matrix-multiply peak per precision, on kernels it has.

A model cell's achieved TFLOP/s means little alone; as a share of what the cores can do
for large square matmuls in the same precision, with the same threads, it says how much is
left to win. That share is only true against a native kernel: torch's bf16 matmul on a CPU
without bf16 instructions, or ``torch._int_mm`` without VNNI, runs a slow emulation (a few
GFLOP/s), and a share against it reads 20,000 %. So each peak is the faster of two native
paths: OpenVINO's own MatMul at that precision (a one-MatMul model compiled with
INFERENCE_PRECISION_HINT; int8 through a FakeQuantize'd MatMul, as NNCF's IR has it), whose
runtime graph names the kernel it ran, and oneDNN through torch where this CPU has the
instructions. A precision the CPU does not compute natively (bf16 without AMX or
AVX512_BF16: OpenVINO runs f32) gets no peak and no share, only the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from xdepth.model.hardware import CpuInfo, core_count, cpu_info, isa_from_flags

PEAK_KEYS = ("fp32", "bf16", "int8")
# Which peak a cell's (effective) precision is compared with.
PRECISION_PEAK = {"f32": "fp32", "fp32": "fp32", "bf16": "bf16", "int8": "int8"}
PEAK_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "int8"}
BUDGET_S = 4.0  # per path: repeats stop once this much time has been spent timing
NOT_NATIVE = "not native on this CPU"


def matmul_isa(flags: set[str] | frozenset[str] | None = None) -> dict[str, str]:
    """The instruction set each precision's matmul runs on, from the CPU flags."""
    flags = cpu_info().flags if flags is None else flags
    isa = isa_from_flags(flags or set())
    fp32 = {"AVX-512": "AVX-512 FMA", "AVX2": "AVX2 FMA"}.get(isa["f32"], "SSE")
    bf16 = {"AMX": "AMX-BF16", "AVX512_BF16": "AVX512_BF16"}.get(isa["bf16"], NOT_NATIVE)
    without_vnni = f"{isa['f32']} u8 x s8 (no VNNI)" if isa["f32"] != "SSE4" else "SSE"
    int8 = {"AMX": "AMX-INT8", "AVX512_VNNI": "AVX512_VNNI", "AVX_VNNI": "AVX-VNNI"}.get(
        isa["int8"], without_vnni
    )
    return {"fp32": fp32, "bf16": bf16, "int8": int8}


def _best_tflops(fn: Callable[[], Any], flop: float, repeats: int) -> float:
    fn()  # warm-up: packing, thread pool start
    best, spent = float("inf"), 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
        if spent > BUDGET_S:
            break
    return flop / best / 1e12


def _ov_matmul(precision: str, size: int) -> Any:
    """x[size, size] @ W^T with constant weights: f32, or int8 as NNCF writes it
    (FakeQuantize on the activations, int8 weights with a dequantising scale)."""
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter([size, size], np.float32, name="x")
    rng = np.random.default_rng(0)
    if precision == "int8":
        lo, hi = ops.constant(np.float32(0)), ops.constant(np.float32(255))
        x_q = ops.fake_quantize(x, lo, hi, lo, hi, 256)
        w_i8 = ops.constant(rng.integers(-127, 128, (size, size), dtype=np.int8))
        weights = ops.multiply(ops.convert(w_i8, np.float32), ops.constant(np.float32(0.01)))
        y = ops.matmul(x_q, weights, False, True)
    else:
        weights = ops.constant(rng.standard_normal((size, size), dtype=np.float32))
        y = ops.matmul(x, weights, False, True)
    return ov.Model([y], [x], f"matmul-{precision}")


def openvino_peak(precision: str, size: int, threads: int, repeats: int) -> tuple[float, str]:
    """TFLOP/s of OpenVINO's MatMul at `precision`, and the kernel its runtime graph names
    (e.g. brgemm_avx512_bf16); a bf16 request the CPU runs in f32 says so in the kernel."""
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
    }
    compiled = ov.Core().compile_model(_ov_matmul(precision, size), "CPU", config)
    request = compiled.create_infer_request()
    x = np.random.default_rng(1).uniform(0, 255, (size, size)).astype(np.float32)
    tflops = _best_tflops(lambda: request.infer({0: x}), 2.0 * size**3, repeats)
    kernel = "unknown"
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in ("FullyConnected", "MatMul"):
            kernel = f"{info['primitiveType'].astype(str)}, {info['runtimePrecision'].astype(str)}"
    return tflops, kernel


def torch_peak(precision: str, size: int, repeats: int) -> float:
    """TFLOP/s of oneDNN through torch: matmul for f32 and bf16, _int_mm for int8."""
    import torch

    gen = torch.Generator().manual_seed(0)
    if precision == "int8":
        a, b = (torch.randint(-128, 128, (size, size), dtype=torch.int8, generator=gen)
                for _ in range(2))  # fmt: skip
        fn = lambda: torch._int_mm(a, b)  # noqa: E731
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        a, b = (torch.randn(size, size, generator=gen).to(dtype) for _ in range(2))
        fn = lambda: torch.matmul(a, b)  # noqa: E731
    with torch.inference_mode():
        return _best_tflops(fn, 2.0 * size**3, repeats)


def _torch_has_kernel(key: str, cpu: CpuInfo) -> bool:
    """oneDNN through torch is native for bf16 with AMX/AVX512_BF16 and int8 with VNNI/AMX;
    elsewhere it emulates (bf16 and int8 at a few GFLOP/s), so it is not timed."""
    if key == "bf16":
        return cpu.has_bf16
    if key == "int8":
        return cpu.isa["int8"] in ("AMX", "AVX512_VNNI", "AVX_VNNI")
    return True


def matmul_peaks(
    threads: int | None = None,
    size: int = 2048,
    repeats: int = 5,
    cpu: CpuInfo | None = None,
    with_torch: bool = True,
) -> dict[str, Any]:
    """Best-of-`repeats` TFLOP/s (TOP/s for int8) of `size`-square matmuls per precision,
    on native kernels only; None with the reason where this CPU has none."""
    cpu = cpu or cpu_info()
    started = time.perf_counter()
    threads = threads or core_count()
    if with_torch:
        import torch

        torch.set_num_threads(threads)
    tflops: dict[str, float | None] = {}
    method: dict[str, str] = {}
    for key in PEAK_KEYS:
        precision = PEAK_PRECISION[key]
        if not cpu.native[precision]:
            tflops[key] = None
            method[key] = f"{NOT_NATIVE}: OpenVINO computes it in f32; no peak, no share"
            continue
        ov_rate, kernel = openvino_peak(precision, size, threads, repeats)
        best, how = ov_rate, f"OpenVINO MatMul {precision} ({kernel})"
        if with_torch and _torch_has_kernel(key, cpu):
            torch_rate = torch_peak(precision, size, repeats)
            if torch_rate > ov_rate:
                op = "_int_mm int8 -> int32" if key == "int8" else f"matmul {precision}"
                best, how = torch_rate, f"torch.{op} (oneDNN; OpenVINO {ov_rate:.4g})"
        tflops[key], method[key] = round(best, 4), how
    return {
        "size": size,
        "threads": threads,
        "method": method,
        "isa": matmul_isa(cpu.flags),
        "native": {key: cpu.native[PEAK_PRECISION[key]] for key in PEAK_KEYS},
        "amx": "amx_tile" in cpu.flags,
        "tflops": tflops,
        "seconds": round(time.perf_counter() - started, 1),
    }


def achieved(
    images_per_s: float, gflop_per_image: float | None, precision: str, peaks: dict
) -> dict[str, Any]:
    """TFLOP/s a cell achieves, and its share of the peak of the precision it really ran in
    (None when unknown or when this CPU has no native kernel for it)."""
    if not gflop_per_image:
        return {"achieved_tflops": None, "peak_key": None, "pct_of_peak": None}
    tflops = images_per_s * gflop_per_image / 1e3
    key = PRECISION_PEAK.get(precision, "fp32")
    peak = (peaks or {}).get("tflops", {}).get(key)
    return {
        "achieved_tflops": round(tflops, 5),
        "peak_key": key if peak else None,
        "pct_of_peak": round(100 * tflops / peak, 2) if peak else None,
    }


def best_of(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two peak measurements (before and after a run's cells) merged, precision by
    precision, into the faster: load from other work only ever slows a measurement."""
    merged = dict(first) | {"tflops": {}, "method": {}, "measurements": 2}
    merged["seconds"] = round(first["seconds"] + second["seconds"], 1)
    for key in PEAK_KEYS:
        a, b = first["tflops"][key], second["tflops"][key]
        pick = second if (b or 0) > (a or 0) else first
        merged["tflops"][key] = pick["tflops"][key]
        merged["method"][key] = pick["method"][key]
    return merged
