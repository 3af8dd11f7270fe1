"""The README's performance table and the console summary, generated from bench cells.

Deterministic: the same result files give the same text, byte for byte, so a test can
check that the committed README matches the committed results.
"""

from __future__ import annotations

from typing import Any

from xdepth.eval.datasets import DATASETS

CONTENDER_ORDER = ("xdepth", "benchmark_app", "seed", "pipeline", "compile")
CONTENDER_NAMES = {
    "xdepth": "xdepth",
    "benchmark_app": "OpenVINO benchmark_app",
    "seed": "seed recipe (transformers eager)",
    "pipeline": "transformers pipeline",
    "compile": "torch.compile",
}
RANDOM_NOTE = (
    "Rows marked *random init* have real speed, but their fidelity only shows numerical "
    "drift; accuracy against ground truth is given for real weights only (the shipped "
    "xdepth-tiny)."
)


def newest_cells(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest measurement of each cell (same machine, model, contender and settings)."""
    newest: dict[tuple, dict[str, Any]] = {}
    for cell in cells:
        key = tuple(
            str(cell.get(k))
            for k in (
                "machine", "variant", "weights", "contender", "format", "precision", "mode",
                "streams", "threads",
            )
        )  # fmt: skip
        if key not in newest or cell["started_utc"] > newest[key]["started_utc"]:
            newest[key] = cell
    return sorted(newest.values(), key=_order)


def _order(cell: dict[str, Any]) -> tuple:
    who = cell["contender"]
    rank = CONTENDER_ORDER.index(who) if who in CONTENDER_ORDER else len(CONTENDER_ORDER)
    return (
        cell["machine"], cell["variant"], cell["mode"] != "model-only", rank, cell["format"],
        cell["precision"], cell.get("streams") or 0,
    )  # fmt: skip


def _num(value: float | None, digits: int = 3) -> str:
    """Significant digits, but whole numbers from 100 up (no exponents in the table)."""
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"


def _fixed(value: float | None, places: int = 3) -> str:
    return "-" if value is None else f"{value:.{places}f}"


def precision_label(cell: dict[str, Any]) -> str:
    """'openvino bf16', or 'openvino bf16 (ran f32)' where the CPU computed less."""
    ran = cell.get("effective_precision") or cell["precision"]
    extra = f" (ran {ran})" if ran != cell["precision"] else ""
    return f"{cell['format']} {cell['precision']}{extra}"


def _share(cell: dict[str, Any]) -> str:
    """The share of the peak of what the cell ran in; none where that is not native."""
    pct, peaks = cell.get("pct_of_peak"), cell.get("peaks") or {}
    if pct is not None:
        return f"{pct:.1f} % {cell['peak_key']}"
    ran = cell.get("effective_precision") or cell["precision"]
    native = peaks.get("native") or {}
    if native.get({"f32": "fp32"}.get(ran, ran)) is False:
        return f"{ran} not native here"
    return "-"


def _memory(cell: dict[str, Any]) -> str:
    """Engine peak / steady MB (artifact MB), measured in a process of its own."""
    if cell.get("peak_rss_mb") is None:
        return "-"
    stored = cell.get("artifact_mb")
    tail = f" ({_num(stored, 4)})" if stored is not None else ""
    return f"{_num(cell['peak_rss_mb'], 4)} / {_num(cell.get('steady_rss_mb'), 4)}{tail}"


def _row(cell: dict[str, Any], sets: list[str]) -> str:
    if cell.get("error"):
        what = precision_label(cell)
        failed = f"| {_variant(cell)} | {what} | failed: {cell['error'][:80]} |"
        return failed + " |" * (8 + len(sets))
    rate, lat = cell["images_per_s"], cell["latency_ms"]
    first = cell.get("first_result_s") or {}
    fid, acc = cell.get("fidelity") or {}, cell.get("accuracy") or {}
    cells = [
        _variant(cell),
        f"{CONTENDER_NAMES.get(cell['contender'], cell['contender'])}, {precision_label(cell)}",
        cell["mode"],
        str(cell.get("streams") or "-"),
        f"{_num(rate['median'])} ({_num(rate['min'])}-{_num(rate['max'])})",
        f"{_num(lat['p50'])} / {_num(lat['p95'])}",
        _memory(cell),
        f"{_num(first.get('cold_cache'))} / {_num(first.get('warm_cache'))}",
        _share(cell),
        f"{_fixed(fid.get('delta1'))} / {_num(fid.get('abs_rel'))} / {_fixed(fid.get('mask_iou'))}",
        f"{_fixed(acc.get('delta1'))} / {_fixed(acc.get('mask_iou'))}" if acc else "-",
    ]
    scored = cell.get("benchmarks") or {}
    for name in sets:
        got = scored.get(name)
        cells.append(f"{_fixed(got.get('abs_rel'))} / {_fixed(got.get('delta1'))}" if got else "-")
    return "| " + " | ".join(cells) + " |"


def benchmark_sets(cells: list[dict[str, Any]]) -> list[str]:
    """The depth benchmarks (`bench --eval-data`) any of `cells` was scored on, in
    `xdepth eval`'s order: each gets a column of its own."""
    found = {name for cell in cells for name in cell.get("benchmarks") or {}}
    return [name for name in DATASETS if name in found]


def table_header(sets: list[str]) -> str:
    """HEADER, with an AbsRel / delta1 column per benchmark in `sets`."""
    if not sets:
        return HEADER
    head, rule = HEADER.split("\n")
    extra = "".join(f" | {DATASETS[name].title}: AbsRel / delta1" for name in sets)
    return f"{head.removesuffix(' |')}{extra} |\n{rule}{'---|' * len(sets)}"


def _variant(cell: dict[str, Any]) -> str:
    return f"{cell['variant']} *random init*" if cell["random_init"] else cell["variant"]


HEADER = (
    "| variant | contender, format precision | mode | streams | images/s median (min-max) "
    "| latency p50 / p95 ms | engine RSS peak / steady MB (artifact MB) "
    "| first result cold / warm s | of matmul peak "
    "| vs fp32: delta1 / AbsRel / mask IoU | vs truth: delta1 / mask IoU |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


UNITS = {"fp32": "TFLOP/s", "bf16": "TFLOP/s", "int8": "TOP/s"}


def _peaks_line(cell: dict[str, Any]) -> str:
    peaks = cell.get("peaks")
    if not peaks:
        return "Matmul peaks: not measured in this run."
    amx = "with AMX" if peaks.get("amx") else "no AMX on this CPU"
    parts = []
    for key, value in peaks["tflops"].items():
        if value is None:
            parts.append(f"{key} not native on this CPU (no peak, no share)")
        else:
            how = (peaks.get("method") or {}).get(key, "")
            how = f"; {how}" if how.startswith("OpenVINO") or "oneDNN" in how else ""
            parts.append(f"{key} {_num(value)} {UNITS[key]} ({peaks['isa'][key]}{how})")
    return (
        f"Matmul peaks on this CPU's native kernels ({peaks['size']}-square, "
        f"{peaks['threads']} thread(s), {amx}): {', '.join(parts)}."
    )


def machine_line(cell: dict[str, Any]) -> str:
    """Which CPU a group ran on: model, generation, family/model, ISA per precision."""
    cpu = cell.get("cpu") or {}
    isa = cpu.get("isa") or {}
    generation = cpu.get("generation") or "generation not recorded"
    ids = f"family {cpu['family']} model {cpu['model_id']}" if cpu.get("family") else ""
    isa_text = ", ".join(f"{k} {v}" for k, v in isa.items()) or "ISA not recorded"
    where = f"{generation}, {ids}" if ids else generation
    return f"{cell['cpu_model']} ({where}): {isa_text}; {cell.get('threads_used') or '?'} thread(s)"


def readme_table(cells: list[dict[str, Any]], results_label: str) -> str:
    """The README block, one group per machine: its CPU, sources, peaks, the table,
    benchmark_app ratios and the fastest precision per variant."""
    rows = newest_cells(cells)
    lines = [
        f"Generated by `python -m xdepth.bench.report --readme README.md` from {results_label}; "
        "do not edit by hand. " + RANDOM_NOTE + " " + MEMORY_NOTE,
        "",
    ]
    for machine in sorted({c["machine"] for c in rows}):
        group = [c for c in rows if c["machine"] == machine]
        lines += [f"#### `{machine}`", "", f"{machine_line(group[0])}.", ""]
        for name, command in sorted({(c["result_file"], c["command"]) for c in group}):
            lines.append(f"- `{machine}/{name}`: `{command}`")
            first = next(c for c in group if c["result_file"] == name)
            lines.append(f"  - {_peaks_line(first)}")
        sets = benchmark_sets(group)
        lines += ["", table_header(sets), *(_row(c, sets) for c in group), ""]
        lines += benchmark_app_lines(group)
        lines += precision_lines(group)
        every = [c for c in cells if c["machine"] == machine]  # each run whole, not newest
        lines += [f"- {line}" for line in fastest_table_lines(every)]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


MEMORY_NOTE = (
    "Engine memory is `xdepth run`'s work in a process of its own (peak: the larger of a cold "
    "and a warm compile cache; steady: after the run), beside the artifact's bytes; results "
    "from before that measurement show '-' (their figure was the whole bench process's)."
)


def fastest_table_lines(cells: list[dict[str, Any]]) -> list[str]:
    """The fastest native precision per variant and result file: only cells of one run
    are compared, since other work on a shared machine slows runs unequally."""
    from xdepth.bench.fastest import fastest_lines, fastest_precisions

    lines = []
    for name in sorted({c["result_file"] for c in cells}):
        found = fastest_precisions([c for c in cells if c["result_file"] == name])
        lines += [f"{name}: {line}" for line in fastest_lines(found)]
    return lines


BENCHMARK_APP_TARGET = 0.95  # xdepth model-only images/s over benchmark_app's, same IR


def benchmark_app_ratios(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """xdepth's best model-only images/s per OpenVINO artifact over benchmark_app's."""

    def key(cell: dict[str, Any]) -> tuple:
        return tuple(cell.get(k) for k in ("machine", "variant", "weights", "format", "precision"))

    out = []
    for app in [c for c in cells if c["contender"] == "benchmark_app" and not c.get("error")]:
        ours = [
            c["images_per_s"]["median"]
            for c in cells
            if c["contender"] == "xdepth" and c["mode"] == "model-only" and not c.get("error")
            and key(c) == key(app)
        ]  # fmt: skip
        if not ours:
            continue
        ratio = max(ours) / app["images_per_s"]["median"]
        out.append(
            {
                "machine": app.get("machine"),  # known once loaded from a results folder
                "variant": app["variant"],
                "random_init": app["random_init"],
                "precision": app["precision"],
                "xdepth_images_per_s": max(ours),
                "benchmark_app_images_per_s": app["images_per_s"]["median"],
                "ratio": round(ratio, 4),
                "target": BENCHMARK_APP_TARGET,
                "met": ratio >= BENCHMARK_APP_TARGET,
            }
        )
    return out


def benchmark_app_lines(cells: list[dict[str, Any]]) -> list[str]:
    return [
        f"- {r['machine'] or 'this run'}, {_variant(r)} OpenVINO {r['precision']}: "
        "xdepth model-only reaches "
        f"{100 * r['ratio']:.0f} % of benchmark_app on the same IR (target "
        f"{100 * r['target']:.0f} %)"
        for r in benchmark_app_ratios(cells)
    ]


BF16_PEAK_TARGET_PCT = 80.0  # bf16 model-only TFLOP/s as a share of the bf16 matmul peak
INT8_OVER_BF16_TARGET = 1.5  # int8 model-only images/s over bf16's, same variant and run


def precision_lines(cells: list[dict[str, Any]]) -> list[str]:
    """Per variant and run: bf16's share of its matmul peak, and int8's speed-up over bf16."""
    best: dict[tuple, dict[str, dict[str, Any]]] = {}
    for cell in cells:
        if cell["contender"] != "xdepth" or cell["mode"] != "model-only" or cell.get("error"):
            continue
        key = (cell["machine"], cell["result_file"], cell["variant"])
        held = best.setdefault(key, {}).get(cell["precision"])
        if held is None or cell["images_per_s"]["median"] > held["images_per_s"]["median"]:
            best[key][cell["precision"]] = cell
    lines = []
    for key in sorted(best):
        bf16, int8 = best[key].get("bf16"), best[key].get("int8")
        if bf16 is not None and (bf16.get("effective_precision") or "bf16") != "bf16":
            bf16 = None  # ran f32: neither a bf16 share nor a bf16 baseline
        if bf16 is not None and bf16.get("pct_of_peak") is not None:
            lines.append(
                f"- {key[0]}, {_variant(bf16)} OpenVINO bf16 model-only: "
                f"{bf16['pct_of_peak']:.1f} % of "
                f"the bf16 matmul peak (target {BF16_PEAK_TARGET_PCT:.0f} %)"
            )
        if bf16 is not None and int8 is not None:
            ratio = int8["images_per_s"]["median"] / bf16["images_per_s"]["median"]
            lines.append(
                f"- {key[0]}, {_variant(int8)} OpenVINO int8 model-only: {ratio:.2f}x bf16 "
                f"(target {INT8_OVER_BF16_TARGET}x)"
            )
    return lines


def summary_lines(cells: list[dict[str, Any]]) -> list[str]:
    """A short console table: one line per cell."""
    out = []
    for cell in cells:
        name = f"{_variant(cell)} {cell['contender']} {precision_label(cell)}"
        where = f"{cell['mode']} streams={cell.get('streams')}"
        if cell.get("error"):
            out.append(f"{name} {where}: failed: {cell['error']}")
            continue
        fid = cell.get("fidelity") or {}
        pct = cell.get("pct_of_peak")
        out.append(
            f"{name} {where}: {cell['images_per_s']['median']:.4g} images/s, p95 "
            f"{_num(cell['latency_ms']['p95'])} ms, delta1 {_fixed(fid.get('delta1'))}, "
            f"{'-' if pct is None else f'{pct:.1f} %'} of peak"
        )
    return out
