"""What this CPU really computes each precision with, read at run time, never assumed.

OpenVINO's CPU plugin lists what the processor offers (OPTIMIZATION_CAPABILITIES: "BF16"
with AMX or AVX512_BF16) and silently computes f32 where bf16 is asked for and absent; a
compiled model's INFERENCE_PRECISION_HINT tells what it settled on. The instruction sets
come from the CPU flags Linux reports. Exports, the engine and the bench all read them
here, so a manifest, a run.json and a bench row name the same facts.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


class PrecisionFallbackWarning(UserWarning):
    """This CPU computes an artifact in a lower precision than it asks for (bf16 -> f32)."""


@dataclass(frozen=True)
class CpuInfo:
    """This machine's CPU: its name, flags, and what OpenVINO says it can compute."""

    model: str
    flags: frozenset[str]
    ov_capabilities: tuple[str, ...]

    @property
    def has_bf16(self) -> bool:
        """Native bf16 matrix products (AMX or AVX512_BF16), as OpenVINO reports them."""
        return "BF16" in self.ov_capabilities

    @property
    def isa(self) -> dict[str, str]:
        """The instruction set each precision's matrix products run on here."""
        return isa_from_flags(self.flags)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: what manifests, run.json and bench results record."""
        return {"model": self.model, "isa": self.isa, "openvino": list(self.ov_capabilities)}

    def summary(self) -> str:
        """One line: 'AMD EPYC (f32 AVX-512, bf16 AVX512_BF16, int8 AVX512_VNNI)'."""
        isa = self.isa
        return f"{self.model} (f32 {isa['f32']}, bf16 {isa['bf16']}, int8 {isa['int8']})"


def isa_from_flags(flags: set[str] | frozenset[str]) -> dict[str, str]:
    """{"f32": AVX-512 | AVX2 | SSE4, "bf16": AMX | AVX512_BF16 | none,
    "int8": AMX | AVX512_VNNI | AVX_VNNI | "<f32 ISA> (no VNNI)"} from Linux CPU flags."""
    f32 = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "SSE4")
    if "amx_bf16" in flags:
        bf16 = "AMX"
    elif "avx512_bf16" in flags:
        bf16 = "AVX512_BF16"
    else:
        bf16 = "none"
    if "amx_int8" in flags:
        int8 = "AMX"
    elif "avx512_vnni" in flags:
        int8 = "AVX512_VNNI"
    elif "avx_vnni" in flags:
        int8 = "AVX_VNNI"
    else:
        int8 = f"{f32} (no VNNI)"
    return {"f32": f32, "bf16": bf16, "int8": int8}


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else what platform reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str] | None:
    """The CPU feature flags of this machine (Linux), or None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else None


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CpuInfo (read once per process)."""
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return CpuInfo(cpu_model(), frozenset(cpu_flags() or ()), tuple(capabilities))


def effective_precision(precision: str, float_precision: str) -> str:
    """What an artifact of `precision` computes when its float layers run in
    `float_precision` (the compiled model's INFERENCE_PRECISION_HINT): int8 stays int8
    (its float layers are reported apart), f32 and bf16 are what the hint says."""
    return "int8" if precision == "int8" else float_precision


def fallback_note(precision: str, float_precision: str, requested_float: str) -> str | None:
    """One line when this CPU computes less than the artifact asks for, else None."""
    if float_precision == requested_float:
        return None
    what = "its float layers" if precision == "int8" else "it"
    return (
        f"the {precision} artifact asks for {requested_float}, but this CPU "
        f"({cpu_info().summary()}) has no native {requested_float}: OpenVINO runs {what} in "
        f"{float_precision}, as accurate as f32 and without the {requested_float} speed-up"
    )
