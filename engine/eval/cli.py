"""`xdepth eval MODEL --dataset NAME --data PATH`: the subcommand and its protocol help."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xdepth.errors import XDepthError
from xdepth.eval.datasets import DATASETS, KB_CROP_HW, SHIPPED_SPLITS, DatasetSpec
from xdepth.eval.protocol import ALIGNMENTS, CROPS, DEFAULT_ALIGN_PX, SPACES


def _describe(spec: DatasetSpec) -> str:
    kb = " (--kb-crop: KB {} x {} first)".format(*KB_CROP_HW) if spec.kb_crop else ""
    shipped = SHIPPED_SPLITS.get(spec.name)
    listed = f"shipped ({shipped})" if shipped else f"not shipped ({spec.list_names[0]})"
    return (
        f"  {spec.name:<8} {spec.title}: {spec.split} ({spec.split_size} samples)\n"
        f"           depth {spec.encoding}; valid {spec.min_depth_m:g} < d < "
        f"{spec.max_depth_m:g} m; crop {spec.crop or 'none'}{kb}\n"
        f"           list: {listed}"
    )


_KB_H, _KB_W = KB_CROP_HW
EVAL_EPILOG = f"""\
MODEL: an artifact folder (as --artifact), or a variant name, card or HF folder, which runs
  the transformers fp32 reference (as --variant NAME --reference; add --weights DIR or
  --random-init). Without MODEL, --artifact / --variant / --reference choose as for run.

