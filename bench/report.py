"""Reading `xdepth bench` results: cells, CSV, the Pareto plot and the README table.

    python -m xdepth.bench.report --readme README.md     # rewrite the table from results
    python -m xdepth.bench.report --check README.md      # exit 1 if it is out of date
    python -m xdepth.bench.report --results DIR --table  # print the table of DIR's results

`load_results` and `pareto_figure` are the public entry points for notebooks. The README
table is generated from the committed JSON between ``<!-- bench-table:start -->`` and
``<!-- bench-table:end -->``; it is never edited by hand.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xdepth.bench.common import RESULTS_DIR
from xdepth.bench.schema import SUITE
from xdepth.eval.datasets import DATASETS
from xdepth.post import write_atomic

START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
CONTEXT_KEYS = (
    "result_file", "machine", "cpu_model", "cpu", "threads_used", "command", "started_utc",
    "peaks",
)  # fmt: skip
CSV_LIBRARIES = ("torch", "transformers", "openvino", "nncf", "numpy", "xdepth")


def load_results(path: str | Path) -> list[dict[str, Any]]:
    """Every cell of a results JSON file, or of all bench result files under a folder.

    Each cell also carries where it came from: result_file, machine (the folder: it names
    the CPU, its ISA and the threads), cpu_model, cpu, threads_used, command, started_utc
    and the run's matmul peaks. Other result kinds in the folder are skipped. Cells of
    schema 1 measured memory in the bench process: that figure moves to bench_rss_mb.
    """
    path = Path(path)
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    cells: list[dict[str, Any]] = []
    for file in files:
        record = json.loads(file.read_text(encoding="utf-8"))
        if record.get("suite") != SUITE:
            if not path.is_dir():
                raise ValueError(f"{file}: not an xdepth bench result (no suite {SUITE!r})")
            continue
        env = record["environment"]
        context = {
            "result_file": file.name,
            "machine": file.parent.name if path.is_dir() else env["machine"],
            "cpu_model": env["cpu_model"],
            "cpu": env.get("cpu"),
            "threads_used": env.get("threads") or (record.get("settings") or {}).get("threads"),
            "command": record["command"],
            "started_utc": env["started_utc"],
            "peaks": record.get("peaks"),
        }
        for cell in record["cells"]:
            if record.get("schema_version", 1) < 2:
                cell = cell | {"bench_rss_mb": cell.get("peak_rss_mb"), "peak_rss_mb": None}
            cells.append(cell | context)
    return cells


def _label(cell: dict[str, Any]) -> str:
    fmt = {"openvino": "OV", "transformers": "HF", "torch": "torch"}.get(cell["format"], "")
    who = "" if cell["contender"] == "xdepth" else f"{cell['contender']} "
    random = " (random init)" if cell["random_init"] else ""
    return f"{cell['variant']} {who}{fmt} {cell['precision']}{random}"


def accuracy_axis(cells: list[dict[str, Any]]) -> tuple[tuple[str, ...], str]:
    """The Pareto plot's x: delta1 on the first benchmark of --eval-data when the cells
    carry one (real accuracy), else delta1 against the fp32 reference."""
    for name, spec in DATASETS.items():
        if any(_get(cell, "benchmarks", name, "delta1") is not None for cell in cells):
            return ("benchmarks", name, "delta1"), f"accuracy: delta1 on {spec.title} (xdepth eval)"
    return ("fidelity", "delta1"), "fidelity: delta1 against the fp32 reference (same images)"


def pareto_points(
    cells: list[dict[str, Any]], axis: tuple[str, ...] = ("fidelity", "delta1")
) -> list[dict[str, Any]]:
    """One model-only cell per variant, contender, format and precision: the fastest."""
    best: dict[tuple, dict[str, Any]] = {}
    for cell in cells:
        if cell["mode"] != "model-only" or cell.get("error") or _get(cell, *axis) is None:
            continue
        key = (cell["variant"], cell["contender"], cell["format"], cell["precision"])
        rate = cell["images_per_s"]["median"]
        if key not in best or rate > best[key]["images_per_s"]["median"]:
            best[key] = cell
    return [best[key] for key in sorted(best)]


def pareto_figure(cells: list[dict[str, Any]]) -> Any:
    """images/s (log) against delta1 vs fp32, one labelled point per variant and precision.

    Random-init points are hollow: their speed is real, their fidelity only numerical drift.
    The dashed line per variant joins the points no other point beats on both axes.
    """
    # A bare Figure renders through its own Agg canvas: no pyplot, no global backend switch.
    from matplotlib.figure import Figure

    axis, x_label = accuracy_axis(cells)
    points = pareto_points(cells, axis)
    figure = Figure(figsize=(9, 6), layout="constrained")
    axes = figure.add_subplot()
    variants = sorted({p["variant"] for p in points})
    colours = {v: f"C{i % 10}" for i, v in enumerate(variants)}
    for point in points:
        x, y = _get(point, *axis), point["images_per_s"]["median"]
        colour = colours[point["variant"]]
        face = "none" if point["random_init"] else colour
        axes.scatter([x], [y], s=60, edgecolors=colour, facecolors=face, linewidths=1.5)
        axes.annotate(_label(point), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    for variant in variants:
        front = _front([p for p in points if p["variant"] == variant], axis)
        xs = [_get(p, *axis) for p in front]
        ys = [p["images_per_s"]["median"] for p in front]
        axes.plot(xs, ys, linestyle="--", linewidth=0.8, color=colours[variant])
    if points:
        axes.set_yscale("log")
    axes.margins(x=0.25)  # room for the labels right of the points
    axes.set_xlabel(x_label)
    axes.set_ylabel("model-only images/s (median of timed runs)")
    axes.set_title("xdepth bench: throughput against fidelity (hollow = random init)")
    axes.grid(True, which="both", alpha=0.3)
    return figure


def _front(points: list[dict[str, Any]], axis: tuple[str, ...]) -> list[dict[str, Any]]:
    """Points not beaten on both accuracy and speed, by decreasing accuracy."""
    ordered = sorted(points, key=lambda p: (-_get(p, *axis), -_rate(p)))
    front, fastest = [], 0.0
    for point in ordered:
        if _rate(point) > fastest:
            front.append(point)
            fastest = _rate(point)
    return front


def _rate(cell: dict[str, Any]) -> float:
    return cell["images_per_s"]["median"]


def _get(cell: dict[str, Any], *keys: str) -> Any:
    value: Any = cell
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "images_per_s_median": ("images_per_s", "median"),
    "images_per_s_min": ("images_per_s", "min"),
    "images_per_s_max": ("images_per_s", "max"),
    "latency_p50_ms": ("latency_ms", "p50"),
    "latency_p95_ms": ("latency_ms", "p95"),
    "first_result_cold_s": ("first_result_s", "cold_cache"),
    "first_result_warm_s": ("first_result_s", "warm_cache"),
    **{f"fidelity_{k}": ("fidelity", k) for k in ("delta1", "abs_rel", "mask_iou")},
    **{f"accuracy_{k}": ("accuracy", k) for k in ("delta1", "abs_rel", "mask_iou")},
    **{f"{d}_{k}": ("benchmarks", d, k) for d in DATASETS for k in ("abs_rel", "delta1")},
}
CSV_PLAIN = (
    "variant", "random_init", "weights", "contender", "format", "precision",
    "effective_precision", "mode", "streams", "requests", "threads", "images_per_run", "runs",
    "peak_rss_mb", "steady_rss_mb", "artifact_mb", "bench_rss_mb", "rss_added_mb",
    "gflop_per_image", "achieved_tflops", "peak_key", "pct_of_peak", "error",
)  # fmt: skip


def csv_text(payload: dict[str, Any]) -> str:
    """One row per cell, with the command, CPU model and library versions on every row."""
    env = payload["environment"]
    libraries = {f"lib_{name}": env["libraries"].get(name) for name in CSV_LIBRARIES}
    out = io.StringIO()
    cpu = env.get("cpu") or {}
    where = {
        "cpu_generation": cpu.get("generation"),
        "isa": " / ".join(f"{k} {v}" for k, v in (cpu.get("isa") or {}).items()),
    }
    columns = [*CSV_PLAIN, *CSV_COLUMNS, "command", "cpu_model", *where, "machine", *libraries]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for cell in payload["cells"]:
        row = {key: cell.get(key) for key in CSV_PLAIN}
        row |= {name: _get(cell, *keys) for name, keys in CSV_COLUMNS.items()}
        row |= {"command": payload["command"], "cpu_model": env["cpu_model"]}
        writer.writerow(row | where | {"machine": env["machine"]} | libraries)
    return out.getvalue()


def write_companions(json_path: Path, payload: dict[str, Any], plot: bool = True) -> None:
    """The CSV and (optionally) the Pareto PNG next to a result JSON."""
    write_atomic(json_path.with_suffix(".csv"), csv_text(payload).encode())
    if plot:
        buffer = io.BytesIO()
        pareto_figure(payload["cells"]).savefig(buffer, format="png", dpi=120)
        write_atomic(json_path.with_name(json_path.stem + "-pareto.png"), buffer.getvalue())


def update_readme(readme: Path, results: Path) -> tuple[str, str]:
    """(current text, text with the block regenerated from `results`)."""
    from xdepth.bench.table import readme_table

    text = readme.read_text(encoding="utf-8")
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"{readme}: needs exactly one {START} and one {END} line")
    label = f"`{_shown(results)}`"
    block = readme_table(load_results(results), label)
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return text, f"{head}{START}\n{block}{END}{tail}"


def _shown(path: Path) -> str:
    """A results path as the README shows it: relative to the repository when inside it."""
    root = RESULTS_DIR.parent.parent
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xdepth.bench.report", description=__doc__)
    parser.add_argument("--readme", type=Path, help="rewrite this README's bench table")
    parser.add_argument("--check", type=Path, help="exit 1 if this README's table is stale")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="file or folder")
    parser.add_argument("--plot", type=Path, help="write the Pareto plot of --results here")
    parser.add_argument("--table", action="store_true", help="print the table of --results")
    args = parser.parse_args(argv)
    if args.table:
        from xdepth.bench.table import readme_table

        print(readme_table(load_results(args.results), f"`{_shown(args.results)}`"), end="")
    if args.plot:
        pareto_figure(load_results(args.results)).savefig(args.plot, dpi=120)
    if args.readme:
        old, new = update_readme(args.readme, args.results)
        if new != old:
            write_atomic(args.readme, new.encode())
        print(f"{args.readme}: bench table {'rewritten' if new != old else 'already current'}")
    if args.check:
        old, new = update_readme(args.check, args.results)
        if new != old:
            print(f"{args.check}: bench table is stale; run {parser.prog} --readme {args.check}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
