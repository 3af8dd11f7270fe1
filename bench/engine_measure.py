"""Measurements for the engine benchmark: seed recipe, model-only rate, RSS, GIL share."""

from __future__ import annotations

import cProfile
import os
import pstats
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * PAGE_BYTES


class SeedRecipe:
    """The seed notebook's per-image code: processor, fp32 eager model, bicubic upsample."""

    def __init__(self, loaded: Any) -> None:
        from xdepth.export.reference import image_processor

        self.model = loaded.model.float().eval()
        self.processor = image_processor(loaded.card)

    def depth(self, image: Image.Image) -> np.ndarray:
        """The model's output at the image's size, as the seed computes it."""
        import torch

        inputs = self.processor(images=image, return_tensors="pt")
        with torch.no_grad():
            predicted_depth = self.model(**inputs).predicted_depth
        prediction = torch.nn.functional.interpolate(
            predicted_depth.unsqueeze(1), size=image.size[::-1], mode="bicubic", align_corners=False
        )
        return prediction.squeeze().cpu().numpy()

    def predict_many(self, images_u8: list[np.ndarray]) -> list[np.ndarray]:
        """For fidelity scoring, like an artifact backend."""
        return [self.depth(Image.fromarray(image)) for image in images_u8]

    def __call__(self, path: Path, out: Path) -> None:
        """One image: a 16-bit depth PNG and an RGBA cutout, written with Pillow's defaults."""
        image = Image.open(path)
        output = self.depth(image)
        formatted = (output * 255 / np.max(output)).astype("uint8")
        mask = Image.fromarray(np.where(formatted > 45, 255, 0).astype(np.uint8))
        lo, hi = float(output.min()), float(output.max())
        depth16 = ((output - lo) / max(hi - lo, 1e-12) * 65535).round().astype(np.uint16)
        Image.fromarray(depth16).save(out / f"{path.stem}.depth16.png")
        cutout = Image.composite(image.convert("RGBA"), Image.new("RGBA", image.size), mask)
        cutout.save(out / f"{path.stem}.cutout.png")


def seed_recipe(variant: str, weights: str | None, paths: list[Path], out: Path) -> dict[str, Any]:
    """The seed notebook's loop, writing a 16-bit depth PNG and an RGBA cutout per image."""
    import torch

    from xdepth.export.load import load_model

    one = SeedRecipe(load_model(variant, weights=weights, random_init=weights is None))
    out.mkdir(parents=True, exist_ok=True)
    one(paths[0], out)  # warm-up: first-call allocations, lazy initialisation
    start = time.perf_counter()
    for path in paths:
        one(path, out)
    seconds = time.perf_counter() - start
    return {
        "images": len(paths),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(paths) / seconds, 4),
        "threads": torch.get_num_threads(),
    }


def model_only_rate(inference: Any, model_inputs: list[np.ndarray], count: int) -> float:
    """Images/s of the model alone: prepared inputs, every request in flight, no post."""
    if not inference.asynchronous:
        inference.run(model_inputs[0])
        start = time.perf_counter()
        for i in range(count):
            inference.run(model_inputs[i % len(model_inputs)])
        return count / (time.perf_counter() - start)
    finished = threading.Semaphore(0)
    inference.set_callback(lambda userdata, depth, error: finished.release())
    for i in range(inference.requests):  # warm-up: every request once
        inference.start(model_inputs[i % len(model_inputs)], None)
    inference.wait_all()
    start = time.perf_counter()
    for i in range(count):
        inference.start(model_inputs[i % len(model_inputs)], None)
    inference.wait_all()
    seconds = time.perf_counter() - start
    inference.set_callback(None)
    return count / seconds


def gil_held_fraction(photo: Path, runs: int = 3) -> dict[str, float]:
    """Share of one image's host work (decode, resize, upsample, mask, encode) holding the GIL.

    Profiled single-threaded: time inside OpenCV calls (which all release the GIL), Pillow's
    decoder and resampler, and numpy's kernels is GIL-free; the rest is Python holding it.
    A small share means post-processing threads run in parallel, so no process pool (and
    no copying of full-size images between processes) is needed.
    """
    import cv2

    from xdepth.job.imageio import read_image
    from xdepth.outputs.result import DepthResult
    from xdepth.outputs.settings import PostSettings
    from xdepth.post import resize_depth

    settings = PostSettings(outputs=("depth16", "cutout"))
    rng = np.random.default_rng(0)
    model_depth = rng.random((512, 512), dtype=np.float32) + np.linspace(
        0, 2, 512, dtype=np.float32
    )

    def job() -> None:
        image = read_image(photo).rgb
        Image.fromarray(image).resize((512, 512), Image.Resampling.BICUBIC)
        depth = resize_depth(model_depth, image.shape[0], image.shape[1])
        DepthResult(image, depth, settings).files()

    job()
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for _ in range(runs):
        job()
    profile.disable()
    wall = (time.perf_counter() - start) / runs
    cv2_names = set(dir(cv2))
    free = held = 0.0
    for (file, _, name), (_, _, own, _, _) in pstats.Stats(profile).stats.items():
        bare = name.strip("<>")
        releases = file == "~" and (
            bare in cv2_names
            or "ImagingDecoder" in name
            or "ImagingCore" in name
            or "numpy" in name
        )
        if releases:
            free += own
        else:
            held += own
    return {
        "seconds_per_image": round(wall, 4),
        "gil_free_s": round(free / runs, 4),
        "gil_held_s": round(held / runs, 4),
        "held_fraction": round(held / (held + free), 4),
    }
