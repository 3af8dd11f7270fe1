"""What this CPU really computes each precision with, read at run time, never assumed.

OpenVINO's CPU plugin lists what the processor offers (OPTIMIZATION_CAPABILITIES: "BF16"
with AMX or AVX512_BF16) and silently computes f32 where bf16 is asked for and absent; a
compiled model's INFERENCE_PRECISION_HINT tells what it settled on. The instruction sets
come from the CPU flags Linux reports. Exports, the engine and the bench all read them
here, so a manifest, a run.json and a bench row name the same facts.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


class PrecisionFallbackWarning(UserWarning):
    """This CPU computes an artifact in a lower precision than it asks for (bf16 -> f32)."""


# (vendor_id, cpu family, model) -> (generation slug, name). Vendor, family and model
# separate CPUs whose marketing name does not ("AMD EPYC" is every EPYC under KVM).
GENERATIONS: dict[tuple[str, int, int], tuple[str, str]] = {
    ("AuthenticAMD", 23, 1): ("zen1", "Zen Naples"),
    ("AuthenticAMD", 23, 49): ("zen2", "Zen 2 Rome"),
    ("AuthenticAMD", 25, 1): ("zen3", "Zen 3 Milan"),
    ("AuthenticAMD", 25, 33): ("zen3", "Zen 3 Vermeer"),
    ("AuthenticAMD", 25, 17): ("zen4", "Zen 4 Genoa"),
    ("AuthenticAMD", 25, 97): ("zen4", "Zen 4 Raphael"),
    ("AuthenticAMD", 25, 160): ("zen4c", "Zen 4c Bergamo"),
    ("AuthenticAMD", 26, 2): ("zen5", "Zen 5 Turin"),
    ("AuthenticAMD", 26, 17): ("zen5", "Zen 5 Turin"),
    ("GenuineIntel", 6, 85): ("skx", "Skylake-SP / Cascade Lake"),
    ("GenuineIntel", 6, 106): ("icx", "Ice Lake-SP"),
    ("GenuineIntel", 6, 143): ("spr", "Sapphire Rapids"),
    ("GenuineIntel", 6, 207): ("emr", "Emerald Rapids"),
    ("GenuineIntel", 6, 173): ("gnr", "Granite Rapids"),
    ("GenuineIntel", 6, 175): ("srf", "Sierra Forest"),
}
VENDORS = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}


@dataclass(frozen=True)
class CpuInfo:
    """This machine's CPU: its name, flags, and what OpenVINO says it can compute.

    `vendor`, `family` and `model_id` are /proc/cpuinfo's vendor_id, "cpu family" and
    "model": they name the generation where the marketing name is generic."""

    model: str
    flags: frozenset[str]
    ov_capabilities: tuple[str, ...]
    vendor: str = ""
    family: int | None = None
    model_id: int | None = None

    @property
    def has_bf16(self) -> bool:
        """Native bf16 matrix products (AMX or AVX512_BF16), as OpenVINO reports them."""
        return "BF16" in self.ov_capabilities

    @property
    def isa(self) -> dict[str, str]:
        """The instruction set each precision's matrix products run on here."""
        return isa_from_flags(self.flags)

    @property
    def generation(self) -> tuple[str, str]:
        """(slug, name) of the CPU generation, e.g. ("zen4", "Zen 4 Genoa"); unknown
        generations are named by family and model, e.g. ("f25m2", "family 25 model 2")."""
        known = GENERATIONS.get((self.vendor, self.family or -1, self.model_id or -1))
        if known:
            return known
        if self.family is None or self.model_id is None:
            return "", ""
        return f"f{self.family}m{self.model_id}", f"family {self.family} model {self.model_id}"

    @property
    def native(self) -> dict[str, bool]:
        """Which precisions this CPU computes natively: f32 always, bf16 where OpenVINO
        reports it (AMX, AVX512_BF16), int8 where OpenVINO has int8 kernels (VNNI and AMX
        at full speed, AVX2 through its slower u8 x s8 products)."""
        int8 = "INT8" in self.ov_capabilities or not self.ov_capabilities
        return {"f32": True, "bf16": self.has_bf16, "int8": int8}

    def machine_name(self, threads: int) -> str:
        """Folder-safe name that separates CPUs: vendor, brand, generation, the best
        native ISA and the threads used, e.g. ``amd-epyc-zen4-avx512bf16-2t``."""
        vendor = VENDORS.get(self.vendor, "")
        brand = re.sub(r"\((r|tm)\)|cpu|processor|@.*$", " ", self.model.lower())
        words = [w for w in re.split(r"[^a-z0-9]+", brand) if w and w not in (vendor, "")]
        brand_word = next((w for w in words if w in ("epyc", "xeon", "ryzen", "core")), "")
        parts = [vendor, brand_word or "-".join(words[:2]), self.generation[0], self.isa_slug]
        return "-".join(p for p in parts if p) + f"-{threads}t"

    @property
    def isa_slug(self) -> str:
        """The best matrix ISA in one word: amx, avx512bf16, avx512vnni, avx512, avx2, sse4."""
        isa = self.isa
        if isa["bf16"] == "AMX":
            return "amx"
        if isa["bf16"] == "AVX512_BF16":
            return "avx512bf16"
        if isa["int8"] == "AVX512_VNNI":
            return "avx512vnni"
        return {"AVX-512": "avx512", "AVX2": "avx2"}.get(isa["f32"], "sse4")

    def describe(self) -> dict[str, Any]:
        """JSON-ready: what manifests, run.json and bench results record."""
        slug, name = self.generation
        return {
            "model": self.model,
            "vendor": self.vendor,
            "family": self.family,
            "model_id": self.model_id,
            "generation": name or None,
            "generation_slug": slug or None,
            "isa": self.isa,
            "native": self.native,
            "openvino": list(self.ov_capabilities),
        }

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


def cpu_ids() -> tuple[str, int | None, int | None]:
    """(vendor_id, cpu family, model) of the first CPU in /proc/cpuinfo (Linux x86)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return "", None, None
    fields = {}
    for key in ("vendor_id", "cpu family", "model"):
        match = re.search(rf"^{key}\s*:\s*(\S+)", text, re.MULTILINE)
        fields[key] = match.group(1) if match else ""
    family, model = fields["cpu family"], fields["model"]
    return (
        fields["vendor_id"],
        int(family) if family.isdigit() else None,
        int(model) if model.isdigit() else None,
    )


def cpu_flags() -> set[str] | None:
    """The CPU feature flags of this machine (Linux), or None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else None


def core_count() -> int:
    """Cores this process may use (affinity-aware where the OS supports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_key() -> str:
    """This CPU and the cores this process may use, as measured choices are keyed."""
    return cpu_info().machine_name(core_count())


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CpuInfo (read once per process)."""
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    vendor, family, model_id = cpu_ids()
    flags = frozenset(cpu_flags() or ())
    return CpuInfo(cpu_model(), flags, tuple(capabilities), vendor, family, model_id)


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
