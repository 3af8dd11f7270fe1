"""Turning INPUTS into images with the relative paths their outputs mirror under OUT.

An input argument is one of:

- a file: an image, kept with its name (outputs go to the top of OUT);
- a folder: every image below it (recursive, by extension, sorted), kept with its path
  relative to the folder; symlinked folders are not followed;
- a glob (``'shots/**/*.jpg'``): the matching images, relative to the pattern's fixed prefix
  (symlinked folders below the prefix are not followed);
- a list of paths: ``@FILE`` (any name), or a file ending in ``.txt`` or ``.lst``. One path
  per line, UTF-8; blank lines and lines starting with ``#`` are skipped; surrounding
  whitespace is stripped; relative entries are relative to the list file's folder. Outputs
  mirror each entry's path relative to the entries' deepest common folder (or ``--relative-to``);
- ``-``: paths on standard input, one per line, read as they arrive (a producer can feed a
  running job); relative entries are relative to the current folder, and outputs mirror
  paths relative to the current folder (or ``--relative-to``).

Files inside the output folder are never inputs (a rerun does not read its own outputs),
and neither are those of earlier jobs: a folder below a folder or glob input that holds
``.xdepth-job.json`` is skipped (reported once) unless it is itself the argument.
Paths that a list names but that do not exist are reported per image (the job goes on);
arguments that name nothing are usage errors. Two inputs whose outputs would have the same
name (``a/x.jpg`` and ``b/x.jpg`` from two folders, or ``x.jpg`` next to ``x.png``) are a
usage error, or, arriving on standard input, a per-image error for the later one.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TextIO

from xdepth.errors import XDepthError
from xdepth.job.imageio import IMAGE_EXTENSIONS
from xdepth.job.video_io import VIDEO_EXTENSIONS
from xdepth.post.encoders import TEMP_PREFIX

JOB_FILE = ".xdepth-job.json"  # marks an xdepth output folder (written by xdepth.job.output_folder)
LIST_SUFFIXES = frozenset({".txt", ".lst"})
STDIN = "-"
_MAX_LISTED_COLLISIONS = 5


class InputError(XDepthError, ValueError):
    """An input argument names nothing usable."""


@dataclass(frozen=True)
class InputItem:
    """One image to process: where it is, and the relative path its outputs go under."""

    path: Path
    rel: Path  # relative path of the input, used to place outputs under OUT


@dataclass(frozen=True)
class RejectedInput:
    """An input refused before reading (e.g. from stdin): reported per image, the job goes on."""

    path: Path
    reason: str
    stage: str = "input"  # where it was refused: "input", or "read" for a broken video


def is_image_name(path: PurePath) -> bool:
    """An image or a video, by its name (folders and globs find inputs by name)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def output_key(rel: PurePath) -> PurePath:
    """What an input's output names are made of: its relative folder and its stem."""
    return rel.parent / rel.stem


def rel_problem(rel: PurePath) -> str | None:
    """Why a relative path cannot name outputs under OUT, or None when it can."""
    if rel.is_absolute() or rel.anchor:
        return f"{rel}: output path is absolute and would leave the output folder"
    if ".." in rel.parts:
        return f"{rel}: output path contains '..' and could leave the output folder"
    if not rel.stem or rel.name in ("", "."):
        return f"{rel!s}: no file name to derive output names from"
    if any(part.startswith(TEMP_PREFIX) for part in rel.parts):
        return f"{rel}: names starting with {TEMP_PREFIX!r} are reserved for temporary files"
    return None


def _glob_root(pattern: str) -> Path:
    """The longest leading part of a glob pattern with no magic characters."""
    root: list[str] = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def _through_symlink(root: Path, rel: Path) -> bool:
    """True when a folder between `root` and the file is a symlink (not followed by globs)."""
    return any((root / Path(*rel.parts[:i])).is_symlink() for i in range(1, len(rel.parts)))


