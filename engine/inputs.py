"""Turning INPUTS (files, folders, globs) into images with the relative paths outputs mirror."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from xdepth.errors import XDepthError
from xdepth.imageio import IMAGE_EXTENSIONS


class InputError(XDepthError, ValueError):
    """An input argument names nothing usable."""


@dataclass(frozen=True)
class InputItem:
    """One image to process: where it is, and the relative path its outputs go under."""

    path: Path
    rel: Path  # relative path of the input, used to place outputs under OUT


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _glob_root(pattern: str) -> Path:
    """The longest leading part of a glob pattern with no magic characters."""
    parts = Path(pattern).parts
    root: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def collect_inputs(inputs: list[str]) -> list[InputItem]:
    """Expand files, folders (recursive, image extensions, sorted) and globs, in order.

    A folder's images keep their path relative to it; a file keeps its name; a glob's
    matches keep their path relative to the pattern's fixed prefix.
    """
    items: list[InputItem] = []
    seen: set[Path] = set()

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            items.append(InputItem(path, rel))

    for arg in inputs:
        path = Path(arg)
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and _is_image(p)):
                add(found, found.relative_to(path))
        elif path.is_file():
            add(path, Path(path.name))
        elif glob.has_magic(arg):
            root = _glob_root(arg)
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True))
            files = [m for m in matches if m.is_file() and _is_image(m)]
            if not files:
                raise InputError(f"{arg}: the pattern matches no image files")
            for found in files:
                add(found, found.relative_to(root))
        else:
            raise InputError(f"{arg}: no such file, folder or matching pattern")
    return items
