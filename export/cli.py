"""`xdepth export`: the command-line face of xdepth.export.exporter.export.

This module imports neither torch nor openvino at import time, so the `xdepth` command can
register the subcommand in a runtime-only install; running it then says what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xdepth.export.calibration import DEFAULT_CALIBRATION_SIZE, DEFAULT_FIDELITY_IMAGES
from xdepth.job.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from xdepth.model.formats import FORMATS, PRECISIONS
from xdepth.model.manifest import MANIFEST_NAME


def _input_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W), e.g. '518x686'."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW with positive integers")
    return int(parts[0]), int(parts[1])


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def _summary(manifest: dict) -> str:
    ref = manifest["fidelity"]["vs_reference"]
    iou = "n/a" if ref["mask_iou"] is None else f"{ref['mask_iou']:.4f}"
    lines = [
        f"{manifest['variant']} -> {manifest['format']} {manifest['precision']} "
        f"({sum(f['bytes'] for f in manifest['files']) / 1e6:.1f} MB, "
        f"exported in {manifest['export']['seconds']:.1f} s)",
        f"vs fp32 reference ({manifest['fidelity']['images']['count']} held-out images): "
        f"delta1 {ref['delta1']:.4f}, AbsRel {ref['abs_rel']:.4g}, mask IoU {iou}, "
        f"max relative error {ref['max_rel_error']:.3g}",
    ]
    truth = manifest["fidelity"].get("vs_ground_truth")
    if truth:
        art, fp32 = truth["artifact"], truth["reference"]
        lines.append(
            f"vs ground truth: mask IoU {art['mask_iou']:.4f} (fp32 {fp32['mask_iou']:.4f}), "
            f"delta1 {art['delta1']:.4f} (fp32 {fp32['delta1']:.4f})"
        )
    return "\n".join(lines)


def _cmd_export(args: argparse.Namespace) -> int:
    if args.max_delta1_drop is not None and not args.accuracy_control:
        print("xdepth export: --max-delta1-drop needs --accuracy-control", file=sys.stderr)
        return EXIT_USAGE
    try:
        from xdepth.export.exporter import FidelityError, NondeterministicRuntime, export
        from xdepth.export.openvino_export import ConversionError
    except ImportError as exc:
        print(
            f"xdepth export: needs the export extras (torch, transformers, nncf): {exc}; "
            "install them with: pip install 'xdepth[export]'",
            file=sys.stderr,
        )
        return EXIT_USAGE

    def progress(message: str) -> None:
        print(f"xdepth export: {message}", file=sys.stderr)

    options: dict = {
        "weights": args.weights,
        "random_init": args.random_init,
        "fmt": args.format,
        "input_size": args.input_size,
        "fidelity_floor": args.min_delta1,
        "flavour": args.flavour,
        "fidelity_images": args.fidelity_images,
        "progress": progress,
    }
    if args.precision == "auto":
        if args.calibration or args.calibration_size or args.accuracy_control:
            print(
                "xdepth export: --precision auto takes no int8-only options; give "
                "--precision int8 with them",
                file=sys.stderr,
            )
            return EXIT_USAGE
        from xdepth.export.auto import export_fastest

        def run() -> Path:
            return export_fastest(args.variant_or_dir, args.output, **options)[0]
    else:
        options |= {
            "precision": args.precision,
            "calibration": args.calibration,
            "calibration_size": args.calibration_size,
            "accuracy_control": args.accuracy_control,
            "max_delta1_drop": 0.01 if args.max_delta1_drop is None else args.max_delta1_drop,
        }

        def run() -> Path:
            return export(args.variant_or_dir, args.output, **options)

    try:
        out = run()
    except (FidelityError, NondeterministicRuntime, ConversionError) as exc:
        # The export ran but its result failed a check: a failure, not a usage error.
        print(f"xdepth export: {exc}", file=sys.stderr)
        return EXIT_FAILED
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    print(_summary(manifest))
    print(f"wrote {out}")
    return EXIT_OK


def add_export_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `xdepth export VARIANT_OR_DIR -o ARTIFACT_DIR ...` on a subparsers object."""
    parser = subparsers.add_parser(
        "export",
        help="export a variant to an artifact folder (OpenVINO IR or PyTorch graph)",
        description="Export a variant to an artifact folder: model files plus manifest.json, "
        "checked against the fp32 reference on held-out images. Exit codes: 0 written, "
        "1 the artifact failed a check (fidelity floor, repeatability, f32 parity; nothing "
        "written), 2 usage error.",
    )
    parser.add_argument("variant_or_dir", help="variant name, card file or HF-format folder")
    parser.add_argument("-o", "--output", required=True, help="artifact folder to write")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--weights", help="folder with the variant's weights (HF format)")
    weights.add_argument(
        "--random-init",
        action="store_true",
        help="random weights (for speed tests only; flagged in the manifest)",
    )
    parser.add_argument("--format", choices=tuple(FORMATS), default="openvino")
    parser.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        default="f32",
        help="f32 (default), bf16, int8, or auto: export every precision this CPU computes "
        "natively, measure them here and keep the fastest within its fidelity floor",
    )
    parser.add_argument(
        "--flavour",
        choices=FORMATS["torch"].flavours,
        help="torch format only: AOTInductor package (aoti, default) or IPEX TorchScript",
    )
    parser.add_argument(
        "--calibration",
        metavar="DIR",
        help="int8: folder of calibration images (default: held-out synthetic scenes)",
    )
    parser.add_argument(
        "--calibration-size",
        type=_positive,
        metavar="N",
        help=f"int8: number of calibration images (default {DEFAULT_CALIBRATION_SIZE})",
    )
    parser.add_argument(
        "--input-size",
        type=_input_size,
        metavar="HxW",
        help="static input size for variants that keep the aspect ratio (default: the card's)",
    )
    parser.add_argument(
        "--min-delta1",
        type=_fraction,
        metavar="X",
        help="fidelity floor: minimum delta1 vs the fp32 reference "
        "(default: bf16 0.99, int8 0.97; f32 is held to relative error 1e-4)",
    )
    parser.add_argument(
        "--accuracy-control",
        action="store_true",
        help="int8: return the most sensitive layers to float until the delta1 drop is met",
    )
    parser.add_argument(
        "--max-delta1-drop",
        type=_fraction,
        metavar="X",
        help="int8 with --accuracy-control: largest allowed delta1 drop (default 0.01)",
    )
    parser.add_argument(
        "--fidelity-images",
        type=_positive,
        default=DEFAULT_FIDELITY_IMAGES,
        metavar="N",
        help=f"held-out images the fidelity is measured on (default {DEFAULT_FIDELITY_IMAGES})",
    )
    parser.set_defaults(func=_cmd_export)
    return parser
