"""The artifact contract: a folder of model files plus `manifest.json`, read without torch.

The exporter (xdepth.export) writes the folder; the engine reads only this manifest and the
files it lists. Every file is checked before use (present, full size, sha256), so a copy
cut short by a full disk or an interrupted transfer fails here, naming the file, instead of
deep inside a runtime with an opaque message.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from xdepth.errors import XDepthError
from xdepth.model.cards import Preprocess
from xdepth.model.formats import FORMATS, PRECISIONS

# Version 2 adds `input.size` ("static" or "per_image"); version 1 artifacts are static.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
SEMANTICS = ("relative_inverse_depth", "metric_depth_m")
SIZES = ("static", "per_image")
# fmt: off
_REQUIRED = (
    "format_version", "variant", "source", "weights", "input", "output", "format", "flavour",
    "precision", "files", "runtime", "libraries", "export", "fidelity",
)
# fmt: on


class ArtifactError(XDepthError):
    """An artifact folder cannot be used; the message names the file and the problem."""


class ManifestError(ArtifactError, ValueError):
    """manifest.json is missing, not JSON, or lacks or mistypes a field."""


class UnsupportedFormatVersion(ManifestError):
    """The manifest was written for a format version this xdepth does not read."""


class ArtifactFileError(ArtifactError, ValueError):
    """A model file listed in the manifest is missing, truncated or altered."""


@dataclass(frozen=True)
class ArtifactFile:
    """One file of the artifact: its name inside the folder, size and sha256."""

    name: str
    bytes: int
    sha256: str
    role: str  # "model" (what the runtime opens) or "data" (read by the runtime via the model)


@dataclass(frozen=True)
class InputSpec:
    """What the compiled model takes, and the host-side resize that comes before it.

    `size` "static": every image is resized to height x width. "per_image": the graph takes
    any size (multiples of `ensure_multiple_of`) and each image goes in at the size the
    card's preprocessing gives it (aspect kept around height x width), as the reference does.
    """

    name: str
    height: int
    width: int
    layout: str  # "NHWC" (u8, preprocessing in graph) or "NCHW" (f32, normalised on the host)
    dtype: str  # "u8" or "f32"
    preprocessing_in_graph: bool
    resample: str
    keep_aspect_ratio: bool
    ensure_multiple_of: int
    rescale_factor: float | None = None  # only when not in graph
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    size: str = "static"

    @property
    def hw(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def per_image(self) -> bool:
        return self.size == "per_image"

    def preprocess(self) -> Preprocess:
        """The host-side preprocessing as the shared Preprocess record (for resize/normalise)."""
        extra: dict[str, Any] = {}
        if not self.preprocessing_in_graph:
            extra = {"rescale_factor": self.rescale_factor, "mean": self.mean, "std": self.std}
        return Preprocess(
            height=self.height,
            width=self.width,
            keep_aspect_ratio=self.keep_aspect_ratio,
            ensure_multiple_of=self.ensure_multiple_of,
            resample=self.resample,
            **extra,
        )


@dataclass(frozen=True)
class OutputSpec:
    """The model output: inverse depth at model resolution (relative, or 1/m for metric)."""

    name: str
    semantics: str
    encoding: str  # "inverse_depth": depth = 1 / value (in metres when semantics is metric)
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest.json; `directory` is where its files live."""

    directory: Path
    format_version: int
    variant: str
    source: str
    weights: dict[str, Any]
    input: InputSpec
    output: OutputSpec
    format: str
    flavour: str
    precision: str
    files: tuple[ArtifactFile, ...]
    runtime: dict[str, Any]
    libraries: dict[str, str]
    calibration: dict[str, Any] | None
    export: dict[str, Any]
    fidelity: dict[str, Any]
    weights_storage: dict[str, Any] | None = None

    @property
    def random_init(self) -> bool:
        return bool(self.weights.get("random_init"))

    @property
    def model_file(self) -> Path:
        """The file the runtime opens (the .xml of an IR, the .pt2 package)."""
        return self.directory / next(f.name for f in self.files if f.role == "model")

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_NAME

    def to_dict(self) -> dict[str, Any]:
        """The JSON object this manifest was read from (or will be written as)."""
        inp = self.input
        input_d: dict[str, Any] = {
            "name": inp.name,
            "height": inp.height,
            "width": inp.width,
            "layout": inp.layout,
            "dtype": inp.dtype,
            "preprocessing_in_graph": inp.preprocessing_in_graph,
            "resample": inp.resample,
            "keep_aspect_ratio": inp.keep_aspect_ratio,
            "ensure_multiple_of": inp.ensure_multiple_of,
            "size": inp.size,
        }
        if not inp.preprocessing_in_graph:
            input_d |= {
                "rescale_factor": inp.rescale_factor,
                "mean": list(inp.mean or ()),
                "std": list(inp.std or ()),
            }
        out = self.output
        data = {
            "format_version": self.format_version,
            "variant": self.variant,
            "source": self.source,
            "weights": copy.deepcopy(self.weights),
            "input": input_d,
            "output": {
                "name": out.name,
                "semantics": out.semantics,
                "encoding": out.encoding,
                "shape": list(out.shape),
                "dtype": out.dtype,
            },
            "format": self.format,
            "flavour": self.flavour,
            "precision": self.precision,
            "files": [
                {"name": f.name, "bytes": f.bytes, "sha256": f.sha256, "role": f.role}
                for f in self.files
            ],
            "runtime": copy.deepcopy(self.runtime),
            "libraries": dict(self.libraries),
            "calibration": copy.deepcopy(self.calibration),
            "export": copy.deepcopy(self.export),
            "fidelity": copy.deepcopy(self.fidelity),
        }
        if self.weights_storage is not None:
            data["weights_storage"] = copy.deepcopy(self.weights_storage)
        return data


