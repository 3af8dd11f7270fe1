"""The one interface every backend implements, and the pipeline, the API and the bench use.

The pipeline splits an image's trip through the model into three steps, each in the
threads that suit it:

- `prepare` (reader threads): the host work before the graph, e.g. the Pillow resize to
  the model's input size the model's image processor does;
- `run` (the inference thread), or `start` with a callback for an asynchronous backend
  (`asynchronous`, `requests` in flight at once), then `wait_all`;
- `finish` (post workers): model-resolution depth -> the image's size (bicubic).

A new backend is one module that subclasses `Backend` (see xdepth.model.backends.base for the
artifact backends, xdepth.export.reference for the transformers reference) plus one line
in xdepth.model.formats when it runs an artifact format.
"""

from __future__ import annotations

import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xdepth.model.hardware import PrecisionFallbackWarning, cpu_info
from xdepth.post.resize import resize_depth

Done = Callable[[Any, "np.ndarray | None", "BaseException | None"], None]


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


class Backend(ABC):
    """A model the engine can drive. Subclasses set the attributes and implement
    `prepare`, `_infer` and `identity`; asynchronous ones also `start` and `wait_all`."""

    name: str = ""  # short id: "openvino-int8", "reference"
    label: str = ""  # for summaries: variant, format, precision, random weights
    semantics: str = "relative_inverse_depth"  # or "metric_depth_m" (depth in 1/m)
    asynchronous: bool = False
    requests: int = 1  # inferences in flight at once
    requested_precision: str = "f32"  # what the model asks to compute in
    effective_precision: str = "f32"  # what this CPU computes
    float_precision: str = "f32"  # of the float layers (int8 artifacts keep some)
    fallback: str | None = None  # one line when this CPU computes less than asked

    def __init__(self) -> None:
        self.clock = BusyClock()
        self._done: Done | None = None
        self._warned = False

    @abstractmethod
    def prepare(self, image_u8: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 RGB -> the model input (reader threads)."""

    @abstractmethod
    def _infer(self, model_input: np.ndarray) -> np.ndarray:
        """One prepared input -> float32 depth (model resolution), in the calling thread."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What identifies the model's numbers (goes into a job's settings hash)."""

    def run(self, model_input: np.ndarray) -> np.ndarray:
        """Inference on one prepared input, in the calling thread, timed by `clock`."""
        self.clock.begin()
        try:
            return self._infer(model_input)
        finally:
            self.clock.end()

    def set_callback(self, done: Done | None) -> None:
        """Where `start` hands each result: done(userdata, depth, error)."""
        self._done = done

    def start(self, model_input: np.ndarray, userdata: Any) -> None:
        """Queue one input; a synchronous backend runs it here and calls back at once."""
        depth, error = None, None
        try:
            depth = self.run(model_input)
        except Exception as exc:  # reported on the image, as an asynchronous backend does
            error = exc
        if self._done is not None:
            self._done(userdata, depth, error)

    def wait_all(self) -> None:
        """Block until every started input has called back (synchronous: already done)."""
        return None

    def finish(self, depth: np.ndarray, image_hw: tuple[int, int], mode: str) -> np.ndarray:
        """Post-worker work: model-resolution depth -> the image's size (bicubic)."""
        if depth.shape == tuple(image_hw):
            return depth
        return resize_depth(depth, image_hw[0], image_hw[1], mode=mode)  # type: ignore[arg-type]

    def predict(self, image_u8: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 RGB -> float32 HxW depth at the image's size."""
        return self.predict_many([image_u8])[0]

    def predict_many(self, images_u8: Sequence[np.ndarray]) -> list[np.ndarray]:
        """`predict` for several images, all requests busy on an asynchronous backend."""
        inputs = [self.prepare(image) for image in images_u8]
        depths: list[np.ndarray | None] = [None] * len(inputs)
        errors: list[BaseException] = []

        def store(index: int, depth: np.ndarray | None, error: BaseException | None) -> None:
            if error is not None:
                errors.append(error)
            depths[index] = depth

        previous, self._done = self._done, store
        try:
            for index, model_input in enumerate(inputs):
                self.start(model_input, index)
            self.wait_all()
        finally:
            self._done = previous
        if errors:
            raise errors[0]
        return [
            self.finish(depth, image.shape[:2], "fast")  # type: ignore[arg-type]
            for depth, image in zip(depths, images_u8, strict=True)
        ]

    def precision(self) -> dict[str, Any]:
        """Asked-for and computed precision on this CPU (what run.json records)."""
        return {
            "requested": self.requested_precision,
            "effective": self.effective_precision,
            "float_layers": self.float_precision,
            "fallback": self.fallback,
            "cpu": cpu_info().summary(),
        }

    def warn_fallback(self) -> None:
        """One warning, once per backend, when this CPU computes less than the model asks."""
        if self.fallback and not self._warned:
            self._warned = True
            warnings.warn(self.fallback, PrecisionFallbackWarning, stacklevel=3)


def as_backend(obj: object) -> Backend:
    """`obj` if it is a Backend (warning once if it falls back on this CPU), else a
    TypeError that says what a backend is."""
    if not isinstance(obj, Backend):
        raise TypeError(
            f"{type(obj).__name__} is not a backend: open an artifact folder with "
            "xdepth.model.backends.open_artifact, or subclass xdepth.model.backends.Backend"
        )
    obj.warn_fallback()
    return obj
