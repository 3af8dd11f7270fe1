"""Timing and memory primitives of `xdepth bench`: every contender is timed the same way.

A cell's speed is ``runs`` timed runs of ``images`` images each, after ``warmup`` untimed
runs; images/s is reported as the median run with the slowest and fastest, and latency as
p50 / p95 over every image of the timed runs. The bench process's resident set is
sampled while the cell runs (all cells share one process, so ``ru_maxrss`` would only ever
grow), with how much the cell added to what was resident before it; it holds the reference
and earlier contenders too, so the engine's own memory is measured apart
(xdepth.bench.memory).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xdepth.bench.engine_measure import rss_bytes

RSS_SAMPLE_S = 0.02


@dataclass
class Timing:
    """Wall-clock seconds of each timed run, and of each image inside them."""

    images_per_run: int
    run_s: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """images/s (median, min, max over runs) and latency p50 / p95 in milliseconds."""
        rates = [self.images_per_run / s for s in self.run_s]
        latency_ms = np.asarray(self.latency_s) * 1e3
        return {
            "images_per_run": self.images_per_run,
            "runs": len(self.run_s),
            "run_s": [round(s, 4) for s in self.run_s],
            "images_per_s": {
                "median": round(self.images_per_run / statistics.median(self.run_s), 4),
                "min": round(min(rates), 4),
                "max": round(max(rates), 4),
            },
            "latency_ms": {
                "p50": round(float(np.percentile(latency_ms, 50)), 3),
                "p95": round(float(np.percentile(latency_ms, 95)), 3),
            },
        }


def time_image_runs(
    run_once: Callable[[], list[float]], images: int, runs: int, warmup: int
) -> dict[str, Any]:
    """Time `warmup + runs` calls of `run_once`, which processes `images` images and returns
    each image's latency in seconds; only the last `runs` count."""
    if runs < 1 or images < 1:
        raise ValueError(f"runs and images must be >= 1, got {runs} and {images}")
    timing = Timing(images)
    for index in range(warmup + runs):
        start = time.perf_counter()
        latencies = run_once()
        if index >= warmup:
            timing.run_s.append(time.perf_counter() - start)
            timing.latency_s.extend(latencies)
    return timing.summary()


def time_sequential(
    one: Callable[[int], object], images: int, runs: int, warmup: int
) -> dict[str, Any]:
    """`one(i)` for i in range(images), one after another; latency is one call."""

    def run_once() -> list[float]:
        latencies = []
        for i in range(images):
            began = time.perf_counter()
            one(i)
            latencies.append(time.perf_counter() - began)
        return latencies

    return time_image_runs(run_once, images, runs, warmup)


def time_async_queue(
    inference: Any, inputs: list[np.ndarray], images: int, runs: int, warmup: int
) -> dict[str, Any]:
    """The engine's OpenVINO queue with every request in flight, inputs already prepared.

    Latency is from the moment a request is free and given its image to its callback.
    """
    started: dict[int, float] = {}
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def done(userdata: Any, depth: Any, error: BaseException | None) -> None:
        with lock:  # OpenVINO's callback thread: record, never raise
            latencies.append(time.perf_counter() - started.pop(userdata))
            if error is not None:
                errors.append(error)

    def run_once() -> list[float]:
        latencies.clear()
        for i in range(images):
            inference.queue.get_idle_request_id()
            started[i] = time.perf_counter()
            inference.start(inputs[i % len(inputs)], i)
        inference.wait_all()
        if errors:
            raise RuntimeError(f"inference failed during the bench: {errors[0]}")
        return list(latencies)

    inference.set_callback(done)
    try:
        return time_image_runs(run_once, images, runs, warmup)
    finally:
        inference.set_callback(None)


class PeakRss:
    """Samples this process's resident memory in a thread while a cell runs."""

    def __init__(self) -> None:
        self.before = rss_bytes()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(RSS_SAMPLE_S)

    def figures(self) -> dict[str, float]:
        return {
            "bench_rss_mb": round(self.peak / 2**20, 1),
            "rss_added_mb": round((self.peak - self.before) / 2**20, 1),
        }


@contextmanager
def peak_rss() -> Iterator[PeakRss]:
    """``with peak_rss() as mem: ...`` then ``mem.figures()``."""
    sampler = PeakRss()
    sampler._thread.start()
    try:
        yield sampler
    finally:
        sampler._stop.set()
        sampler._thread.join()
        sampler.peak = max(sampler.peak, rss_bytes())


def seconds(fn: Callable[[], object]) -> tuple[float, Any]:
    """Wall-clock seconds of one call, and what it returned."""
    start = time.perf_counter()
    value = fn()
    return round(time.perf_counter() - start, 4), value
