"""The artifact formats: one registry that the exporter, the manifest and the engine share.

Each format names its flavours (the first is the default), the precisions it exports, the
backend class that runs it and the function that builds it, as import paths: nothing is
imported until an artifact of that format is opened or exported, so the engine installs
and runs without torch. A new format is a backend module, a build function and one entry
here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from xdepth.errors import XDepthError

# Most precise first: where two precisions are equally fast, the first one wins.
PRECISIONS = ("f32", "bf16", "int8")


@dataclass(frozen=True)
class Format:
    """One artifact format."""

    name: str
    flavours: tuple[str, ...]  # the first is the default
    precisions: tuple[str, ...]
    backend: str  # "module:Class" running it (xdepth.model.backends.Backend subclass)
    builder: str  # "module:function" exporting it (xdepth.export; needs torch)
    backend_options: tuple[str, ...]  # keyword options the backend takes

    def backend_class(self) -> type:
        return _load(self.backend)

    def build_function(self) -> Any:
        return _load(self.builder)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="openvino",
            flavours=("ir",),
            precisions=PRECISIONS,
            backend="xdepth.model.backends.openvino:OpenVINOBackend",
            builder="xdepth.export.build:build_openvino",
            backend_options=(
                "cache_dir",
                "use_cache",
                "hint",
                "streams",
                "threads",
                "inference_precision",
                "cpu_pinning",
                "device",
            ),
        ),
        Format(
            name="torch",
            flavours=("aoti", "ipex"),
            precisions=("f32", "bf16"),
            backend="xdepth.model.backends.torch_graph:TorchGraphBackend",
            builder="xdepth.export.build:build_torch",
            backend_options=("threads",),
        ),
    )
}


def get_format(name: str) -> Format:
    """The registered format `name`, or an XDepthError listing the formats."""
    if name not in FORMATS:
        raise XDepthError(f"format {name!r} is not one of {', '.join(FORMATS)}")
    return FORMATS[name]


def _load(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
