"""`xdepth export --precision auto`: the precision that is fastest on this CPU, measured.

Every precision the format offers and this CPU computes natively (xdepth.model_cache.
native_precisions) is exported next to the destination; those under their fidelity floor
or not repeatable are dropped; the rest are measured on this CPU with the same code as
`xdepth run --precision auto` (xdepth.model_cache.measure_rates, choose_precision), and the
fastest moves to the destination. The others are deleted.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xdepth.errors import XDepthError
from xdepth.export.artifact import FidelityError, NondeterministicRuntime, export
from xdepth.formats import get_format
from xdepth.model_cache import choose_precision, measure_rates, native_precisions


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
    exported: dict[str, Path] = {}
    dropped: dict[str, str] = {}
    try:
        for precision in offered:
            target = out.with_name(f".{out.name}.auto-{precision}")
            try:
                exported[precision] = export(
                    variant_or_dir, target, fmt=fmt, precision=precision, progress=say, **options
                )
            except (FidelityError, NondeterministicRuntime) as exc:
                dropped[precision] = str(exc)
                say(f"{precision}: not used ({exc})")
        if not exported:
            raise XDepthError(f"no precision of {', '.join(offered)} passed its checks: {dropped}")
        rates = measure_rates(exported, say)
        chosen = choose_precision(rates)
        if out.exists():
            shutil.rmtree(out)
        exported.pop(chosen).rename(out)
        said = ", ".join(f"{p} {r:.3g}" for p, r in rates.items())
        say(f"{chosen} is the fastest on this CPU ({said} images/s, model only)")
        return out, {"model_images_per_s": rates, "dropped": dropped, "chosen": chosen}
    finally:
        for folder in exported.values():
            shutil.rmtree(folder, ignore_errors=True)
