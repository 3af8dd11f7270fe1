"""Runtimes for exported artifacts; `open_artifact` picks one from the manifest.

Importing this package loads neither openvino nor torch: each backend module imports its
runtime, and only the one an artifact needs is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xdepth.artifact import Manifest, load_manifest
from xdepth.backends.base import ArtifactBackend, BackendUnavailable
from xdepth.backends.interface import Backend, BusyClock, as_backend
from xdepth.errors import XDepthError

__all__ = [
    "ArtifactBackend",
    "Backend",
    "BackendUnavailable",
    "BusyClock",
    "as_backend",
    "open_artifact",
]


def open_artifact(artifact_dir: str | Path, **options: Any) -> ArtifactBackend:
    """The backend for an artifact folder, after checking its manifest and files.

    Options go to the backend: OpenVINO takes cache_dir, use_cache, hint, streams, threads,
    inference_precision, cpu_pinning and device; the torch graph takes threads. `check_sha256=False`
    skips hashing the files (their sizes are still checked).
    """
    manifest: Manifest = load_manifest(artifact_dir, options.pop("check_sha256", True))
    if manifest.format == "openvino":
        from xdepth.backends.openvino import OpenVINOBackend

        return OpenVINOBackend(manifest, **options)
    from xdepth.backends.torch_graph import TorchGraphBackend

    unknown = set(options) - {"threads"}
    if unknown:
        raise XDepthError(
            f"{manifest.manifest_path}: option(s) {', '.join(sorted(unknown))} do not apply to "
            "a torch-graph artifact (it takes: threads)"
        )
    return TorchGraphBackend(manifest, **options)
