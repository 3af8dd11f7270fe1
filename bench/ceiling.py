"""The hardware ceiling: this machine's matrix-multiply peak per precision, and which ISA.

A model cell's achieved TFLOP/s means little alone; as a share of what the cores can do
for large square matmuls in the same precision, with the same threads, it says how much is
left to win. fp32 and bf16 use ``torch.matmul`` (oneDNN / BLAS), int8 ``torch._int_mm``
(int8 x int8 -> int32, oneDNN). The ISA is read from the CPU flags: on Zen 4 that is
AVX-512 FMA (fp32), AVX512_BF16 dot products (bf16) and AVX512_VNNI (int8); on a Sapphire
Rapids Xeon, AMX tiles serve bf16 and int8.
"""

from __future__ import annotations

import time
from typing import Any

from xdepth.model.hardware import cpu_flags, isa_from_flags

PEAK_KEYS = ("fp32", "bf16", "int8")
# Which peak a cell's precision is compared with.
PRECISION_PEAK = {"f32": "fp32", "fp32": "fp32", "bf16": "bf16", "int8": "int8"}


def matmul_isa(flags: set[str] | None = None) -> dict[str, str]:
    """The instruction set each precision's matmul runs on, from the CPU flags."""
    flags = cpu_flags() if flags is None else flags
    isa = isa_from_flags(flags or set())
    fp32 = {"AVX-512": "AVX-512 FMA", "AVX2": "AVX2 FMA"}.get(isa["f32"], "SSE")
    bf16 = {"AMX": "AMX-BF16", "AVX512_BF16": "AVX512_BF16"}.get(
        isa["bf16"], f"{fp32} (bf16 converted to fp32)"
    )
    without_vnni = "AVX2/AVX-512 without VNNI" if isa["f32"] != "SSE4" else "SSE"
    int8 = {"AMX": "AMX-INT8", "AVX512_VNNI": "AVX512_VNNI", "AVX_VNNI": "AVX-VNNI"}.get(
        isa["int8"], without_vnni
    )
    return {"fp32": fp32, "bf16": bf16, "int8": int8}


def _best_tflops(fn: Any, flop: float, repeats: int) -> float:
    fn()  # warm-up: packing, thread pool start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return flop / best / 1e12


def matmul_peaks(threads: int | None = None, size: int = 2048, repeats: int = 5) -> dict[str, Any]:
    """Best-of-`repeats` TFLOP/s (TOP/s for int8) of `size`-square matmuls per precision."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    flop = 2.0 * size**3
    gen = torch.Generator().manual_seed(0)
    a32 = torch.randn(size, size, generator=gen)
    b32 = torch.randn(size, size, generator=gen)
    a16, b16 = a32.to(torch.bfloat16), b32.to(torch.bfloat16)
    a8 = torch.randint(-128, 128, (size, size), dtype=torch.int8, generator=gen)
    b8 = torch.randint(-128, 128, (size, size), dtype=torch.int8, generator=gen)
    with torch.inference_mode():
        tflops = {
            "fp32": _best_tflops(lambda: torch.matmul(a32, b32), flop, repeats),
            "bf16": _best_tflops(lambda: torch.matmul(a16, b16), flop, repeats),
            "int8": _best_tflops(lambda: torch._int_mm(a8, b8), flop, repeats),
        }
    isa = matmul_isa()
    return {
        "size": size,
        "threads": torch.get_num_threads(),
        "method": {
            "fp32": "torch.matmul float32",
            "bf16": "torch.matmul bfloat16",
            "int8": "torch._int_mm int8 x int8 -> int32",
        },
        "isa": isa,
        "amx": "amx_tile" in (cpu_flags() or set()),
        "tflops": {key: round(value, 4) for key, value in tflops.items()},
    }


def achieved(images_per_s: float, gflop_per_image: float | None, precision: str, peaks: dict):
    """TFLOP/s a cell achieves, and its share of the matching peak (None when unknown)."""
    if not gflop_per_image or not peaks:
        return {"achieved_tflops": None, "peak_key": None, "pct_of_peak": None}
    tflops = images_per_s * gflop_per_image / 1e3
    key = PRECISION_PEAK.get(precision, "fp32")
    peak = peaks["tflops"].get(key)
    return {
        "achieved_tflops": round(tflops, 5),
        "peak_key": key,
        "pct_of_peak": round(100 * tflops / peak, 2) if peak else None,
    }
