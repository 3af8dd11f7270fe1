"""Artifacts xdepth exports itself on first use: the fast path without `--artifact`.

`xdepth run`, `xdepth demo` and the notebook, given a variant (or none: the default
model) and no artifact, run an OpenVINO artifact exported once into
``artifacts_dir()`` (``$XDEPTH_ARTIFACTS``, else ``~/.cache/xdepth/artifacts``), one folder
per variant, weights content and precision. `--reference` runs the transformers fp32
model instead.

Precision "auto" is measured, not assumed: every precision this CPU computes natively
(f32; bf16 where OpenVINO reports AMX or AVX512_BF16; int8) is exported, those under
their fidelity floors are dropped, and the model-only rate of the rest is measured on
this CPU, interleaved, median of three rounds. The fastest wins unless a more precise
one is within AUTO_MARGIN of it. The choice and the rates are kept in
``auto-<variant>-<key>.json`` beside the artifacts, per machine (CPU generation, native ISA
and cores: xdepth.model.hardware.machine_key, as bench result folders are named; "AMD EPYC" alone
is every EPYC generation), so later runs reuse it. `xdepth bench` reports its fastest
precision per variant with the same rule (choose_precision).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xdepth.errors import XDepthError
from xdepth.model.cards import Card, get_card, load_card_file
from xdepth.model.formats import PRECISIONS
from xdepth.model.hardware import cpu_info, machine_key
from xdepth.model.manifest import MANIFEST_NAME, sha256_file
from xdepth.model.weights import WEIGHT_FILES, find_weights
from xdepth.paths import artifacts_dir
from xdepth.post.encoders import write_atomic

if TYPE_CHECKING:
    from xdepth.model.backends.openvino import OpenVINOBackend

AUTO = "auto"
AUTO_MARGIN = 0.05  # a less precise artifact must be more than 5 % faster to be chosen
RATE_ROUNDS = 3
RATE_MIN_SECONDS = 0.5  # per sample, so a fast model's rate is not a few milliseconds' noise
Progress = Callable[[str], None]


def model_key(card: Card, weights: str | Path | None, random_init: bool) -> str:
    """Changes with the card and the weights' content (random init: the card only)."""
    digest = hashlib.sha256(card.path.read_bytes() if card.path else card.name.encode())
    if random_init:
        digest.update(b"random-init")
    else:
        folder = find_weights(card, weights)
        weights_file = next(folder / n for n in WEIGHT_FILES if (folder / n).is_file())
        digest.update(sha256_file(weights_file).encode())
    return digest.hexdigest()[:12]


def native_precisions() -> tuple[str, ...]:
    """What this CPU computes natively, read from OpenVINO (bf16 only with AMX/AVX512_BF16)."""
    return tuple(p for p in PRECISIONS if p != "bf16" or cpu_info().has_bf16)


