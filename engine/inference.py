"""The model behind one interface for the pipeline: host preparation, inference, upsampling.

Three kinds of backend:

- OpenVINO artifacts run asynchronously: an ``ov.AsyncInferQueue`` on the backend's compiled
  model keeps OPTIMAL_NUMBER_OF_INFER_REQUESTS requests in flight, one image per request,
  and hands each result to a callback, so decoding and post-processing overlap inference.
- Other artifacts (the PyTorch graph) run synchronously, in the pipeline's inference thread.
- Any object with ``predict(image_u8) -> depth at the image's size`` (the transformers
  reference) runs whole in the inference thread; its own upsampling is kept.

The split: `prepare` runs in reader threads (the host resize), `run`/`start` in the
inference stage, `finish` (bicubic upsampling to the image's size) in post workers.
"""

from __future__ import annotations

import hashlib
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from xdepth.hardware import PrecisionFallbackWarning, cpu_info
from xdepth.post.resize import resize_depth

Done = Callable[[Any, "np.ndarray | None", "BaseException | None"], None]


class PredictBackend(Protocol):
    """Anything that turns a uint8 RGB image into the model's depth at the image's size."""

    name: str

    def predict(self, image_u8: np.ndarray) -> np.ndarray: ...


@dataclass
class BusyClock:
    """Seconds during which at least one inference was running (for model-only images/s)."""

    seconds: float = 0.0
    _running: int = 0
    _since: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self) -> None:
        with self._lock:
            if self._running == 0:
                self._since = time.perf_counter()
            self._running += 1

    def end(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                self.seconds += time.perf_counter() - self._since


class Inference:
    """Synchronous inference; asynchronous subclasses add `set_callback` and `start`.

    Callers check `asynchronous` before using those two, so the synchronous class has none.
    """

    asynchronous = False
    requests = 1

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name = str(getattr(backend, "name", type(backend).__name__))
        manifest = getattr(backend, "manifest", None)
        self.manifest = manifest
        self.semantics = (
            manifest.output.semantics
            if manifest is not None
            else getattr(getattr(backend, "card", None), "output", "relative_inverse_depth")
        )
        # Artifact backends split host resize / graph / upsample; others predict whole.
        self.split = manifest is not None and hasattr(backend, "infer_u8")
        self.clock = BusyClock()
        if manifest is not None and backend.fallback:
            warnings.warn(backend.fallback, PrecisionFallbackWarning, stacklevel=3)

    def precision(self) -> dict[str, Any]:
        """Asked-for and computed precision on this CPU (what run.json records)."""
        m = self.manifest
        if m is None:  # the transformers reference: fp32 eager
            record = {"requested": "f32", "effective": "f32", "float_layers": "f32"}
            return record | {"fallback": None, "cpu": cpu_info().summary()}
        return {
            "requested": m.precision,
            "effective": self.backend.effective_precision,
            "float_layers": self.backend.float_precision,
            "fallback": self.backend.fallback,
            "cpu": cpu_info().summary(),
        }

    @property
    def label(self) -> str:
        """Which model this is, for summaries: variant, format, precision, random weights."""
        m = self.manifest
        if m is not None:
            weights = " (random-init)" if m.random_init else ""
            return f"{m.variant} {m.format} {m.precision}{weights}"
        return str(getattr(self.backend, "label", self.name))

    def prepare(self, image_u8: np.ndarray) -> np.ndarray:
        """Reader-thread work: the host resize to the model's input (artifacts only)."""
        return self.backend.resize(image_u8) if self.split else image_u8

    def run(self, model_input: np.ndarray) -> np.ndarray:
        """Inference on one prepared image, in the calling thread."""
        self.clock.begin()
        try:
            if self.split:
                return self.backend.infer_u8(model_input[None])[0]
            return np.asarray(self.backend.predict(model_input), dtype=np.float32)
        finally:
            self.clock.end()

    def finish(self, depth: np.ndarray, image_hw: tuple[int, int], mode: str) -> np.ndarray:
        """Post-worker work: model-resolution depth -> the image's size (bicubic)."""
        if depth.shape == tuple(image_hw):
            return depth
        return resize_depth(depth, image_hw[0], image_hw[1], mode=mode)  # type: ignore[arg-type]

    def identity(self) -> dict[str, Any]:
        """What identifies the model's numbers (goes into a job's settings hash)."""
        backend = self.backend
        if self.manifest is not None:
            m = self.manifest
            found = {
                "kind": "artifact",
                "manifest_sha256": _sha256(m.manifest_path),
                "variant": m.variant,
                "format": m.format,
                "precision": m.precision,
                "random_init": m.random_init,
            }
            if hasattr(backend, "inference_precision"):  # OpenVINO's effective compute type
                found["inference_precision"] = str(backend.inference_precision)
            return found
        loaded = getattr(backend, "loaded", None)
        if loaded is not None:  # the transformers reference
            return {
                "kind": "reference",
                "variant": loaded.card.name,
                "card_sha256": _sha256(loaded.card.path) if loaded.card.path else "",
                "weights": loaded.origin,
                "weights_files": _stamp(loaded.origin) if not loaded.random_init else [],
                "random_init": loaded.random_init,
            }
        describe = getattr(backend, "identity", None)
        if callable(describe):
            return dict(describe())
        return {"kind": "object", "backend": self.name, "label": self.label}

    def wait_all(self) -> None:
        """Nothing is ever in flight for a synchronous backend."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _stamp(folder: str) -> list[list[Any]]:
    """(name, bytes, mtime_ns) of a weights folder's files: cheap, and changes with them."""
    directory = Path(folder)
    if not directory.is_dir():
        return []
    return [
        [p.name, p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(directory.iterdir())
        if p.is_file()
    ]


class OpenVINOInference(Inference):
    """The OpenVINO backend's compiled model behind an AsyncInferQueue."""

    asynchronous = True

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        import openvino as ov

        self.requests = int(backend.optimal_requests)
        self.queue = ov.AsyncInferQueue(backend.compiled, self.requests)
        self.in_graph = bool(backend.manifest.input.preprocessing_in_graph)
        self._done: Done | None = None
        self.queue.set_callback(self._callback)

    def prepare(self, image_u8: np.ndarray) -> np.ndarray:
        resized = self.backend.resize(image_u8)
        if self.in_graph:
            return np.ascontiguousarray(resized[None])
        from xdepth.preprocess import normalize

        return normalize(resized, self.backend.preprocess)

    def run(self, model_input: np.ndarray) -> np.ndarray:
        """One synchronous request (used outside the pipeline)."""
        request = self.backend.compiled.create_infer_request()
        request.infer({0: model_input})
        return request.get_output_tensor(0).data[0].astype(np.float32, copy=True)

    def set_callback(self, done: Done) -> None:
        self._done = done

    def start(self, model_input: np.ndarray, userdata: Any) -> None:
        """Queue one image (its input is copied); blocks, GIL released, until a request is idle."""
        self.queue.get_idle_request_id()
        self.clock.begin()
        self.queue.start_async({0: model_input}, userdata=userdata)

    def _callback(self, request: Any, userdata: Any) -> None:
        self.clock.end()
        depth, error = None, None
        try:
            depth = request.get_output_tensor(0).data[0].astype(np.float32, copy=True)
        except Exception as exc:  # reported on the image; the callback must not raise
            error = exc
        if self._done is not None:
            self._done(userdata, depth, error)

    def wait_all(self) -> None:
        self.queue.wait_all()


def make_inference(backend: Any) -> Inference:
    """The pipeline's view of a backend: asynchronous for OpenVINO, synchronous otherwise."""
    if isinstance(backend, Inference):
        return backend
    if getattr(backend, "format", "") == "openvino" and hasattr(backend, "compiled"):
        return OpenVINOInference(backend)
    if not callable(getattr(backend, "predict", None)):
        raise TypeError(
            f"{type(backend).__name__} is not a backend: it needs predict(image_u8) -> depth"
        )
    return Inference(backend)
