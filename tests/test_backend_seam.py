"""The backend seam and the pipeline, without a model: a backend of a few lines plugs in.

A fake backend (synchronous, and asynchronous on a thread pool as OpenVINO's queue is)
shows that the engine needs nothing beyond xdepth.model.backends.Backend, and lets the pipeline's
promises be checked exactly: input order, one image's failure kept to that image, memory
bounded by the in-flight window whatever the input count, and an early stop that stops
reading.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from xdepth.api import DepthEngine, ImageFailed
from xdepth.model.backends import Backend, as_backend


class FakeBackend(Backend):
    """Inverse depth = the red channel of an 8x8 thumbnail; a red value of 13 fails."""

    name = "fake"
    label = "fake backend"

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.prepared = 0
        self.in_flight = 0  # prepared, not yet finished
        self.most_in_flight = 0

    def prepare(self, image_u8: np.ndarray) -> np.ndarray:
        with self.lock:
            self.prepared += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        h, w = image_u8.shape[:2]
        return image_u8[:: max(1, h // 8), :: max(1, w // 8), 0][:8, :8].astype(np.float32)

    def _infer(self, model_input: np.ndarray) -> np.ndarray:
        if model_input[0, 0] == 13:
            raise RuntimeError("the fake model refuses red 13")
        return model_input + 1.0

    def finish(self, depth: np.ndarray, image_hw: tuple[int, int], mode: str) -> np.ndarray:
        with self.lock:
            self.in_flight -= 1
        return super().finish(depth, image_hw, mode)

    def identity(self) -> dict[str, Any]:
        return {"kind": "fake"}


class AsyncFakeBackend(FakeBackend):
    """The same model behind a pool of `requests` workers and a completion callback."""

    asynchronous = True
    requests = 3

    def __init__(self) -> None:
        super().__init__()
        self.pool = ThreadPoolExecutor(self.requests)
        self.futures: list[Any] = []

    def start(self, model_input: np.ndarray, userdata: Any) -> None:
        done = self._done

        def work() -> None:
            depth, error = None, None
            try:
                depth = self.run(model_input)
            except Exception as exc:
                error = exc
            if done is not None:
                done(userdata, depth, error)

        self.futures.append(self.pool.submit(work))

    def wait_all(self) -> None:
        for future in list(self.futures):
            future.result()


def images(count: int, fail_at: int | None = None) -> list[np.ndarray]:
    out = []
    for i in range(count):
        image = np.full((24, 32, 3), (i * 7) % 230 + 20, np.uint8)
        if i == fail_at:
            image[..., 0] = 13
        out.append(image)
    return out


@pytest.fixture(params=[FakeBackend, AsyncFakeBackend], ids=["sync", "async"])
def backend(request: pytest.FixtureRequest) -> FakeBackend:
    return request.param()


def test_a_new_backend_plugs_in_and_results_keep_input_order(backend: FakeBackend) -> None:
    engine = DepthEngine(backend, outputs=("mask",), readers=3, post_workers=3)
    inputs = images(40)
    results = list(engine.map(inputs))
    assert len(results) == 40
    for image, result in zip(inputs, results, strict=True):
        expected = float(image[0, 0, 0]) + 1.0  # the fake model's output, upsampled
        np.testing.assert_allclose(result.depth, expected, rtol=1e-6)
        assert result.depth.shape == image.shape[:2]
    assert backend.in_flight == 0 and engine.backend is backend


def test_one_failure_stays_with_its_image(backend: FakeBackend) -> None:
    engine = DepthEngine(backend, outputs=("mask",))
    kept = list(engine.map(images(10, fail_at=4), errors="skip"))
    assert len(kept) == 9
    with pytest.raises(ImageFailed, match="refuses red 13") as err:
        list(engine.map(images(10, fail_at=4)))
    assert err.value.stage == "infer"


def test_memory_is_bounded_by_the_window_not_the_input_count(backend: FakeBackend) -> None:
    engine = DepthEngine(backend, outputs=("mask",), max_in_flight=4)
    consumed = 0
    for _ in engine.map(images(60)):
        consumed += 1
    assert consumed == 60
    assert backend.most_in_flight <= 4


def test_stopping_early_stops_reading(backend: FakeBackend) -> None:
    engine = DepthEngine(backend, outputs=("mask",), max_in_flight=5)
    stream = engine.map(images(500))
    for _ in range(3):
        next(stream)
    stream.close()  # the caller walks away after three results
    assert backend.prepared <= 3 + 5


def test_an_object_that_is_not_a_backend_is_refused() -> None:
    class Predicts:
        def predict(self, image: np.ndarray) -> np.ndarray:
            return image[..., 0].astype(np.float32)

    with pytest.raises(TypeError, match="is not a backend"):
        as_backend(Predicts())
    with pytest.raises(TypeError, match=r"subclass xdepth\.model\.backends\.Backend"):
        DepthEngine(Predicts())


def test_a_new_output_kind_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings, --outputs validation, resume's file list and encoding all follow it."""
    from xdepth.outputs.kinds import OUTPUT_KINDS, OutputKind
    from xdepth.outputs.settings import make_settings

    kind = OutputKind(
        "far", ("far.txt",), frozenset({"depth"}), "the farthest inverse depth, as text",
        lambda r: (f"{float(r.depth.min()):.3f}".encode(),),
    )  # fmt: skip
    monkeypatch.setitem(OUTPUT_KINDS, "far", kind)
    settings = make_settings("default", outputs="mask,far")
    assert settings.file_suffixes == ("mask.png", "far.txt")
    engine = DepthEngine(FakeBackend(), settings=settings)
    (result,) = engine.map(images(1))
    assert result.files()["far.txt"] == b"21.000"  # red 20 + 1, the fake model's output


def test_a_new_threshold_policy_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing, validation, the settings' canonical form and the mask all follow it."""
    from xdepth.outputs.settings import make_settings
    from xdepth.post import POLICIES, PolicyKind, parse_policy

    def above_mean(values: np.ndarray, value: float | None, peak: float) -> float:
        return float(values.mean()) * float(value)  # type: ignore[arg-type]

    kind = PolicyKind("mean", above_mean, (0.0, 10.0), "0 <= factor <= 10", example="mean:1")
    monkeypatch.setitem(POLICIES, "mean", kind)
    assert str(parse_policy(" MEAN:1.5 ")) == "mean:1.5"
    with pytest.raises(ValueError, match="0 <= factor <= 10"):
        parse_policy("mean:11")
    settings = make_settings("default", threshold="mean:1", outputs="mask")
    image = images(1)[0].copy()
    image[:, :16, 0] = 200  # left half near
    (result,) = DepthEngine(FakeBackend(), settings=settings).map([image])
    assert result.mask[:, :8].all() and not result.mask[:, 24:].any()