def _is_output_folder(folder: Path) -> bool:
    return (folder / JOB_FILE).is_file()


def _walk_images(folder: Path, skipped: list[Path]) -> list[Path]:
    """Image files below `folder`, sorted by relative path; symlinked folders not followed,
    earlier output folders below it skipped (and added to `skipped`)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        outputs = [name for name in dirnames if _is_output_folder(base / name)]
        skipped.extend(base / name for name in sorted(outputs))
        dirnames[:] = sorted(name for name in dirnames if name not in outputs)
        found.extend(
            base / name
            for name in filenames
            if is_image_name(PurePath(name)) and (base / name).is_file()
        )
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def read_list_file(list_path: Path, relative_to: Path | None = None) -> list[InputItem]:
    """The entries of a list file, with rels relative to `relative_to` or their common folder."""
    try:
        text = list_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{list_path}: cannot read the list of paths ({exc})") from None
    base_dir = list_path.parent
    paths = []
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            paths.append(Path(os.path.normpath(base_dir / entry)))
    if not paths:
        return []
    if relative_to is not None:
        root = Path(os.path.normpath(relative_to))
    else:
        common = Path(os.path.commonpath([str(p) for p in paths]))
        root = common.parent if len(paths) == 1 or common in paths else common
    items = []
    for path in paths:
        rel = Path(os.path.relpath(path, root))
        if ".." in rel.parts:
            raise InputError(
                f"{list_path}: entry {path} lies outside {root} (--relative-to); outputs "
                "would leave the output folder"
            )
        items.append(InputItem(path, rel))
    return items


def _in_output_folder(root: Path, rel: Path, skipped: list[Path]) -> bool:
    """True when a folder below `root` on the way to the file is an earlier output folder."""
    for depth in range(1, len(rel.parts)):
        folder = root / Path(*rel.parts[:depth])
        if folder in skipped:
            return True
        if _is_output_folder(folder):
            skipped.append(folder)
            return True
    return False


def _expand(arg: str, relative_to: Path | None, skipped: list[Path]) -> list[InputItem]:
    if arg.startswith("@"):
        listed = Path(arg[1:])
        if not listed.is_file():
            raise InputError(f"{arg}: no such list file {listed}")
        return read_list_file(listed, relative_to)
    path = Path(arg)
    if path.is_dir():
        found = _walk_images(path, skipped)
        return [InputItem(image, image.relative_to(path)) for image in found]
    if path.is_file():
        if path.suffix.lower() in LIST_SUFFIXES:
            return read_list_file(path, relative_to)
        return [InputItem(path, Path(path.name))]
    if glob.has_magic(arg):
        root = _glob_root(arg)
        matches = sorted(Path(m) for m in glob.glob(arg, recursive=True))
        files = [
            m
            for m in matches
            if m.is_file()
            and is_image_name(m)
            and not _through_symlink(root, m.relative_to(root))
            and not _in_output_folder(root, m.relative_to(root), skipped)
        ]
        if not files:
            raise InputError(f"{arg}: the pattern matches no image files")
        return [InputItem(found, found.relative_to(root)) for found in files]
    raise InputError(f"{arg}: no such file, folder or matching pattern")


class _Registry:
    """Drops repeats of one file and finds inputs whose output names would collide."""

    def __init__(self) -> None:
        self.seen: set[Path] = set()
        self.owners: dict[PurePath, Path] = {}

    def admit(self, item: InputItem) -> tuple[bool, str | None]:
        """(keep, problem): keep=False for a repeat; a problem for a bad or colliding name."""
        key_path = item.path.resolve()
        if key_path in self.seen:
            return False, None
        self.seen.add(key_path)
        problem = rel_problem(item.rel)
        if problem:
            return True, f"{item.path}: {problem}"
        key = output_key(item.rel)
        owner = self.owners.setdefault(key, item.path)
        if owner != item.path:
            return True, (
                f"{item.path} and {owner} would both write outputs named {key}.*; process "
                "them into separate output folders, or pass a folder that holds both"
            )
        return True, None


def collect_inputs(
    inputs: Iterable[str],
    relative_to: str | Path | None = None,
    skipped: list[Path] | None = None,
) -> list[InputItem]:
    """Expand file, folder, glob and list arguments (not ``-``) into items, in order.

    Earlier output folders found below folders and globs are left out and added to
    `skipped`. Raises InputError for an argument that names nothing, and for output-name
    collisions.
    """
    skipped = [] if skipped is None else skipped
    base = Path(relative_to) if relative_to is not None else None
    registry = _Registry()
    items: list[InputItem] = []
    problems: list[str] = []
    for arg in inputs:
        if arg == STDIN:
            raise InputError("'-' (paths on standard input) is read by open_inputs, not here")
        for item in _expand(arg, base, skipped):
            keep, problem = registry.admit(item)
            if problem:
                problems.append(problem)
            elif keep:
                items.append(item)
    if problems:
        shown = "\n  ".join(problems[:_MAX_LISTED_COLLISIONS])
        more = len(problems) - _MAX_LISTED_COLLISIONS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise InputError(f"{len(problems)} input(s) cannot be placed under OUT:\n  {shown}{tail}")
    return items


@dataclass
class InputSource:
    """The items of a job: those known up front, then (with ``-``) those arriving on stdin."""

    items: list[InputItem]
    stdin: TextIO | None = None
    relative_to: Path | None = None
    exclude: Path | None = None  # a folder (OUT) whose files are never inputs
    skipped_folders: list[Path] = field(default_factory=list)  # earlier output folders

    def excluding(self, folder: str | Path) -> InputSource:
        """The same inputs without the files inside `folder` (OUT: outputs are not inputs)."""
        real = Path(folder).resolve()
        kept = [item for item in self.items if not _inside(item.path, real)]
        skipped = [path for path in self.skipped_folders if not _inside(path, real)]
        return InputSource(kept, self.stdin, self.relative_to, real, skipped)

    @property
    def total(self) -> int | None:
        """How many inputs there are, or None while stdin may bring more."""
        return None if self.stdin is not None else len(self.items)

    def __iter__(self) -> Iterator[InputItem | RejectedInput]:
        if self.stdin is None:
            yield from self.items
            return
        registry = _Registry()
        for item in self.items:
            registry.admit(item)  # known good: records names for the stdin check
            yield item
        base = Path(os.path.abspath(self.relative_to or Path.cwd()))
        for line in self.stdin:
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            path = Path(os.path.normpath(base / entry))
            rel = Path(os.path.relpath(path, base))
            if ".." in rel.parts:
                reason = (
                    f"{entry}: lies outside {base}; run from a folder that holds it, pass "
                    "--relative-to, or list the paths in a file"
                )
                yield RejectedInput(path, reason)
                continue
            item = InputItem(path, rel)
            if self.exclude is not None and _inside(path, self.exclude):
                continue
            keep, problem = registry.admit(item)
            if problem:
                yield RejectedInput(path, problem)
            elif keep:
                yield item


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder)


def open_inputs(
    inputs: Iterable[str],
    relative_to: str | Path | None = None,
    stdin: TextIO | None = None,
) -> InputSource:
    """The job's inputs; ``-`` (at most once) streams paths from `stdin` (default sys.stdin)."""
    args = list(inputs)
    if args.count(STDIN) > 1:
        raise InputError("'-' (paths on standard input) may be given only once")
    skipped: list[Path] = []
    eager = collect_inputs([a for a in args if a != STDIN], relative_to, skipped)
    if STDIN not in args:
        return InputSource(eager, skipped_folders=skipped)
    base = Path(relative_to) if relative_to is not None else None
    return InputSource(eager, stdin if stdin is not None else sys.stdin, base, None, skipped)