data (--data: the set's tar archive, read in place, or its extracted folder; --split: the
  file list, one 'rgb depth [third]' line per sample, paths relative to the set's root;
  without --split, the list shipped in xdepth's configs/splits (Marigold's data_split/
  files, Apache-2.0), else the set's own list inside the archive or beside it, the only
  .txt at its root, or the only .txt beside it). Layouts, encodings, ranges and crops are
  those of Marigold's evaluation code (github.com/prs-eth/Marigold, src/dataset/*_dataset.py,
  config/dataset/*.yaml, data_split/*):
{chr(10).join(_describe(spec) for spec in DATASETS.values())}
  png_mm: 16-bit PNG in millimetres; png_256: 16-bit PNG / 256 (KITTI, 0 = no LiDAR);
  float32_raw: ETH3D's float32 binary at the image's size (inf = none); npy_mask: DIODE's
  .npy depth in metres and the validity mask .npy of the third column.

protocol (per image, at the ground truth's resolution; Marigold script/eval/eval.py and
  src/util/alignment.py, as the MiDaS, DPT and Depth Anything tables):
  0. KITTI with --kb-crop (Marigold kitti_dataset.py kitti_benchmark_crop): image and ground
     truth are first cut to the benchmark's {_KB_H} x {_KB_W}, the KB crop: the bottom {_KB_H} rows,
     {_KB_W} columns from (W - {_KB_W}) // 2. The model sees the cut image; the crop of step 1
     applies to the cut frame. With --crop eigen-kitti that is Marigold's KITTI setting
     (data_kitti_eigen_test.yaml: kitti_bm_crop: true, valid_mask_crop: eigen). Default:
     the full frame with Garg's crop, as the MiDaS, DPT and Depth Anything tables.
  1. valid pixels: min < d < max, inside the crop and the mask.
{chr(10).join(f"     crop {name}: {rule}" for name, rule in CROPS.items())}
  2. the prediction, upsampled to the image as the engine does (bicubic), is aligned by
     least squares over the valid pixels in the space the model predicts: disparity for
     relative inverse-depth models (MiDaS, DPT, Depth Anything), depth for depth models,
     none for metric models (Depth Pro). --alignment scale-shift|scale|none and
     --align-space disparity|depth force a choice. Images larger than --align-max-px a
     side are fitted on a nearest-neighbour subsample (Marigold's alignment_max_res).
  3. aligned disparity is floored at 1e-3; depth is clipped to the set's range and to
     >= 1e-6.
  4. AbsRel, delta1-3 (max(p/g, g/p) < 1.25^k), RMSE (m) and log10 over valid pixels;
     each averaged over images.

OUT: per_image.csv (a line per scored sample), eval.json (model, precision asked for and
  computed, CPU, dataset, split size, every metric, images/s, published figures), run.json
  and errors.jsonl. The same command again skips scored samples; a missing or damaged
  sample is reported by name, counted, and the evaluation goes on."""


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    from xdepth.cli.options import add_engine_args, add_model_args

    parser = sub.add_parser(
        "eval",
        help="accuracy on NYUv2, KITTI, ETH3D, ScanNet or DIODE, with images/s",
        description="Scores a model on a depth benchmark with the zero-shot protocol of the "
        "depth papers, streamed through the engine as `xdepth run` is.",
        epilog=EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", metavar="MODEL", help="artifact folder or variant")
    parser.add_argument("--dataset", required=True, type=str.lower, choices=tuple(DATASETS))
    parser.add_argument("--data", required=True, metavar="PATH", help="tar archive or folder")
    parser.add_argument(
        "--split",
        "--split-file",
        "--file-list",
        "--filenames",
        dest="split",
        metavar="FILE",
        help="the split's file list (default: the shipped list, else found in or beside --data)",
    )
    parser.add_argument(
        "--kb-crop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="KITTI: cut frames to the benchmark's 352 x 1216 first, as Marigold does "
        "(default: off, the full frame)",
    )
    parser.add_argument("-o", "--output", help="output folder (default: eval-<dataset>)")
    group = parser.add_argument_group("protocol")
    group.add_argument(
        "--alignment",
        choices=ALIGNMENTS,
        default="auto",
        help="auto: scale and shift for relative models, none for metric ones",
    )
    group.add_argument(
        "--align-space",
        choices=SPACES,
        default="auto",
        help="auto: disparity for inverse-depth models, depth for depth and metric models",
    )
    group.add_argument(
        "--align-max-px",
        type=int,
        default=DEFAULT_ALIGN_PX,
        metavar="PX",
        help=f"fit on at most PX pixels a side (default {DEFAULT_ALIGN_PX}; 0: full size)",
    )
    group.add_argument(
        "--crop",
        choices=("auto", "none", *CROPS),
        default="auto",
        help="auto: the set's own (NYUv2 eigen-nyu, KITTI garg, others none)",
    )
    add_model_args(parser, default_variant=None)
    add_engine_args(parser)
    parser.set_defaults(func=cmd_eval)


def _model_from_positional(args: argparse.Namespace) -> None:
    """MODEL is an artifact folder (--artifact) or a variant (--variant NAME --reference)."""
    if args.model is None:
        return
    if args.artifact or args.variant:
        raise XDepthError("give the model once: as MODEL, or with --artifact / --variant")
    if (Path(args.model) / "manifest.json").is_file():
        args.artifact = args.model
    else:
        args.variant, args.reference = args.model, True


def cmd_eval(args: argparse.Namespace) -> int:
    from xdepth.cli.options import open_model, run_options
    from xdepth.eval.datasets import open_dataset
    from xdepth.eval.protocol import make_protocol
    from xdepth.eval.runner import evaluate
    from xdepth.model.backends.interface import as_backend

    _model_from_positional(args)
    dataset = open_dataset(args.dataset, args.data, args.split, args.kb_crop)  # cheap first
    inference = as_backend(open_model(args))
    protocol = make_protocol(
        dataset.spec,
        inference.semantics,
        alignment=args.alignment,
        space=args.align_space,
        crop=args.crop,
        max_align_px=args.align_max_px or None,
    )
    out = Path(args.output or f"eval-{dataset.spec.name}")
    options = run_options(args)
    options.pop("min_free")  # eval writes scores, not images: no per-image space margin
    summary = evaluate(inference, dataset, out, protocol, **options)
    print(summary.describe())
    print(f"wrote {out / 'eval.json'} and {out / 'per_image.csv'}", file=sys.stderr)
    return summary.exit_code
