"""OUT's filesystem: the faults that stop a whole job, and the checks before it starts.

A full disk, an exhausted quota, a read-only remount or an I/O error on write is not one
image's problem: every later image would fail the same way. Such a write raises
`StorageFault`; the job stops taking images, drops the image being written (its files are
atomic, so nothing partial stays), writes OUT/run.json and exits with EXIT_STORAGE. Before
the model loads, `check_output` refuses an OUT that cannot be created or written, or whose
filesystem has less free space than a margin: by default the outputs of the next few images,
estimated from the inputs' pixel counts.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from xdepth.errors import XDepthError
from xdepth.job.imageio import open_image_file
from xdepth.job.inputs import InputItem
from xdepth.outputs.settings import PostSettings
from xdepth.post.encoders import TEMP_PREFIX

__all__ = [
    "StorageFault",
    "check_output",
    "estimate_output_bytes",
    "format_bytes",
    "parse_size",
    "storage_fault",
]
# errno -> what to do about it.
STORAGE_ERRNOS = {
    errno.ENOSPC: "free space on that filesystem",
    errno.EDQUOT: "raise the quota or free space",
    errno.EROFS: "remount that filesystem writable, or choose another -o",
    errno.EIO: "check the disk (the kernel log says more)",
}
# Bytes per pixel of each output kind at PNG level 1, measured on 120x160 to 480x640 scenes
# and rounded up (photos compress a little less). ply: per point (--ply-stride).
BYTES_PER_PIXEL = {
    "depth16": 0.75,
    "depth8": 0.15,
    "depth-color": 0.4,
    "npy": 4.0,
    "pfm": 4.0,
    "mask": 0.03,
    "cutout": 0.75,
    "composite": 0.6,
    "normals": 0.8,
    "ply": 15.0,
    "fb3d": 0.3,
    "depth16-png": 0.75,
    "cutout-png": 0.75,
}
NEXT_IMAGES = 2  # the default margin covers this many images (the largest sampled)
SAMPLED_INPUTS = 16  # inputs whose headers are read for the estimate
JOB_FILES_BYTES = 16 * 1024  # OUT's own files: job file, run.json, errors.jsonl, lock
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


class StorageFault(XDepthError):
    """OUT's filesystem stopped taking data; the whole job stops, never one image."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code  # ENOSPC, EDQUOT, EROFS or EIO


def storage_fault(exc: BaseException, target: str | Path) -> StorageFault | None:
    """The job-level fault `exc` is, for a write of `target`; None for any other error."""
    if isinstance(exc, StorageFault):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in STORAGE_ERRNOS:
        return None
    code = errno.errorcode[exc.errno]
    hint = STORAGE_ERRNOS[exc.errno]
    return StorageFault(
        f"cannot write {target}: {exc.strerror or os.strerror(exc.errno)} ({code}); the job "
        f"stopped: {hint}, then run the same command again to finish",
        code,
    )


def parse_size(text: str) -> int | None:
    """`--min-free`: "auto" (None), or bytes with an optional K, M, G, T (powers of 1024)."""
    if text.strip().lower() == "auto":
        return None
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}; give auto, 0, or e.g. 500M, 20G")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " kmgt".index(unit.lower() or " "))


def format_bytes(count: float) -> str:
    value, unit = float(count), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.0f} {_UNITS[unit]}" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def estimate_output_bytes(
    items: Iterable[InputItem], settings: PostSettings, images: int = NEXT_IMAGES
) -> int:
    """What the next `images` images write, at the largest of the first inputs' sizes."""
    per_pixel = sum(BYTES_PER_PIXEL[kind] for kind in settings.outputs if kind != "ply")
    if "ply" in settings.outputs:
        per_pixel += BYTES_PER_PIXEL["ply"] / settings.ply_stride**2
    largest = 0
    for count, item in enumerate(items):
        if count >= SAMPLED_INPUTS:
            break
        try:
            with open_image_file(item.path) as handle, Image.open(handle) as image:
                largest = max(largest, image.width * image.height)  # from the header only
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # a bad input fails in the job, with its reason
    return JOB_FILES_BYTES + int(images * largest * per_pixel)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output(
    out: str | Path,
    items: Iterable[InputItem],
    settings: PostSettings,
    min_free: int | None = None,
) -> int:
    """Refuse an OUT that cannot be created or written, or whose filesystem has less free
    space than `min_free` bytes (None: `estimate_output_bytes`). Returns the free bytes.

    Nothing is created: an existing OUT takes a probe file (removed at once); for a new
    one, the nearest existing folder above it must let a folder be made in it.
    """
    root = Path(out)
    base = _nearest_existing(root.absolute())
    try:
        if base != root.absolute():
            if not base.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{base} is not a folder")
            if not os.access(base, os.W_OK | os.X_OK):
                code = errno.EROFS if _read_only(base) else errno.EACCES
                raise OSError(code, f"{base}: {os.strerror(code)}")
        else:
            _probe(root)
    except OSError as exc:
        what = "create" if base != root.absolute() else "write in"
        raise XDepthError(
            f"output folder {root}: cannot {what} it ({exc.strerror or exc}); choose "
            "another -o, or make it writable"
        ) from None
    stats = os.statvfs(base)
    free = stats.f_bavail * stats.f_frsize
    need = estimate_output_bytes(items, settings) if min_free is None else min_free
    if free < need:
        how = f"--min-free auto: {NEXT_IMAGES} images" if min_free is None else "--min-free"
        raise XDepthError(
            f"output folder {root}: {format_bytes(free)} free on its filesystem, less than "
            f"the {format_bytes(need)} needed ({how}); free space, choose another -o, or "
            "lower --min-free (0 turns the check off)"
        )
    return free


def _read_only(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def _probe(root: Path) -> None:
    """Write and remove one byte in OUT: a full, read-only or foreign folder fails here."""
    if not root.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{root} exists and is not a folder")
    probe = root / f"{TEMP_PREFIX}probe.{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
        probe.unlink()
