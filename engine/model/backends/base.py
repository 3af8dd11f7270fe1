"""What every artifact backend shares: the manifest, the host-side resize, input checks.

An artifact backend turns uint8 RGB at the model's input size into inverse depth at that
size (`infer_u8`, `_run`); the Backend interface wraps it with the two host steps the graph
does not do: the Pillow resize the model's image processor does
(xdepth.model.preprocess.resize_for_model, in `prepare`) and the bicubic upsample back to the
image's size (`finish`).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from xdepth.model.backends.interface import Backend
from xdepth.model.manifest import ArtifactError, Manifest, load_manifest, sha256_file
from xdepth.model.preprocess import model_size, normalize, resize_for_model


class BackendUnavailable(ArtifactError, ImportError):
    """The runtime an artifact needs is not installed, or cannot run it on this machine."""


class ArtifactBackend(Backend):
    """An artifact folder's model; subclasses implement `_run(model_input) -> N x h x w`."""

    format = ""

    def __init__(self, artifact: str | Path | Manifest, check_sha256: bool = True) -> None:
        super().__init__()
        if isinstance(artifact, Manifest):
            self.manifest = artifact
        else:
            self.manifest = load_manifest(artifact, check_sha256=check_sha256)
        m = self.manifest
        if m.format != self.format:
            raise ArtifactError(
                f"{m.manifest_path}: format {m.format!r} artifact, but {type(self).__name__} "
                f"runs {self.format!r} artifacts; use xdepth.model.backends.open_artifact to pick "
                "the backend from the manifest"
            )
        self.input_hw = m.input.hw
        self.per_image = m.input.per_image
        self.preprocess = m.input.preprocess()
        self.name = f"{m.format}-{m.precision}"
        weights = " (random-init)" if m.random_init else ""
        self.label = f"{m.variant} {m.format} {m.precision}{weights}"
        self.semantics = m.output.semantics
        self.requested_precision = m.precision
        # What is computed; runtimes that can compute less than asked (OpenVINO) override it.
        self.effective_precision = m.precision
        self.float_precision = str(m.runtime.get("inference_precision", "f32"))

    def model_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """The size an image of `image_hw` goes into the model at."""
        return model_size(image_hw, self.preprocess) if self.per_image else self.input_hw

    def resize(self, image_u8: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 -> uint8 at the model's input size (Pillow, the card's resample)."""
        image = _check_image(image_u8)
        return resize_for_model(image, self.preprocess, size_hw=self.model_hw(image.shape[:2]))

    def prepare(self, image_u8: np.ndarray) -> np.ndarray:
        """The host resize, and the normalisation when the graph does not do it: a batch of 1."""
        resized = self.resize(image_u8)
        if self.manifest.input.preprocessing_in_graph:
            return np.ascontiguousarray(resized[None])
        return normalize(resized, self.preprocess)

    def _infer(self, model_input: np.ndarray) -> np.ndarray:
        return self._run(model_input)[0]

    def infer_u8(self, batch_nhwc_u8: np.ndarray) -> np.ndarray:
        """uint8 N x h x w x 3 RGB at the input size -> float32 N x h x w inverse depth.

        A per-image-size artifact takes any h x w that are multiples of the card's
        `ensure_multiple_of` (all images of one batch at one size).
        """
        batch = _check_batch(batch_nhwc_u8, None if self.per_image else self.input_hw)
        if self.per_image:
            _check_multiple(batch.shape[1:3], self.preprocess.ensure_multiple_of)
        if not self.manifest.input.preprocessing_in_graph:
            batch = np.concatenate([normalize(image, self.preprocess) for image in batch])
        return self._run(batch)

    def identity(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "kind": "artifact",
            "manifest_sha256": sha256_file(m.manifest_path),
            "variant": m.variant,
            "format": m.format,
            "precision": m.precision,
            "random_init": m.random_init,
        }

    @abstractmethod
    def _run(self, model_input: np.ndarray) -> np.ndarray:
        """float32 model input (or uint8 with in-graph preprocessing) -> N x h x w depth."""


def _check_image(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ValueError(
            f"image must be uint8 H x W x 3 RGB, got {image.dtype} array of shape {image.shape}"
        )
    return image


def _check_batch(batch: object, hw: tuple[int, int] | None) -> np.ndarray:
    """uint8 N x h x w x 3; at `hw` unless it is None (per-image sizes)."""
    if not isinstance(batch, np.ndarray):
        raise TypeError(f"batch must be a numpy array, got {type(batch).__name__}")
    if hw is None:
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[3] != 3 or not batch.size:
            raise ValueError(
                "batch must be uint8 N x h x w x 3 (RGB at the model's input size; resize with "
                f".resize()), got {batch.dtype} array of shape {batch.shape}"
            )
        return np.ascontiguousarray(batch)
    want = (hw[0], hw[1], 3)
    if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != want or not len(batch):
        raise ValueError(
            f"batch must be uint8 N x {want[0]} x {want[1]} x 3 (RGB at the artifact's input "
            f"size; resize with .resize()), got {batch.dtype} array of shape {batch.shape}"
        )
    return np.ascontiguousarray(batch)


def _check_multiple(hw: tuple[int, int], multiple: int) -> None:
    if hw[0] % multiple or hw[1] % multiple:
        raise ValueError(
            f"model input {hw[0]}x{hw[1]}: both sides must be multiples of {multiple} (resize "
            "with .resize(), which gives each image the size the card's preprocessing does)"
        )
