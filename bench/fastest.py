"""The fastest precision per variant on this CPU, measured: what `--precision auto` picks.

The rule is `xdepth.model.cache.choose_precision`, the one `--precision auto` applies: the
fastest model-only rate wins unless a more precise artifact is within its margin. The
candidates are the precisions this CPU computes natively (a bf16 artifact that runs f32
here is the f32 artifact again, slower to compile: it is no candidate), and those that
miss their fidelity floor against the fp32 reference are dropped. With random weights the
floors cannot be judged (fidelity is numerical drift there), so nothing is dropped and the
record says so.
"""

from __future__ import annotations

from typing import Any

from xdepth.model.cache import choose_precision


def _floors() -> dict[str, float]:
    from xdepth.export.fidelity import DEFAULT_DELTA1_FLOORS

    return dict(DEFAULT_DELTA1_FLOORS)


def fastest_precisions(cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: each native precision's best model-only images/s, what was dropped
    and why, and the chosen format:precision."""
    floors = _floors()
    out: dict[str, dict[str, Any]] = {}
    for cell in cells:
        if cell["contender"] != "xdepth" or cell["mode"] != "model-only" or cell.get("error"):
            continue
        record = out.setdefault(
            cell["variant"],
            {"random_init": cell["random_init"], "rates": {}, "not_native": {}, "dropped": {}},
        )
        precision, ran = cell["precision"], cell.get("effective_precision") or cell["precision"]
        name = f"{cell['format']}:{precision}"
        if ran != precision:
            record["not_native"][name] = f"runs {ran} on this CPU"
            continue
        rate = cell["images_per_s"]["median"]
        record["rates"][name] = max(rate, record["rates"].get(name, 0.0))
        delta1 = (cell.get("fidelity") or {}).get("delta1")
        floor = floors.get(precision)
        if not cell["random_init"] and floor is not None and delta1 is not None and delta1 < floor:
            record["dropped"][name] = f"delta1 {delta1:.4f} < floor {floor}"
    for record in out.values():
        eligible = {
            name: rate for name, rate in record["rates"].items() if name not in record["dropped"]
        }
        record["chosen"] = _choose(eligible) if eligible else None
        record["floors"] = (
            "not judged: random weights (fidelity is numerical drift)"
            if record["random_init"]
            else {
                "f32": "max relative error 1e-4",
                **{k: f"delta1 >= {v}" for k, v in floors.items()},
            }
        )
        record["rule"] = "xdepth.model.cache.choose_precision (what --precision auto applies)"
    return out


def _choose(rates: dict[str, float]) -> str:
    """choose_precision over format:precision names (one format per precision here; the
    fastest format of a precision stands for it)."""
    by_precision: dict[str, tuple[float, str]] = {}
    for name, rate in rates.items():
        precision = name.split(":")[1]
        if rate > by_precision.get(precision, (0.0, ""))[0]:
            by_precision[precision] = (rate, name)
    chosen = choose_precision({p: rate for p, (rate, _) in by_precision.items()})
    return by_precision[chosen][1]


def fastest_lines(fastest: dict[str, dict[str, Any]]) -> list[str]:
    """One line per variant: the choice and the rates behind it."""
    lines = []
    for variant, record in sorted(fastest.items()):
        rates = ", ".join(f"{n} {_rate(r)}" for n, r in sorted(record["rates"].items()))
        skipped = [
            f"{n} ({why})" for n, why in {**record["not_native"], **record["dropped"]}.items()
        ]
        extra = f"; not candidates: {', '.join(skipped)}" if skipped else ""
        random = " (random init: fidelity floors not judged)" if record["random_init"] else ""
        lines.append(
            f"fastest on this CPU for {variant}: {record['chosen']}{random} "
            f"(model-only images/s: {rates}{extra})"
        )
    return lines


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"
