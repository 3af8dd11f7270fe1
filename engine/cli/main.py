"""The `xdepth` command: a thin layer over the library. `main(argv) -> exit code`."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from xdepth.cli.options import (
    RUN_EPILOG,
    add_engine_args,
    add_model_args,
    add_post_args,
    add_ray_args,
    open_model,
    run_options,
    settings_from_args,
)
from xdepth.errors import XDepthError
from xdepth.job.exit_codes import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STORAGE,
    EXIT_USAGE,
)
from xdepth.job.signals import Interrupted, stop_on_signals
from xdepth.job.storage import StorageFault
from xdepth.model.cards import all_cards
from xdepth.model.hardware import PrecisionFallbackWarning

__all__ = ["EXIT_CODES", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]


def _cmd_variants(args: argparse.Namespace) -> int:
    from xdepth.model.weights import local_weights

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


def _cmd_run(args: argparse.Namespace) -> int:
    from xdepth.job.inputs import open_inputs
    from xdepth.job.local import run
    from xdepth.job.storage import check_output

    # Cheap checks first: options, inputs, OUT (writable, free space), then the model.
    settings = settings_from_args(args)
    source = open_inputs(args.inputs, args.relative_to).excluding(args.output)
    for folder in source.skipped_folders:
        _say(
            f"skipping {folder}: it holds the outputs of an earlier xdepth job; "
            "name it as an input to process it"
        )
    if source.total == 0:
        print("xdepth run: the inputs hold no image files", file=sys.stderr)
        return EXIT_USAGE
    check_output(args.output, source.items, settings, args.min_free)
    if args.ray is not None:
        from xdepth.job.ray_job import run_from_args

        summary = run_from_args(args, settings, source)
    else:
        summary = run(open_model(args), source, Path(args.output), settings, **run_options(args))
    print(summary.describe())
    if summary.stopped:
        print(f"xdepth run: {summary.stopped['reason']}", file=sys.stderr)
    return summary.exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    from xdepth.cli.demo import demo_engine, run_demo

    engine = demo_engine(args)
    summary = run_demo(engine, Path(args.output), count=args.count)
    for key in ("images", "mask_iou_mean", "delta1_mean", "abs_rel_mean", "seconds"):
        print(f"{key:>14}: {summary[key]}")
    print(f"{'images_per_s':>14}: {summary['images_per_s']}")
    print(f"{'model':>14}: {summary['model']}")
    print(f"wrote {args.output}/summary.json and {args.output}/contact_sheet.png")
    return EXIT_OK


def _say(message: str) -> None:
    print(f"xdepth: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xdepth",
        description="Depth maps and depth-clipped images, fast, on CPUs.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    # Subcommands, in the order `xdepth --help` lists them.
    variants = sub.add_parser("variants", help="list the model variants and local weights")
    variants.add_argument("--all", action="store_true", help="include tiny test variants")
    variants.set_defaults(func=_cmd_variants)

    # The torch side registers its own subcommand; its module is torch-free until it runs.
    from xdepth.export.cli import add_export_parser

    add_export_parser(sub)

    run = sub.add_parser(
        "run",
        help="depth and clipped images for files, folders, globs and lists",
        description="Depth maps, masks, cutouts and more for many images: pipelined "
        "(decoding, inference and encoding overlap), resumable, one bad file never stops it.",
        epilog=RUN_EPILOG + "\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "inputs",
        nargs="+",
        help="image files, folders (recursive), globs, @LIST / LIST.txt / LIST.lst files of "
        "paths, or - for paths on standard input",
    )
    run.add_argument("-o", "--output", required=True, help="output folder (OUT)")
    add_model_args(run)
    add_post_args(run)
    add_engine_args(run)
    add_ray_args(run)
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser(
        "demo",
        help="run the embedded model on synthetic scenes",
        description="Scores a model on held-out synthetic scenes (landscape, portrait and "
        "square) with ground truth. By default it exports xdepth-tiny on first use to an "
        "OpenVINO artifact at the precision that is fastest on this CPU (cached under "
        "~/.cache/xdepth/artifacts, or $XDEPTH_ARTIFACTS) and runs it on the engine, as "
        "`xdepth run` does; --artifact runs another artifact, --variant another variant, "
        "--reference the transformers fp32 reference.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("-o", "--output", required=True, help="output folder")
    demo.add_argument("--count", type=int, default=24, help="number of held-out scenes")
    add_model_args(demo, default_variant=None)
    demo.add_argument("--quiet", action="store_true", help="no messages about the model")
    demo.set_defaults(func=_cmd_demo)

    # eval registers itself too (xdepth.eval.cli): accuracy on the field's benchmarks.
    from xdepth.eval.cli import add_eval_parser

    add_eval_parser(sub)

    # Like export, bench registers itself; torch and openvino load only when it runs.
    from xdepth.bench.cli import add_bench_parser

    add_bench_parser(sub)
    return parser


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """xdepth's own warnings as one plain line; others as Python shows them."""
    if issubclass(category, PrecisionFallbackWarning):
        print(f"xdepth: warning: {message}", file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with stop_on_signals():
            return args.func(args)
    except StorageFault as exc:  # before the first image (the job file); later: the summary's
        print(f"xdepth {args.command}: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    except XDepthError as exc:
        print(f"xdepth {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        name = exc.name if isinstance(exc, Interrupted) else "SIGINT"
        print(
            f"xdepth {args.command}: interrupted ({name}); run the same command again to "
            "finish the job",
            file=sys.stderr,
        )
        return exc.exit_code if isinstance(exc, Interrupted) else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
