"""The `xdepth` command: a thin layer over the library. `main(argv) -> exit code`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from xdepth.errors import XDepthError
from xdepth.registry import DEFAULT_VARIANT, all_cards

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _cmd_variants(args: argparse.Namespace) -> int:
    from xdepth.weights import local_weights

    cards = list(all_cards().values())
    if not args.all:
        cards = [c for c in cards if not c.test_only]
    header = ("name", "params", "input", "output", "licence", "weights")
    rows = [header]
    for card in cards:
        params = f"{card.params_published / 1e6:.1f} M" if card.params_published else "?"
        found = local_weights(card)
        rows.append(
            (
                card.name,
                params,
                f"{card.preprocess.height}x{card.preprocess.width}",
                card.output,
                card.licence,
                str(found) if found else "not found",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _reference_backend(args: argparse.Namespace):
    """The transformers fp32 reference backend (imports torch only when asked for)."""
    from xdepth.export.load import load_model
    from xdepth.export.reference import ReferenceBackend

    loaded = load_model(args.variant, weights=args.weights, random_init=args.random_init)
    return ReferenceBackend(loaded, threads=args.threads)


def _cmd_run(args: argparse.Namespace) -> int:
    from xdepth.inputs import collect_inputs
    from xdepth.runner import ClipSettings, run

    backend = _reference_backend(args)  # a bad variant or missing weights fail first
    items = collect_inputs(args.inputs)
    if not items:
        print("xdepth run: the inputs hold no image files", file=sys.stderr)
        return EXIT_USAGE
    summary = run(backend, items, Path(args.output), ClipSettings(threshold=args.threshold))
    print(summary.describe())
    return EXIT_FAILED if summary.ok == 0 else EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from xdepth.demo import run_demo

    backend = _reference_backend(args)
    summary = run_demo(backend, Path(args.output), count=args.count)
    for key in ("images", "mask_iou_mean", "delta1_mean", "abs_rel_mean", "seconds"):
        print(f"{key:>14}: {summary[key]}")
    print(f"{'images_per_s':>14}: {summary['images_per_s']}")
    print(f"wrote {args.output}/summary.json and {args.output}/contact_sheet.png")
    return EXIT_OK


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--variant", default=DEFAULT_VARIANT, help="variant name, card file or HF-format folder"
    )
    parser.add_argument("--weights", help="folder with the variant's weights (HF format)")
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="random weights (for speed tests only; flagged in every output)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xdepth",
        description="Depth maps and depth-clipped images, fast, on CPUs.",
        epilog="Exit codes: 0 success, 1 failure (run: no image succeeded), 2 usage error.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    variants = sub.add_parser("variants", help="list the model variants and local weights")
    variants.add_argument("--all", action="store_true", help="include tiny test variants")
    variants.set_defaults(func=_cmd_variants)

    run = sub.add_parser("run", help="depth and clipped images for files, folders or globs")
    run.add_argument("inputs", nargs="+", help="image files, folders (recursive) or globs")
    run.add_argument("-o", "--output", required=True, help="output folder")
    run.add_argument(
        "--threshold",
        type=float,
        default=45.0,
        help="keep pixels whose max-scaled depth (0-255) is above this (default 45)",
    )
    _add_model_args(run)
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="run the embedded model on synthetic scenes")
    demo.add_argument("-o", "--output", required=True, help="output folder")
    demo.add_argument("--count", type=int, default=24, help="number of held-out scenes")
    _add_model_args(demo)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except XDepthError as exc:
        print(f"xdepth {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
