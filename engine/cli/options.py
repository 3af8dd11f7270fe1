"""Command-line options of `xdepth run` and `xdepth demo`, and what they turn into."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from xdepth.errors import XDepthError
from xdepth.job.imageio import DEFAULT_MAX_PIXELS
from xdepth.job.storage import parse_size
from xdepth.model.cache import AUTO
from xdepth.model.cards import DEFAULT_VARIANT
from xdepth.model.formats import PRECISIONS
from xdepth.outputs.kinds import OUTPUT_KINDS
from xdepth.outputs.settings import (
    PostSettings,
    make_settings,
    parse_outputs,
    parse_threshold,
    preset_names,
)
from xdepth.outputs.video_kinds import VIDEO_KINDS
from xdepth.post import POLICIES

_OV_ONLY = (
    ("streams", "--streams"),
    ("precision_hint", "--precision-hint"),
    ("cache_dir", "--cache-dir"),
)

RUN_EPILOG = f"""\
inputs:
  A folder is searched recursively for images (by extension), in sorted order; a glob
  ('shots/**/*.jpg', quoted) matches images; @FILE, FILE.txt and FILE.lst are lists of
  paths, one per line ('#' comments, paths relative to the list's folder); '-' reads paths
  from standard input as they arrive (relative to the current folder). Outputs mirror each
  input's path under OUT: relative to its folder, to a glob's fixed prefix, to a list's
  common folder (or --relative-to) or, for '-', to the current folder (or --relative-to).
  Inputs whose outputs would collide, or land outside OUT ('..', absolute, a symlinked
  folder leading out), are refused.

outputs (--outputs, comma-separated; files are named <relpath>/<stem>.<kind>.<ext>):
{chr(10).join(f"  {k.name:<12} {', '.join(k.suffixes)}: {k.help}" for k in OUTPUT_KINDS.values())}
  depth16/depth8/depth-color/fb3d store inverse depth scaled per image (white = near);
  npy/pfm the model's float32 inverse depth (1/m for metric models).

video outputs (a video's frames stream through the same engine; <relpath>/<stem>.<suffix>):
{chr(10).join(f"  {k.name:<12} {k.suffix}{'/' * k.folder}: {k.help}" for k in VIDEO_KINDS.values())}
  pfm, normals, ply and fb3d are written for images only. Files are complete or absent:
  a video's outputs are renamed into place together when its last frame is written.
  The progress bar and the summary count frames (a photo is one); with --ray each video
  is one actor's unit, with the same output bytes.

presets (--preset, configs/presets/*.toml or a path): {", ".join(preset_names())}.
  Options given on the command line override the preset's.

resume: OUT/.xdepth-job.json holds the settings' hash (model identity, outputs, options,
  library versions). Running the same command again skips images whose outputs all exist
  (a killed job finishes where it stopped, byte-identical); other settings are refused
  unless --overwrite. Failures go to OUT/errors.jsonl; the summary to OUT/run.json.
  A full or read-only OUT, or SIGTERM, stops the job cleanly (see the exit codes); the
  same command then finishes it. Folders below the inputs that hold an earlier job's
  .xdepth-job.json are skipped unless named."""


def add_model_args(parser: argparse.ArgumentParser, default_variant: str | None = None) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--artifact", metavar="DIR", help="exported artifact folder (OpenVINO or PyTorch graph)"
    )
    group.add_argument(
        "--variant",
        default=default_variant,
        help="the model variant (name or card file; default without --artifact: "
        f"{DEFAULT_VARIANT}): exported on first use to a cached OpenVINO artifact "
        "(~/.cache/xdepth/artifacts, or $XDEPTH_ARTIFACTS) at --precision",
    )
    group.add_argument("--weights", metavar="DIR", help="the variant's weights (HF format)")
    group.add_argument(
        "--random-init",
        action="store_true",
        help="random weights (for speed tests only; flagged in every output)",
    )
    group.add_argument(
        "--precision",
        choices=(AUTO, *PRECISIONS),
        default=AUTO,
        help="precision of the artifact exported on first use; auto (default) measures "
        "every precision this CPU computes natively and takes the fastest that meets its "
        "fidelity floor (bf16 needs AMX or AVX512_BF16)",
    )
    group.add_argument(
        "--reference",
        action="store_true",
        help="run the transformers fp32 reference recipe of the variant instead (slow; "
        "what every artifact is measured against; takes a variant name, card or HF folder)",
    )
    group.add_argument(
        "--threads", type=int, help="inference threads (OpenVINO, torch; default: all cores)"
    )


def add_post_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("outputs and post-processing (override the preset)")
    group.add_argument("--preset", help=f"named settings: {', '.join(preset_names())}")
    group.add_argument(
        "--outputs", help=f"comma-separated: {', '.join({**OUTPUT_KINDS, **VIDEO_KINDS})}"
    )
    group.add_argument(
        "--threshold",
        help="near-pixel rule: "
        + "; ".join(f"{p.example.replace('%', '%%')} ({p.help})" for p in POLICIES.values())
        + "; a bare number N means abs:N",
    )
    group.add_argument("--min-island", type=int, metavar="PX", help="drop regions under PX")
    group.add_argument(
        "--fill-holes", action=argparse.BooleanOptionalAction, help="fill enclosed holes"
    )
    group.add_argument("--max-hole", type=int, metavar="PX", help="fill holes up to PX only")
    group.add_argument(
        "--largest", action=argparse.BooleanOptionalAction, help="keep the largest region only"
    )
    group.add_argument("--feather", type=float, metavar="PX", help="soft edge width in pixels")
    group.add_argument(
        "--background", help="composite background: black, white, gray, blur, #rrggbb or IMAGE"
    )
    group.add_argument("--colormap", help="colour map of depth-color (default inferno)")
    group.add_argument("--ply-stride", type=int, metavar="N", help="every N-th pixel in ply")
    group.add_argument("--png-level", type=int, metavar="0-9", help="PNG compression level")
    video = parser.add_argument_group(
        "video inputs (.mp4 .mov .m4v .3gp .mkv .webm .avi .ts .mts .m2ts .mpg .mpeg, "
        "animated .gif, or by content)"
    )
    video.add_argument(
        "--temporal",
        choices=("align", "none"),
        help="align (default): one depth scale across a video's frames (each frame aligned "
        "to the previous ones and smoothed along the motion with the 6 before and after it, "
        "a running range, scene cuts detected); none: each frame normalised on its own, "
        "as an image",
    )
    video.add_argument("--every", type=int, metavar="N", help="keep every N-th frame")
    video.add_argument("--max-frames", type=int, metavar="N", help="at most N frames per video")
    video.add_argument(
        "--start", type=float, metavar="S", help="from S seconds into a video (its first frame: 0)"
    )
    video.add_argument("--end", type=float, metavar="S", help="up to S seconds into a video")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--streams", type=_streams, help="OpenVINO streams (integer or AUTO; default: the hint's)"
    )
    group.add_argument(
        "--precision-hint",
        choices=("f32", "bf16", "f16"),
        help="OpenVINO inference precision (default: the artifact's)",
    )
    group.add_argument("--cache-dir", metavar="DIR", help="OpenVINO compiled-model cache")
    group.add_argument("--readers", type=int, default=2, help="decoding threads (default 2)")
    group.add_argument(
        "--post-workers", type=int, default=2, help="post-processing threads (default 2)"
    )
    group.add_argument(
        "--max-in-flight", type=int, help="images between reading and writing (bounds memory)"
    )
    group.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse larger images as decompression bombs (default {DEFAULT_MAX_PIXELS})",
    )
    group.add_argument(
        "--relative-to",
        metavar="DIR",
        help="outputs of list and stdin entries mirror paths relative to DIR",
    )
    group.add_argument(
        "--overwrite", action="store_true", help="recompute everything, even with new settings"
    )
    group.add_argument(
        "--min-free",
        type=_size,
        default=None,
        metavar="SIZE",
        help="free space OUT's filesystem needs to start, e.g. 2G, 0 for no check (default "
        "auto: the outputs of the next few images, estimated from the inputs)",
    )
    group.add_argument("--quiet", action="store_true", help="no progress bar or error lines")


def add_ray_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray (the same job on a Ray Data actor pool; xdepth[ray])")
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run on Ray: the cluster at ADDRESS (auto, HOST:PORT, ray://HOST:PORT), or without "
        "ADDRESS RAY_ADDRESS, a running local Ray or a new one; needs --artifact. Images go "
        "to actors in batches; each video is one actor's unit (decoded, aligned and encoded "
        "whole, as without --ray)",
    )
    group.add_argument(
        "--ray-actors", type=int, metavar="N", help="actors (default: as many as the nodes fit)"
    )
    group.add_argument(
        "--ray-cpus-per-actor",
        type=int,
        metavar="N",
        help="CPUs Ray reserves per actor = its OpenVINO threads (default: a node's CPUs)",
    )
    group.add_argument(
        "--ray-batch-size",
        type=int,
        metavar="N",
        help="images per actor call (default <= 32); a video is a call of its own",
    )
    group.add_argument(
        "--ray-numa",
        action="store_true",
        help="confine each actor to a NUMA node no other actor of its machine holds",
    )


def _streams(text: str) -> int | str:
    if text.upper() == "AUTO":
        return "AUTO"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"streams must be an integer or AUTO, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"streams must be at least 1, got {value}")
    return value


def _size(text: str) -> int | None:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The job options of `xdepth run` that every runner (local, Ray) takes alike."""
    names = ("overwrite", "quiet", "readers", "post_workers", "max_in_flight", "max_pixels")
    names += ("min_free",)
    return {name: getattr(args, name) for name in names}


def settings_from_args(args: argparse.Namespace) -> PostSettings:
    """The preset (default "default") with the options given on the command line."""
    return make_settings(
        args.preset,
        outputs=parse_outputs(args.outputs) if args.outputs is not None else None,
        threshold=parse_threshold(args.threshold) if args.threshold is not None else None,
        min_island_px=args.min_island,
        fill_holes=args.fill_holes,
        max_hole_px=args.max_hole,
        largest=args.largest,
        feather_px=args.feather,
        background=args.background,
        colormap=args.colormap,
        ply_stride=args.ply_stride,
        png_level=args.png_level,
        temporal=args.temporal,
        every=args.every,
        max_frames=args.max_frames,
        start_s=args.start,
        end_s=args.end,
    )


def open_model(args: argparse.Namespace) -> Any:
    """The backend the options ask for: an artifact, or the transformers reference."""
    if args.artifact:
        model_options = [
            flag
            for flag, given in (
                ("--variant", args.variant),
                ("--weights", args.weights),
                ("--random-init", args.random_init),
                ("--reference", args.reference),
                ("--precision", args.precision != AUTO),
            )
            if given
        ]
        if model_options:
            raise XDepthError(
                f"--artifact runs an exported model; {', '.join(model_options)} select another "
                "model: give one or the other"
            )
        from xdepth.api import open_backend

        return open_backend(
            args.artifact,
            streams=getattr(args, "streams", None),
            threads=args.threads,
            inference_precision=getattr(args, "precision_hint", None),
            cache_dir=getattr(args, "cache_dir", None),
        )
    variant = args.variant or DEFAULT_VARIANT
    if args.reference:
        for name, flag in _OV_ONLY:
            if getattr(args, name, None) is not None:
                raise XDepthError(f"{flag} applies to OpenVINO artifacts, not to --reference")
        return reference_backend(variant, args.weights, args.random_init, args)
    from xdepth.api import open_backend
    from xdepth.model.cache import cached_artifact

    quiet = getattr(args, "quiet", False)
    with _silenced() if quiet else contextlib.nullcontext():  # the exporters' own bars
        artifact = cached_artifact(
            variant,
            weights=args.weights,
            random_init=args.random_init,
            precision=args.precision,
            progress=None if quiet else _say,
        )
    return open_backend(
        artifact,
        streams=getattr(args, "streams", None),
        threads=args.threads,
        inference_precision=getattr(args, "precision_hint", None),
        cache_dir=getattr(args, "cache_dir", None),
    )


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Standard output and error swallowed: a first use exports the model, and the
    libraries it calls (transformers, NNCF) print progress bars and warnings of their own,
    which --quiet promises not to show. Errors still surface as exceptions."""
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield


def _say(message: str) -> None:
    print(f"xdepth: {message}", file=sys.stderr)


def reference_backend(
    variant: str, weights: str | None, random_init: bool, args: argparse.Namespace | None = None
) -> Any:
    """The transformers fp32 reference (imports torch only when asked for)."""
    try:
        from xdepth.export.load import load_model
        from xdepth.export.reference import ReferenceBackend
    except ImportError as exc:
        raise XDepthError(
            f"the reference backend (--variant) needs torch and transformers ({exc}); install "
            "xdepth[export], or run an exported model with --artifact DIR"
        ) from None
    loaded = load_model(variant, weights=weights, random_init=random_init)
    return ReferenceBackend(loaded, threads=getattr(args, "threads", None))