class _Fields:
    """Typed access to one JSON object; errors name the manifest and the dotted key."""

    def __init__(self, data: Any, where: str, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: {prefix or 'the manifest'} must be a JSON object")
        self.data, self.where, self.prefix = data, where, prefix

    def get(self, key: str, kinds: type | tuple[type, ...], choices: tuple = ()) -> Any:
        dotted = f"{self.prefix}{key}"
        if key not in self.data:
            raise ManifestError(f"{self.where}: required field {dotted!r} is missing")
        value = self.data[key]
        # bool is an int in Python; a field typed int must not accept true/false.
        wrong_bool = isinstance(value, bool) and bool not in _as_tuple(kinds)
        if wrong_bool or not isinstance(value, kinds):
            raise ManifestError(f"{self.where}: field {dotted!r} has the wrong type ({value!r})")
        if choices and value not in choices:
            raise ManifestError(
                f"{self.where}: field {dotted!r} is {value!r}, not one of {choices}"
            )
        return value

    def sub(self, key: str) -> _Fields:
        return _Fields(self.get(key, dict), self.where, f"{self.prefix}{key}.")


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _triple(fields: _Fields, key: str) -> tuple[float, float, float]:
    value = fields.get(key, list)
    if len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise ManifestError(f"{fields.where}: field 'input.{key}' must be three numbers")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def _file_name(name: str, where: str) -> str:
    """A listed file must stay inside the artifact folder."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name:
        raise ManifestError(f"{where}: file name {name!r} must be a plain path inside the folder")
    return name


def _input_spec(top: _Fields, version: int) -> InputSpec:
    inp = top.sub("input")
    in_graph = inp.get("preprocessing_in_graph", bool)
    spec = InputSpec(
        name=inp.get("name", str),
        height=inp.get("height", int),
        width=inp.get("width", int),
        layout=inp.get("layout", str, ("NHWC",) if in_graph else ("NCHW",)),
        dtype=inp.get("dtype", str, ("u8",) if in_graph else ("f32",)),
        preprocessing_in_graph=in_graph,
        resample=inp.get("resample", str, ("nearest", "bilinear", "bicubic", "lanczos")),
        keep_aspect_ratio=inp.get("keep_aspect_ratio", bool),
        ensure_multiple_of=inp.get("ensure_multiple_of", int),
        rescale_factor=None if in_graph else float(inp.get("rescale_factor", (int, float))),
        mean=None if in_graph else _triple(inp, "mean"),
        std=None if in_graph else _triple(inp, "std"),
        size=inp.get("size", str, SIZES) if version >= 2 else "static",
    )
    if spec.height <= 0 or spec.width <= 0:
        raise ManifestError(f"{top.where}: input size {spec.height}x{spec.width} invalid")
    return spec


def _output_spec(top: _Fields) -> OutputSpec:
    out = top.sub("output")
    shape = out.get("shape", list)
    if not shape or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape):
        raise ManifestError(f"{top.where}: field 'output.shape' must be a list of integers")
    return OutputSpec(
        name=out.get("name", str),
        semantics=out.get("semantics", str, SEMANTICS),
        encoding=out.get("encoding", str, ("inverse_depth",)),
        shape=tuple(shape),
        dtype=out.get("dtype", str, ("f32",)),
    )


def _files(top: _Fields) -> tuple[ArtifactFile, ...]:
    where = top.where
    files = []
    for i, entry in enumerate(top.get("files", list)):
        f = _Fields(entry, where, f"files[{i}].")
        name = _file_name(f.get("name", str), where)
        role = f.get("role", str, ("model", "data"))
        files.append(ArtifactFile(name, f.get("bytes", int), f.get("sha256", str), role))
    if sum(f.role == "model" for f in files) != 1:
        raise ManifestError(f"{where}: 'files' must list exactly one file with role 'model'")
    return tuple(files)


def _optional_object(data: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, dict):
        raise ManifestError(f"{where}: field {key!r} must be an object or null")
    return value


def parse_manifest(data: Any, directory: Path, where: str | None = None) -> Manifest:
    """Validate a manifest's JSON object (does not touch the model files)."""
    where = where or str(directory / MANIFEST_NAME)
    top = _Fields(data, where)
    version = top.get("format_version", int)
    if version not in READABLE_VERSIONS:
        raise UnsupportedFormatVersion(
            f"{where}: format_version {version} is not supported (this xdepth reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}); re-export the artifact with this "
            "xdepth, or use the xdepth release that wrote it"
        )
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ManifestError(f"{where}: required fields missing: {', '.join(missing)}")
    fmt = top.get("format", str, tuple(FORMATS))
    weights = top.get("weights", dict)
    _Fields(weights, where, "weights.").get("random_init", bool)
    _Fields(weights, where, "weights.").get("origin", str)
    return Manifest(
        directory=directory,
        format_version=version,
        variant=top.get("variant", str),
        source=top.get("source", str),
        weights=weights,
        input=_input_spec(top, version),
        output=_output_spec(top),
        format=fmt,
        flavour=top.get("flavour", str, FORMATS[fmt].flavours),
        precision=top.get("precision", str, PRECISIONS),
        files=_files(top),
        runtime=top.get("runtime", dict),
        libraries=top.get("libraries", dict),
        calibration=_optional_object(data, "calibration", where),
        export=top.get("export", dict),
        fidelity=top.get("fidelity", dict),
        weights_storage=_optional_object(data, "weights_storage", where),
    )


def sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def file_record(directory: Path, name: str, role: str) -> ArtifactFile:
    """Describe a file already written into the artifact folder (used by the exporter)."""
    path = Path(directory) / name
    return ArtifactFile(name, path.stat().st_size, sha256_file(path), role)


def verify_files(manifest: Manifest, check_sha256: bool = True) -> None:
    """Every listed file is present, full size and (optionally) has the listed sha256."""
    for entry in manifest.files:
        path = manifest.directory / entry.name
        if not path.is_file():
            raise ArtifactFileError(
                f"{path}: missing (listed in {manifest.manifest_path}); the artifact folder is "
                "incomplete: copy it again or re-export"
            )
        size = path.stat().st_size
        if size != entry.bytes:
            problem = "truncated" if size < entry.bytes else "larger than listed"
            raise ArtifactFileError(
                f"{path}: {problem}: {size} bytes, the manifest lists {entry.bytes}; "
                "copy the artifact again or re-export"
            )
        if check_sha256:
            actual = sha256_file(path)
            if actual != entry.sha256:
                raise ArtifactFileError(
                    f"{path}: sha256 mismatch: the file has {actual}, the manifest lists "
                    f"{entry.sha256}; the file was altered or corrupted: copy again or re-export"
                )


def load_manifest(directory: str | Path, check_sha256: bool = True) -> Manifest:
    """Read, validate and check an artifact folder; raises an ArtifactError naming the problem.

    `check_sha256=False` skips hashing (sizes are still checked), for repeated loads of a
    large artifact that was verified once.
    """
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise ManifestError(f"{directory}: not an artifact folder (no such directory)")
    if not path.is_file():
        raise ManifestError(
            f"{path}: missing; {directory} is not an artifact folder (make one with "
            "`xdepth export VARIANT -o DIR`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    manifest = parse_manifest(data, directory, str(path))
    verify_files(manifest, check_sha256)
    return manifest


def write_manifest(manifest: Manifest) -> Path:
    """Write manifest.json after checking it parses back to the same manifest."""
    data = manifest.to_dict()
    if parse_manifest(data, manifest.directory) != manifest:
        raise ManifestError(f"{manifest.manifest_path}: manifest does not round-trip")
    path = manifest.manifest_path
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
