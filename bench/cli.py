"""`xdepth bench`: the command-line face of xdepth.bench.suite (imports no torch or openvino).

The `xdepth` command registers this subcommand in every install; the suite, torch and
openvino are imported only when it runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from xdepth.errors import XDepthError
from xdepth.export.cli import _positive

FORMATS = ("openvino:f32", "openvino:bf16", "openvino:int8", "torch:bf16")
PEERS = ("seed", "pipeline", "compile", "benchmark_app")
MODES = ("model-only", "end-to-end")
QUICK = {
    "variants": ["xdepth-tiny", "tiny-dpt-beit"],
    "formats": ["openvino:f32", "openvino:bf16", "openvino:int8"],
    "streams": ["auto"],
    "images": 8,
    "peers": ["seed", "pipeline", "benchmark_app"],
}
# What --quick leaves out, said in its output and its result file.
QUICK_SKIPS = (
    "real-size variants (tiny models only: their rates show overheads more than kernels)",
    "torch.compile peer (compiling takes minutes; --peers compile adds it)",
    "torch:bf16 format (AOTInductor export; --formats torch:bf16 adds it)",
    "OpenVINO streams 1 (auto only)",
)
FULL = {
    "variants": None,
    "formats": list(FORMATS),
    "streams": ["1", "auto"],
    "images": 4,
    "peers": list(PEERS),
}
DESCRIPTION = """\
Throughput against accuracy, on this machine, next to the peers and the hardware limit.

A matrix of variants x format:precision x (model-only, end-to-end) x OpenVINO streams. Per
cell: images/s (median of --runs timed runs after --warmup, with min and max), latency p50
and p95, peak resident memory, time to a first result with a cold and a warm compile cache,
and fidelity against the fp32 reference on the same images (delta1, AbsRel, mask IoU); for
real weights (the embedded xdepth-tiny) accuracy against ground truth too. In the same run:
the matmul peak per precision, GFLOP per image and each cell's share of the peak, and the
peers (the seed recipe, transformers' pipeline, torch.compile bf16, OpenVINO's
benchmark_app on the same IR).

Real-size variants run with random weights unless --weights is given: their speed is real,
their fidelity only shows numerical drift. --quick (xdepth-tiny and tiny-dpt-beit, no
torch.compile) takes under 5 minutes on 2 cores and lists what it left out. Each xdepth
cell's memory is the engine's alone, in a process of its own (cold and warm compile cache;
--no-memory skips it). The fastest native precision per variant within the fidelity floors
is reported: what `--precision auto` picks. The full run exports and times every real-size
variant: about
a day on 2 cores; DPT-BEiT-L-512 alone with --formats openvino:bf16,openvino:int8 about 2
hours (exports 15 minutes, the rest timing). Results: bench/results/<machine>/<date>-<name>
.json, .csv and -pareto.png; `python -m xdepth.bench.report --readme README.md` then
rewrites the README's table from them."""


def _listed(choices: tuple[str, ...] | None) -> Any:
    """Comma-separated values (repeatable), each checked against `choices`."""

    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if choices is not None and v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"{text!r}: choose from {', '.join(choices or ())} (comma-separated)"
            )
        return values

    return parse


def _streams(text: str) -> list[str]:
    values = _listed(None)(text)
    for value in values:
        if value != "auto" and not (value.isdigit() and int(value) > 0):
            raise argparse.ArgumentTypeError(f"streams {value!r}: a positive integer or 'auto'")
    return values


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--quick", action="store_true", help="tiny models, a few minutes (default: full)")
    add("--variants", type=_listed(None), action="extend", help="default: see --quick/full")
    add("--formats", type=_listed(FORMATS), action="extend", help=", ".join(FORMATS))
    add("--modes", type=_listed(MODES), default=None, help="default: both")
    add("--streams", type=_streams, help="OpenVINO streams, e.g. 1,2,auto (auto: THROUGHPUT)")
    add("--peers", default=None, help=f"comma-separated of {', '.join(PEERS)}, or none")
    add("--images", type=_positive, help="images per timed run (quick 8, full 4)")
    add("--runs", type=_positive, default=5, help="timed runs per cell (at least 5)")
    add("--warmup", type=int, default=1, help="untimed runs before timing")
    add("--threads", type=_positive, help="CPU threads for every contender (default: all)")
    add("--weights", help="weights folder for the (single) variant; default: random init")
    add("--calibration-size", type=_positive, default=32, help="int8 calibration images")
    add("--no-ceiling", action="store_true", help="skip the matmul peaks")
    add("--no-memory", action="store_true", help="skip the engine's own-process memory")
    add("--artifacts-dir", help="exported artifacts, reused (default ~/.cache/xdepth/bench)")
    add("--results-dir", help="results root (default bench/results or $XDEPTH_BENCH_RESULTS)")
    add("--name", help="result name (default bench-quick or bench)")
    add("--no-plot", action="store_true", help="write no Pareto plot")
    add(
        "--eval-data",
        type=_eval_data,
        help="real accuracy per artifact: nyuv2=PATH[@SPLIT],kitti=PATH,... (xdepth eval's "
        "sets and protocol; the Pareto plot then uses the first set's delta1)",
    )
    add("--eval-images", type=_positive, help="score the first N samples of each set only")


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting of a run, defaults filled in from --quick or the full preset."""
    preset = QUICK if args.quick else FULL
    peers = preset["peers"] if args.peers is None else _peers(args.peers)
    if args.runs < 5:
        raise XDepthError("--runs must be at least 5 (medians of fewer runs are noise)")
    if args.weights and len(args.variants or []) != 1:
        raise XDepthError("--weights needs exactly one --variants name")
    return {
        "quick": bool(args.quick),
        "variants": args.variants or preset["variants"],
        "formats": args.formats or preset["formats"],
        "modes": args.modes or list(MODES),
        "streams": [s if s == "auto" else int(s) for s in args.streams or preset["streams"]],
        "peers": list(peers),
        "images": args.images or preset["images"],
        "runs": args.runs,
        "warmup": args.warmup,
        "threads": args.threads,
        "weights": args.weights,
        "calibration_size": args.calibration_size,
        "ceiling": not args.no_ceiling,
        "eval_data": getattr(args, "eval_data", None),
        "eval_images": getattr(args, "eval_images", None),
        "memory": not args.no_memory,
        "skipped": _skipped(args),
    }


def _eval_data(text: str) -> dict[str, Any]:
    from xdepth.bench.eval_cells import parse_eval_data

    return parse_eval_data(text)


def _skipped(args: argparse.Namespace) -> list[str]:
    """What --quick leaves out that the options did not add back."""
    if not args.quick:
        return []
    added = {
        QUICK_SKIPS[0]: bool(args.variants),
        QUICK_SKIPS[1]: args.peers is not None and "compile" in args.peers,
        QUICK_SKIPS[2]: "torch:bf16" in (args.formats or []),
        QUICK_SKIPS[3]: bool(args.streams),
    }
    return [what for what, back in added.items() if not back]


def _peers(text: str) -> list[str]:
    if text.strip() == "none":
        return []
    return _listed(PEERS)(text)


def run_bench(args: argparse.Namespace) -> int:
    import shlex
    import sys
    from pathlib import Path

    from xdepth.bench.suite import main_from_args

    return main_from_args(args, shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))


def add_bench_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `xdepth bench` on the `xdepth` command's subparsers."""
    parser = sub.add_parser(
        "bench",
        help="throughput against accuracy: variants x precisions x peers x the matmul peak",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bench_arguments(parser)
    parser.set_defaults(func=run_bench)
    return parser
