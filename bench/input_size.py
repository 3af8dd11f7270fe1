"""What per-image input sizes cost: one dynamic-shape artifact against static ones.

Aspect-keeping variants (Depth Anything) run each photo at the size its preprocessing
gives it (a 1920x1080 photo at 518x924, a 1080x1920 one at 924x518). One artifact with a
symbolic height and width does that for every photo; the alternative is a static
artifact per size. This measures, on the same JPEGs in one run, the engine end to end
and the model alone for the per-image artifact and for a static artifact exported at
exactly the size the photos need, interleaved, median of `--runs`; and the compile time
of each (what a cache of static models would pay per new size).

    python -m xdepth.bench.input_size [--variant depth-anything-v2-small] [--images 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xdepth.api import DepthEngine
from xdepth.bench.common import environment, write_result
from xdepth.eval.scenes import HELD_OUT_BASE_SEED, make_scene
from xdepth.model.backends import open_artifact
from xdepth.model.cache import native_precisions
from xdepth.model.cards import get_card
from xdepth.model.hardware import cpu_info

PHOTOS_HW = {"landscape": (1080, 1920), "portrait": (1920, 1080)}


def _photos(folder: Path, hw: tuple[int, int], count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo{i:03d}.jpg"
        Image.fromarray(make_scene(HELD_OUT_BASE_SEED + 900 + i, *hw).rgb).save(path, quality=92)
        paths.append(path)
    return paths


def _model_rate(engine: DepthEngine, model_input: np.ndarray, count: int) -> float:
    """Images/s of the model alone, every request busy (the engine's own queue)."""
    inference = engine.inference
    done = []
    inference.set_callback(lambda userdata, depth, error: done.append(error))
    start = time.perf_counter()
    for i in range(count):
        inference.start(model_input, i)
    inference.wait_all()
    seconds = time.perf_counter() - start
    if any(done):
        raise RuntimeError(f"inference failed: {[e for e in done if e]}")
    return count / seconds


def _e2e_rate(engine: DepthEngine, paths: list[Path], out: Path) -> float:
    start = time.perf_counter()
    summary = engine.run(paths, out, overwrite=True)
    return summary.ok / (time.perf_counter() - start)


def measure(variant: str, precision: str, count: int, runs: int, work: Path) -> dict[str, Any]:
    from xdepth.export.exporter import export

    card = get_card(variant)
    result: dict[str, Any] = {"variant": variant, "precision": precision, "shapes": {}}
    per_image = export(variant, work / "per-image", random_init=True, precision=precision,
                       fidelity_floor=0.0, fidelity_images=2)  # fmt: skip
    for name, photo_hw in PHOTOS_HW.items():
        paths = _photos(work / name, photo_hw, count)
        probe = open_artifact(per_image)
        model_hw = probe.model_hw(photo_hw)
        static = export(variant, work / f"static-{name}", random_init=True, precision=precision,
                        input_size=model_hw, fidelity_floor=0.0, fidelity_images=2)  # fmt: skip
        engines, compile_s = {}, {}
        for kind, folder in (("per_image", per_image), ("static", static)):
            engine = DepthEngine(folder, cache_dir=work / "no-cache" / kind / name)
            compile_s[kind] = round(engine.backend.compile_seconds, 2)
            engines[kind] = engine
        model_input = engines["static"].inference.prepare(np.asarray(Image.open(paths[0])))
        rates: dict[str, dict[str, list[float]]] = {k: {"e2e": [], "model": []} for k in engines}
        for engine in engines.values():  # warm-up
            _model_rate(engine, model_input, 2)
        for _ in range(runs):
            for kind, engine in engines.items():
                rates[kind]["model"].append(_model_rate(engine, model_input, count))
                rates[kind]["e2e"].append(_e2e_rate(engine, paths, work / "out" / kind / name))
        medians = {
            k: {m: round(statistics.median(v), 3) for m, v in r.items()} for k, r in rates.items()
        }
        result["shapes"][name] = {
            "photo_hw": list(photo_hw),
            "model_input_hw": list(model_hw),
            "compile_s": compile_s,
            "images_per_s": medians,
            "samples": rates,
            "per_image_vs_static": {
                m: round(medians["per_image"][m] / medians["static"][m], 3)
                for m in ("e2e", "model")
            },
        }
        print(f"{name} {photo_hw} -> {model_hw}: {result['shapes'][name]['images_per_s']}")
    result["card_input_hw"] = list(card.input_hw)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xdepth.bench.input_size", description=__doc__)
    parser.add_argument("--variant", default="depth-anything-v2-small")
    parser.add_argument("--precision", help="default: bf16 where native, else f32")
    parser.add_argument("--images", type=int, default=8, help="JPEGs per shape")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    precision = args.precision or ("bf16" if "bf16" in native_precisions() else "f32")
    with tempfile.TemporaryDirectory(prefix="xdepth-input-size-") as tmp:
        result = measure(args.variant, precision, args.images, args.runs, Path(tmp))
    result["cpu"] = cpu_info().describe()
    result["environment"] = environment()
    print(write_result("input-size", result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
