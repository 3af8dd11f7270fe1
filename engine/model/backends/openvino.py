"""OpenVINO runtime for IR artifacts (f32, bf16, int8), with a persistent compile cache.

Compiled-model cache
--------------------
Compiling an IR for the CPU (graph transformations, kernel selection, weight repacking)
takes seconds for a large model. OpenVINO can store the compiled result and load it on the
next compile of the same artifact with the same options, which is much faster. The cache
lives in, by priority: the `cache_dir` argument, the ``XDEPTH_CACHE`` environment variable,
``~/.cache/xdepth/ov-cache``. Inside it, each artifact gets a folder named after the
sha256 of its files (from the manifest), holding one ``.blob`` per device and compile
options. OpenVINO keys blobs of a model compiled from a path on the path and the file's
modification time, so an artifact re-exported into the same folder within the same second
would otherwise be served the old blob; naming folders by content rules that out. Nothing
else writes there. Clear it by deleting the folder (``rm -rf ~/.cache/xdepth/ov-cache``, or
the folder ``XDEPTH_CACHE`` names); it is refilled on the next compile. ``use_cache=False``
compiles without reading or writing it.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from xdepth.errors import XDepthError, whole_number
from xdepth.model.backends.base import ArtifactBackend
from xdepth.model.backends.interface import Done
from xdepth.model.hardware import effective_precision, fallback_note
from xdepth.model.manifest import ArtifactError, Manifest
from xdepth.paths import compile_cache_dir

HINTS = ("THROUGHPUT", "LATENCY", "CUMULATIVE_THROUGHPUT")
INFERENCE_PRECISIONS = ("f32", "bf16", "f16")


def artifact_key(manifest: Manifest) -> str:
    """A folder name that changes whenever any file of the artifact changes."""
    digest = hashlib.sha256()
    for entry in sorted(manifest.files, key=lambda f: f.name):
        digest.update(f"{entry.name}\0{entry.sha256}\0".encode())
    return f"{manifest.variant}-{manifest.precision}-{digest.hexdigest()[:20]}"


class OpenVINOBackend(ArtifactBackend):
    """An IR artifact compiled for one device; `core` and `compiled` stay open for reuse.

    Options override the manifest's runtime hints: `hint` is OpenVINO's performance mode,
    `streams` and `threads` pin NUM_STREAMS and INFERENCE_NUM_THREADS, and
    `inference_precision` (f32, bf16) replaces the precision the artifact was measured with.
    `cpu_pinning` sets ENABLE_CPU_PINNING: OpenVINO pins stream threads to the first CPUs
    the process may use, so processes sharing CPUs must turn it off or collide on them.
    The f32 hint is always set explicitly: on CPUs with bf16 support OpenVINO otherwise
    computes in bf16. Compile properties the exporter recorded in the manifest
    (runtime.ov_properties) are applied first.
    """

    format = "openvino"
    asynchronous = True

    def __init__(
        self,
        artifact_dir: str | Path | Manifest,
        *,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        hint: str | None = None,
        streams: int | str | None = None,
        threads: int | None = None,
        inference_precision: str | None = None,
        cpu_pinning: bool | None = None,
        device: str = "CPU",
        check_sha256: bool = True,
    ) -> None:
        super().__init__(artifact_dir, check_sha256)
        runtime = self.manifest.runtime
        self.hint = _choice(hint or runtime.get("performance_hint", "THROUGHPUT"), HINTS, "hint")
        precision = inference_precision or runtime.get("inference_precision") or "f32"
        self.precision_hint = _choice(precision, INFERENCE_PRECISIONS, "inference_precision")
        self.device = device
        root = Path(cache_dir) if cache_dir is not None else compile_cache_dir()
        self.cache_dir = root / artifact_key(self.manifest) if use_cache else None
        self.core = ov.Core()
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            self.core.set_property({"CACHE_DIR": str(self.cache_dir)})
        self.config = _manifest_properties(self.manifest) | _compile_config(
            self.hint, self.precision_hint, streams, threads
        )
        if cpu_pinning is not None:
            self.config["ENABLE_CPU_PINNING"] = bool(cpu_pinning)
        start = time.perf_counter()
        # Compiling from the path (not a read ov.Model) lets a cache hit skip reading the IR.
        self.compiled = self.core.compile_model(str(self.manifest.model_file), device, self.config)
        self.compile_seconds = time.perf_counter() - start
        self.request = self.compiled.create_infer_request()
        self.optimal_requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        # What this CPU computes, which can be less than asked (bf16 without AMX/AVX512_BF16).
        self.inference_precision = _text(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.float_precision = self.inference_precision
        self.effective_precision = effective_precision(
            self.manifest.precision, self.inference_precision
        )
        self.fallback = fallback_note(
            self.manifest.precision, self.inference_precision, self.precision_hint
        )
        self.requests = self.optimal_requests
        # One queue serves the pipeline (`start`) and batches (`_run`): each request carries
        # where its result goes.
        self.queue = ov.AsyncInferQueue(self.compiled, self.requests)
        self.queue.set_callback(self._callback)

    def properties(self) -> dict[str, str]:
        """The compiled model's effective settings (streams, threads, precision, hint)."""
        keys = (
            "PERFORMANCE_HINT",
            "NUM_STREAMS",
            "INFERENCE_NUM_THREADS",
            "INFERENCE_PRECISION_HINT",
            "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
        )
        return {key: _text(self.compiled.get_property(key)) for key in keys}

    def _run(self, model_input: np.ndarray) -> np.ndarray:
        if len(model_input) == 1:
            self.request.infer({0: model_input})
            return self.request.get_output_tensor(0).data.astype(np.float32, copy=True)
        # One request per image over the queue, so every stream works on a batch.
        results: list[np.ndarray | None] = [None] * len(model_input)
        errors: list[BaseException] = []

        def store(index: int, depth: np.ndarray | None, error: BaseException | None) -> None:
            results[index] = depth
            if error is not None:
                errors.append(error)

        for index in range(len(model_input)):
            self._submit(model_input[index : index + 1], store, index)
        self.queue.wait_all()
        if errors:
            raise errors[0]
        return np.stack(results)  # type: ignore[arg-type]

    def start(self, model_input: np.ndarray, userdata: Any) -> None:
        """Queue one input (copied); blocks, GIL released, until a request is idle."""
        self._submit(model_input, self._done, userdata)

    def _submit(self, model_input: np.ndarray, done: Done | None, userdata: Any) -> None:
        self.queue.get_idle_request_id()
        self.clock.begin()
        self.queue.start_async({0: model_input}, userdata=(done, userdata))

    def _callback(self, request: ov.InferRequest, userdata: tuple[Done | None, Any]) -> None:
        self.clock.end()
        done, payload = userdata
        depth, error = None, None
        try:
            depth = request.get_output_tensor(0).data[0].astype(np.float32, copy=True)
        except Exception as exc:  # reported on the image; the callback must not raise
            error = exc
        if done is not None:
            done(payload, depth, error)

    def wait_all(self) -> None:
        self.queue.wait_all()

    def identity(self) -> dict[str, Any]:
        # The compute type this CPU settled on changes the numbers, so it is part of them.
        return super().identity() | {"inference_precision": self.inference_precision}


def _text(value: Any) -> str:
    """A property value as text ('f32', not "<Type: 'float32'>")."""
    return value.to_string() if isinstance(value, ov.Type) else str(value)


def _choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise XDepthError(f"{name} {value!r} is not one of {', '.join(choices)}")
    return value


def _manifest_properties(manifest: Manifest) -> dict[str, str]:
    """Extra compile properties the exporter found necessary (e.g. snippets off), as given."""
    props = manifest.runtime.get("ov_properties") or {}
    if not isinstance(props, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in props.items()
    ):
        raise ArtifactError(
            f"{manifest.manifest_path}: runtime.ov_properties must map property names to "
            f"string values, got {props!r}"
        )
    return dict(props)


def _compile_config(
    hint: str, precision: str, streams: int | str | None, threads: int | None
) -> dict[str, Any]:
    config: dict[str, Any] = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": precision}
    if streams is not None:
        if not (streams == "AUTO" or (isinstance(streams, int) and streams > 0)):
            raise XDepthError(f"streams must be a positive integer or 'AUTO', got {streams!r}")
        config["NUM_STREAMS"] = str(streams)
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = whole_number(threads, "threads")
    return config
