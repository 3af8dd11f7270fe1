"""The batch runner: inputs -> backend -> clip -> atomic outputs, one bad file never stops it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from xdepth.errors import XDepthError
from xdepth.imageio import load_rgb
from xdepth.inputs import InputItem
from xdepth.outputs import ClipResult, ClipSettings, clip, encode_outputs
from xdepth.post.encoders import write_atomic

__all__ = ["Backend", "ClipSettings", "RunSummary", "output_dir", "run"]


class Backend(Protocol):
    """Anything that turns a uint8 RGB image into the model's depth at the image's size."""

    name: str

    def predict(self, image_u8: np.ndarray) -> np.ndarray: ...


@dataclass
class RunSummary:
    """What a run did; printed at the end and returned to the caller."""

    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        return (
            f"{self.ok} ok, {self.failed} failed in {self.seconds:.2f} s "
            f"({self.images_per_s:.2f} images/s)"
        )


def output_dir(out: Path, rel: Path) -> Path:
    """The folder an input's outputs go to; refuses anything that would leave `out`."""
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"{rel}: output path would leave the output folder")
    return out / rel.parent


def write_outputs(out: Path, rel: Path, files: dict[str, bytes]) -> list[Path]:
    """Write `<rel parent>/<stem>.<kind>.<ext>` files atomically."""
    folder = output_dir(out, rel)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, data in files.items():
        path = folder / f"{rel.stem}.{suffix}"
        write_atomic(path, data)
        written.append(path)
    return written


def _log_error(log: Path, item: InputItem, stage: str, reason: str) -> dict[str, str]:
    entry = {"path": str(item.path), "stage": stage, "reason": reason}
    with log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    where = "" if str(item.path) in reason else f"{item.path}: "
    print(f"xdepth: {stage} failed: {where}{reason}", file=sys.stderr)
    return entry


def process(backend: Backend, image_u8: np.ndarray, settings: ClipSettings) -> ClipResult:
    return clip(image_u8, backend.predict(image_u8), settings)


def run(
    backend: Backend,
    items: Iterable[InputItem],
    out: Path,
    settings: ClipSettings | None = None,
) -> RunSummary:
    """Process images one by one; failures go to OUT/errors.jsonl and the run goes on."""
    settings = settings or ClipSettings()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "errors.jsonl"
    log.unlink(missing_ok=True)  # this run's failures only
    summary = RunSummary()
    start = time.perf_counter()
    for item in items:
        stage = "read"
        try:
            image = load_rgb(item.path)
            stage = "infer"
            result = process(backend, image, settings)
            stage = "write"
            write_outputs(out, item.rel, encode_outputs(result, settings))
        except Exception as exc:  # one image's failure, whatever it is, must not stop the job
            summary.failed += 1
            reason = str(exc) if isinstance(exc, XDepthError) else f"{type(exc).__name__}: {exc}"
            summary.errors.append(_log_error(log, item, stage, reason))
            continue
        summary.ok += 1
    summary.seconds = time.perf_counter() - start
    return summary