def cached_artifact(
    variant: str,
    *,
    weights: str | Path | None = None,
    random_init: bool = False,
    precision: str = AUTO,
    progress: Progress | None = None,
) -> Path:
    """The variant's OpenVINO artifact at `precision` ("auto": the fastest on this CPU
    within the fidelity floors), exported on first use."""
    say = progress or (lambda message: None)
    card = load_card_file(variant) if variant.endswith(".toml") else get_card(variant)
    if precision not in (AUTO, *PRECISIONS):
        raise XDepthError(f"precision {precision!r} is not one of auto, {', '.join(PRECISIONS)}")
    key = model_key(card, weights, random_init)
    if precision != AUTO:
        return _export(card, weights, random_init, precision, key, say)
    record_path = artifacts_dir() / f"auto-{card.name}-{key}.json"
    record = _read_record(record_path)
    chosen = record.get(machine_key(), {}).get("chosen")
    if chosen and (_target(card, chosen, key) / MANIFEST_NAME).is_file():
        say(f"{card.name}: {chosen}, the fastest on this CPU (measured {record_path})")
        return _target(card, chosen, key)
    found = race(
        native_precisions(),
        lambda p: _export(card, weights, random_init, p, key, say),
        (XDepthError,),  # under its fidelity floor, or not repeatable
        say,
    )
    record[machine_key()] = {
        "cpu": cpu_info().describe(),
        "model_images_per_s": found.rates,
        "dropped": found.dropped,
        "chosen": found.chosen,
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_atomic(record_path, (json.dumps(record, indent=2) + "\n").encode())
    return found.exported[found.chosen]


@dataclass
class Race:
    """Candidates exported, those dropped (and why), their rates here, and the winner."""

    exported: dict[str, Path]
    dropped: dict[str, str]
    rates: dict[str, float]
    chosen: str


def race(
    candidates: Iterable[str],
    export_one: Callable[[str], Path],
    dropped_on: tuple[type[Exception], ...],
    say: Progress,
) -> Race:
    """Export each candidate precision (a `dropped_on` error drops it), measure the rest on
    this CPU and choose: the one rule behind `--precision auto` everywhere."""
    exported: dict[str, Path] = {}
    dropped: dict[str, str] = {}
    for candidate in candidates:
        try:
            exported[candidate] = export_one(candidate)
        except dropped_on as exc:
            dropped[candidate] = str(exc)
            say(f"{candidate}: not used ({exc})")
    if not exported:
        raise XDepthError(f"no precision passed its checks: {dropped}")
    rates = measure_rates(exported, say)
    chosen = choose_precision(rates)
    said = ", ".join(f"{p} {r:.3g}" for p, r in rates.items())
    say(f"{chosen} is the fastest on this CPU ({said} images/s, model only)")
    return Race(exported, dropped, rates, chosen)


def choose_precision(rates: dict[str, float]) -> str:
    """The fastest precision, unless a more precise one is within AUTO_MARGIN of it."""
    best = max(rates.values())
    return next(p for p in PRECISIONS if p in rates and rates[p] >= best * (1 - AUTO_MARGIN))


def measure_rates(artifacts: dict[str, Path], say: Progress) -> dict[str, float]:
    """Model-only images/s of each artifact on this CPU (interleaved rounds, median)."""
    from xdepth.eval.scenes import make_scene, photo_hw
    from xdepth.model.backends import open_artifact

    say(f"measuring {', '.join(artifacts)} on this CPU")
    backends = {p: open_artifact(path) for p, path in artifacts.items()}
    samples: dict[str, list[float]] = {p: [] for p in artifacts}
    for _ in range(RATE_ROUNDS):
        for precision, backend in backends.items():
            image = make_scene(0, *photo_hw(0, max(backend.input_hw))).rgb
            samples[precision].append(_rate(backend, backend.resize(image)))
    return {p: round(statistics.median(s), 3) for p, s in samples.items()}


def _rate(backend: OpenVINOBackend, model_input: np.ndarray) -> float:
    """Images/s with every stream busy: one warm-up batch, then batches for at least
    RATE_MIN_SECONDS (a small model's batch takes milliseconds; one of a large one, seconds)."""
    count = 2 * int(backend.optimal_requests)
    batch = np.stack([model_input] * count)
    backend.infer_u8(batch)
    images, start = 0, time.perf_counter()
    while not images or time.perf_counter() - start < RATE_MIN_SECONDS:
        backend.infer_u8(batch)
        images += count
    return images / (time.perf_counter() - start)


def _target(card: Card, precision: str, key: str) -> Path:
    return artifacts_dir() / f"{card.name}-openvino-{precision}-{key}"


def _export(
    card: Card,
    weights: str | Path | None,
    random_init: bool,
    precision: str,
    key: str,
    say: Progress,
) -> Path:
    target = _target(card, precision, key)
    if (target / MANIFEST_NAME).is_file():
        return target
    try:
        from xdepth.export.exporter import export
    except ImportError as exc:
        raise XDepthError(
            f"exporting {card.name} on first use needs xdepth[export] (torch, nncf: {exc}); "
            "or pass --artifact DIR"
        ) from None
    say(f"exporting {card.name} to OpenVINO {precision} (first use only): {target}")
    weights_dir = None if random_init else find_weights(card, weights)
    return export(
        card.name,
        target,
        weights=weights_dir,
        random_init=random_init,
        fmt="openvino",
        precision=precision,
        progress=say,
    )


def _read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
