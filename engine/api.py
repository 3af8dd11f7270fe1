"""`DepthEngine`: the Python API over the same pipeline the `xdepth run` command drives.

    engine = xdepth.DepthEngine("artifacts/dpt-beit-large-512-int8", preset="portrait")
    result = engine.predict("photo.jpg")        # depth at the photo's size, mask, composites
    for result in engine.map(paths):            # input order, images overlapping in flight
        ...
    summary = engine.run(["shots/"], "out/")    # what `xdepth run` does: files, resume, report

One engine runs one `map` or `run` at a time (it owns one queue of inference requests);
use one engine per thread for concurrent work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from xdepth.errors import XDepthError
from xdepth.job.imageio import DEFAULT_MAX_PIXELS
from xdepth.job.inputs import InputSource, open_inputs
from xdepth.job.local import RunSummary, check_settings, load_background, run
from xdepth.job.pipeline import Pipeline
from xdepth.job.video_frames import expand_videos
from xdepth.model.backends.interface import Backend, as_backend
from xdepth.outputs.result import DepthResult
from xdepth.outputs.settings import PostSettings, make_settings


class ImageFailed(XDepthError):
    """An image given to `predict` or `map` could not be processed."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage} failed: {reason}")
        self.stage, self.reason = stage, reason


def open_backend(artifact_or_backend: str | Path | Backend, **options: Any) -> Backend:
    """An artifact folder is opened with `options` (OpenVINO: streams, threads,
    inference_precision, cache_dir, hint; torch graph: threads); a backend is used as is."""
    given = {k: v for k, v in options.items() if v is not None}
    if isinstance(artifact_or_backend, (str, Path)):
        from xdepth.model.backends import open_artifact

        return open_artifact(artifact_or_backend, **given)
    backend = as_backend(artifact_or_backend)
    if given:
        raise XDepthError(
            f"backend option(s) {', '.join(sorted(given))} apply when opening an artifact "
            "folder, not to a backend object"
        )
    return backend


class DepthEngine:
    """Depth, clips and files for images, files and folders, on one pipeline.

    `artifact_or_backend`: an artifact folder (opened with the backend options streams,
    threads, precision_hint, cache_dir, hint) or a `xdepth.model.backends.Backend` (an artifact
    backend, the transformers reference, or one of your own).
    Post-process options are those of `PostSettings` (outputs, threshold, feather_px,
    background, ...), on top of `preset` (default: "default"); or pass `settings`.
    """

    def __init__(
        self,
        artifact_or_backend: Any,
        *,
        preset: str | Path | None = None,
        settings: PostSettings | None = None,
        readers: int = 2,
        post_workers: int = 2,
        max_in_flight: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        streams: int | str | None = None,
        threads: int | None = None,
        precision_hint: str | None = None,
        cache_dir: str | Path | None = None,
        hint: str | None = None,
        **post_options: Any,
    ) -> None:
        if settings is not None and (preset is not None or post_options):
            raise XDepthError("pass either settings or preset / post-process options, not both")
        self.settings = settings or make_settings(preset, **post_options)
        backend = open_backend(
            artifact_or_backend,
            streams=streams,
            threads=threads,
            inference_precision=precision_hint,
            cache_dir=cache_dir,
            hint=hint,
        )
        self.inference: Backend = as_backend(backend)
        check_settings(self.inference, self.settings)
        self.readers, self.post_workers = readers, post_workers
        self.max_in_flight, self.max_pixels = max_in_flight, max_pixels
        self._background = load_background(self.settings, max_pixels)
        self._busy = threading.Lock()

    @property
    def backend(self) -> Backend:
        """The model, as the pipeline drives it (the same object as `inference`)."""
        return self.inference

    @property
    def semantics(self) -> str:
        """ "relative_inverse_depth", or "metric_depth_m" (depth is then in 1/m)."""
        return self.inference.semantics

    def __repr__(self) -> str:
        return f"<DepthEngine {self.inference.label} requests={self.inference.requests}>"

    def _claim(self) -> None:
        if not self._busy.acquire(blocking=False):
            raise XDepthError(
                "this DepthEngine is already running a map() or run(); finish that iteration "
                "first, or use one engine per thread"
            )

    def predict(self, image: Any) -> DepthResult:
        """One image (a path, a PIL image or a uint8/uint16/float array) -> its result."""
        for result in self.map([image]):
            return result
        raise ImageFailed("predict", "no result")  # map yields one result or raises

    def map(self, inputs: Iterable[Any], *, errors: str = "raise") -> Iterator[DepthResult]:
        """Results in input order, while later images are decoded and inferred.

        `errors="raise"` raises ImageFailed at the first image that fails (in input order);
        `errors="skip"` leaves failed images out.
        """
        if errors not in ("raise", "skip"):
            raise XDepthError(f"errors must be 'raise' or 'skip', got {errors!r}")
        return self._map(inputs, errors)

    def _map(self, inputs: Iterable[Any], errors: str) -> Iterator[DepthResult]:
        self._claim()
        try:
            pipeline = Pipeline(
                self.inference,
                self.settings,
                readers=self.readers,
                post_workers=self.post_workers,
                max_in_flight=self.max_in_flight,
                max_pixels=self.max_pixels,
                background_image=self._background,
            )
            frames = expand_videos(inputs, self.settings)  # a video yields a result per frame
            for task in pipeline.results(frames, ordered=True):
                if task.error:
                    if errors == "raise":
                        raise ImageFailed(*task.error)
                    continue
                if task.result is not None:
                    yield task.result
        finally:
            self._busy.release()

    def run(
        self,
        inputs: Iterable[str | Path] | InputSource,
        out: str | Path,
        *,
        overwrite: bool = False,
        quiet: bool = True,
        relative_to: str | Path | None = None,
        min_free: int | None = None,
    ) -> RunSummary:
        """Write every input's outputs under `out` (what `xdepth run` does), resumably.

        `inputs` are files, folders, globs or list files as on the command line. A full
        OUT stops the job: the summary's `stopped` says why (`xdepth.job.local.run`).
        """
        source = (
            inputs
            if isinstance(inputs, InputSource)
            else open_inputs([str(x) for x in inputs], relative_to)
        )
        self._claim()
        try:
            return run(
                self.inference,
                source,
                out,
                self.settings,
                overwrite=overwrite,
                quiet=quiet,
                readers=self.readers,
                post_workers=self.post_workers,
                max_in_flight=self.max_in_flight,
                max_pixels=self.max_pixels,
                min_free=min_free,
            )
        finally:
            self._busy.release()
