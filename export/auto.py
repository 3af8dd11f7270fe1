"""`xdepth export --precision auto`: the precision that is fastest on this CPU, measured.

Every precision the format offers and this CPU computes natively (xdepth.model.cache.
native_precisions) is exported next to the destination; those under their fidelity floor
or not repeatable are dropped; the rest are measured on this CPU with the same code as
`xdepth run --precision auto` (xdepth.model.cache.measure_rates, choose_precision), and the
fastest moves to the destination. The others are deleted.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xdepth.export.exporter import FidelityError, NondeterministicRuntime, export
from xdepth.model.cache import native_precisions, race
from xdepth.model.formats import get_format


def export_fastest(
    variant_or_dir: str | Path,
    out_dir: str | Path,
    *,
    fmt: str = "openvino",
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> tuple[Path, dict[str, Any]]:
    """Export the fastest precision within the floors into `out_dir`; returns it and what
    was measured ({"model_images_per_s", "dropped", "chosen"})."""
    say = progress or (lambda message: None)
    out = Path(out_dir)
    offered = [p for p in native_precisions() if p in get_format(fmt).precisions]

    def export_one(precision: str) -> Path:
        target = out.with_name(f".{out.name}.auto-{precision}")
        return export(variant_or_dir, target, fmt=fmt, precision=precision, progress=say, **options)

    try:
        found = race(offered, export_one, (FidelityError, NondeterministicRuntime), say)
        if out.exists():
            shutil.rmtree(out)
        found.exported.pop(found.chosen).rename(out)
        return out, {"model_images_per_s": found.rates, "dropped": found.dropped,
                     "chosen": found.chosen}  # fmt: skip
    finally:
        for precision in offered:  # the candidates not chosen, and any left by a failure
            shutil.rmtree(out.with_name(f".{out.name}.auto-{precision}"), ignore_errors=True)
