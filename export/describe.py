"""What the manifest records about an export: files, runtime hints, provenance."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from xdepth.export.load import LoadedModel
from xdepth.model.cards import Preprocess
from xdepth.model.manifest import FORMAT_VERSION, ArtifactFile, InputSpec, Manifest, OutputSpec
from xdepth.model.weights import weights_stamp

INPUT_NAME = "image"
OUTPUT_NAME = "inverse_depth"
_LIBRARIES = (
    "openvino",
    "nncf",
    "torch",
    "transformers",
    "numpy",
    "pillow",
    "opencv-python-headless",
    "xdepth",
)


def library_versions() -> dict[str, str]:
    """Installed versions of everything that shapes an artifact's numbers."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def model_key(loaded: LoadedModel) -> Hashable:
    """Identifies a loaded model's weights, so conversions and references can be reused."""
    card = loaded.card
    if loaded.random_init:
        return (card.name, str(card.path), "random-init")
    folder = Path(loaded.origin)
    stamp = tuple(tuple(entry) for entry in weights_stamp(folder))
    return (card.name, str(card.path), str(folder.resolve()), stamp)


@dataclasses.dataclass(frozen=True)
class Job:
    """One export: the model, its preprocessing at the static size, and what to make."""

    loaded: LoadedModel
    pre: Preprocess
    fmt: str
    flavour: str
    precision: str
    staging: Path
    per_image: bool = False  # the graph takes each image at its own preprocessed size

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.pre.height, self.pre.width

    @property
    def fixed_hw(self) -> tuple[int, int] | None:
        """The one size every image is resized to, or None for per-image sizes."""
        return None if self.per_image else self.input_hw


@dataclasses.dataclass
class Built:
    """What the format-specific step wrote, and what the manifest says about it."""

    files: list[ArtifactFile]
    runtime: dict[str, Any]
    weights_storage: dict[str, Any]
    calibration: dict[str, Any] | None = None
    export_info: dict[str, Any] = dataclasses.field(default_factory=dict)
    ov_model: Any = None  # the IR before saving, kept for the f32 weight-storage check


def build_manifest(job: Job, built: Built, fidelity: dict[str, Any]) -> Manifest:
    card, pre = job.loaded.card, job.pre
    return Manifest(
        directory=job.staging,
        format_version=FORMAT_VERSION,
        variant=card.name,
        source=card.source,
        weights={"origin": job.loaded.origin, "random_init": job.loaded.random_init},
        input=InputSpec(
            name=INPUT_NAME,
            height=pre.height,
            width=pre.width,
            layout="NHWC",
            dtype="u8",
            preprocessing_in_graph=True,
            resample=pre.resample,
            keep_aspect_ratio=pre.keep_aspect_ratio,
            ensure_multiple_of=pre.ensure_multiple_of,
            size="per_image" if job.per_image else "static",
        ),
        output=OutputSpec(
            name=OUTPUT_NAME,
            semantics=card.output,
            encoding="inverse_depth",
            shape=(1, -1, -1) if job.per_image else (1, pre.height, pre.width),
            dtype="f32",
        ),
        format=job.fmt,
        flavour=job.flavour,
        precision=job.precision,
        files=tuple(built.files),
        runtime=built.runtime,
        libraries=library_versions(),
        calibration=built.calibration,
        export=built.export_info,
        fidelity=fidelity,
        weights_storage=built.weights_storage,
    )
