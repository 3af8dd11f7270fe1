"""Artifacts the benchmarks time: exported once, kept in a cache folder, keyed by content.

Exports of real-size variants take minutes (DPT-BEiT-L-512 int8: about 8 minutes on 2
cores), so a bench exports each (variant, weights, format, precision) once into
``--artifacts-dir`` and reuses it. The folder name carries a hash of the variant card and
of the weights files, so a changed card or new weights never reuse a stale artifact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from xdepth.model.cards import Card
from xdepth.model.weights import find_weights
from xdepth.paths import cache_root

DEFAULT_ARTIFACTS_DIR = cache_root() / "bench"


def bench_weights(card: Card, weights: str | Path | None) -> Path | None:
    """Weights a bench uses: the folder given, else the shipped ones; None is random init.

    Real-size variants are benchmarked with random weights unless a folder is given, so a
    bench never depends on what happens to be in the local Hugging Face cache.
    """
    if weights is not None:
        return Path(weights)
    return find_weights(card) if card.weights else None


def _content_key(card: Card, weights: Path | None) -> str:
    digest = hashlib.sha256(card.path.read_bytes() if card.path else card.name.encode())
    if weights is not None:
        for path in sorted(p for p in weights.iterdir() if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:10]


def ensure_artifact(
    card: Card,
    fmt: str,
    precision: str,
    weights: Path | None,
    folder: Path,
    calibration_size: int,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The artifact folder for these settings, exported on first use.

    Fidelity floors are not enforced (a floor of 0): a bench records what each precision
    costs, and random weights make the figures numerical drift, not accuracy.
    """
    origin = "random" if weights is None else weights.name
    target = folder / f"{card.name}-{origin}-{fmt}-{precision}-{_content_key(card, weights)}"
    if (target / "manifest.json").is_file():
        return target
    from xdepth.export.exporter import export

    if progress:
        progress(f"exporting {card.name} {fmt} {precision} to {target} (first use only)")
    export(
        card.name,
        target,
        weights=weights,
        random_init=weights is None,
        fmt=fmt,
        precision=precision,
        calibration_size=calibration_size if precision == "int8" else None,
        fidelity_floor=0.0 if precision != "f32" else None,
        fidelity_images=1,  # the bench scores every artifact itself, on its own images
        progress=progress,
    )
    return target
