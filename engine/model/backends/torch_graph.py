"""PyTorch graph artifacts: an AOTInductor `.pt2` package (or an IPEX TorchScript file).

The package holds compiled CPU code and frozen weights, so loading it runs no compiler.
torch is imported only when such an artifact is opened: the rest of the engine runs
without it. The compiled code is tied to the torch release and the CPU instruction set it
was built for; both are checked here so a mismatch is a clear error, not a crash.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from xdepth.errors import whole_number
from xdepth.model.backends.base import ArtifactBackend, BackendUnavailable
from xdepth.model.hardware import cpu_flags
from xdepth.model.manifest import Manifest

# Compiler flags AOTInductor records -> the CPU feature names Linux reports.
_FLAG_TO_CPUINFO = {
    "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16",
    "avx512fp16": "avx512_fp16",
    "amx-tile": "amx_tile",
    "amx-bf16": "amx_bf16",
    "amx-int8": "amx_int8",
    "avxvnni": "avx_vnni",
}


def _import_torch(manifest: Manifest) -> ModuleType:
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable(
            f"{manifest.manifest_path}: this is a torch-graph artifact and needs torch "
            f"{manifest.libraries.get('torch', '')}, which is not importable ({exc}); install "
            "xdepth[export], or export an OpenVINO artifact (--format openvino), which runs "
            "without torch"
        ) from None
    exported = _release(manifest.libraries.get("torch", ""))
    if exported != _release(torch.__version__):
        raise BackendUnavailable(
            f"{manifest.manifest_path}: exported with torch {exported}, but torch "
            f"{_release(torch.__version__)} is installed; compiled packages load only in the "
            f"release that built them: install torch=={exported} or re-export"
        )
    return torch


def _release(version: str) -> str:
    return version.split("+")[0]


def missing_cpu_features(compile_flags: str, available: set[str]) -> list[str]:
    """Features the compile flags (e.g. '-mavx512f -mfma') need that `available` lacks."""
    needed = []
    for token in compile_flags.split():
        if token.startswith("-m") and "=" not in token:
            feature = token[2:]
            needed.append(_FLAG_TO_CPUINFO.get(feature, feature.replace("-", "_")))
    return sorted({f for f in needed if f not in available})


class TorchGraphBackend(ArtifactBackend):
    """Runs a torch-graph artifact; the graph takes uint8 NHWC and does its own normalising."""

    format = "torch"

    def __init__(
        self,
        artifact_dir: str | Path | Manifest,
        *,
        threads: int | None = None,
        check_sha256: bool = True,
    ) -> None:
        super().__init__(artifact_dir, check_sha256)
        self.torch = _import_torch(self.manifest)
        flags = str(self.manifest.runtime.get("compile_flags", ""))
        available = cpu_flags()
        if available is not None and (missing := missing_cpu_features(flags, available)):
            raise BackendUnavailable(
                f"{self.manifest.model_file}: compiled for CPU features this machine lacks "
                f"({', '.join(missing)}); re-export on a machine like this one, or use an "
                "OpenVINO artifact (it selects kernels at load time)"
            )
        if threads is not None:
            self.torch.set_num_threads(whole_number(threads, "threads", error=ValueError))
        path = str(self.manifest.model_file)
        if self.manifest.flavour == "aoti":
            self.runner = self.torch._inductor.aoti_load_package(path)
        else:
            _import_ipex(self.manifest)
            self.runner = self.torch.jit.load(path)

    def _run(self, model_input: np.ndarray) -> np.ndarray:
        torch = self.torch
        outputs = []
        with torch.inference_mode():
            for index in range(len(model_input)):  # the graph's batch is static at 1
                # A copy: resized images can be read-only views, which torch will not wrap.
                x = torch.from_numpy(np.array(model_input[index : index + 1]))
                outputs.append(self.runner(x).float().numpy())
        return np.concatenate(outputs).astype(np.float32, copy=False)


def _import_ipex(manifest: Manifest) -> ModuleType:
    """IPEX registers the custom ops its TorchScript files call; it must load first."""
    if "intel_extension_for_pytorch" in sys.modules:
        return sys.modules["intel_extension_for_pytorch"]
    try:
        import intel_extension_for_pytorch as ipex
    except ImportError as exc:
        raise BackendUnavailable(
            f"{manifest.manifest_path}: an IPEX artifact needs intel_extension_for_pytorch "
            f"{manifest.libraries.get('intel_extension_for_pytorch', '')}, which is not "
            f"importable ({exc})"
        ) from None
    return ipex
