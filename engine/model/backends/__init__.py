"""Runtimes for exported artifacts; `open_artifact` picks one from the manifest.

Importing this package loads neither openvino nor torch: each backend module imports its
runtime, and only the one an artifact needs is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xdepth.errors import XDepthError
from xdepth.model.backends.base import ArtifactBackend, BackendUnavailable
from xdepth.model.backends.interface import Backend, BusyClock, as_backend
from xdepth.model.formats import get_format
from xdepth.model.manifest import Manifest, load_manifest

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

    The manifest's format picks the backend class (xdepth.model.formats); options go to it
    (OpenVINO: cache_dir, use_cache, hint, streams, threads, inference_precision,
    cpu_pinning, device; the torch graph: threads). `check_sha256=False` skips hashing the
    files (their sizes are still checked).
    """
    check_sha256 = options.pop("check_sha256", True)
    manifest: Manifest = load_manifest(artifact_dir, check_sha256)
    spec = get_format(manifest.format)
    unknown = set(options) - set(spec.backend_options)
    if unknown:
        raise XDepthError(
            f"{manifest.manifest_path}: option(s) {', '.join(sorted(unknown))} do not apply to "
            f"a {spec.name} artifact (it takes: {', '.join(spec.backend_options)})"
        )
    return spec.backend_class()(manifest, **options)
