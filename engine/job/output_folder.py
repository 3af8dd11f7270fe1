"""The output folder of a job: safe paths, atomic writes, resume, and one job at a time.

OUT/.xdepth-job.json records the job's settings and their sha256: the model's identity
(the artifact's manifest, or the reference variant and its weights), the outputs, the
post-process options and the libraries that shape the bytes. A rerun with the same hash
resumes: images whose outputs all exist are skipped (every file is written atomically,
so an existing file is a complete one). A rerun with another hash is refused unless
``overwrite``, so one folder never mixes results of two settings. Temp files left by a
killed job are removed at the start; OUT/.xdepth-job.lock (an flock, released by the
kernel even on kill -9) keeps two jobs from writing one folder at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import stat
from importlib import metadata
from pathlib import Path
from typing import Any

from xdepth.errors import XDepthError
from xdepth.job.inputs import JOB_FILE, rel_problem
from xdepth.job.storage import storage_fault
from xdepth.model.manifest import sha256_file
from xdepth.outputs.settings import PostSettings, background_kind
from xdepth.post.encoders import remove_stale_temp_files, write_atomic

LOCK_FILE = ".xdepth-job.lock"
JOB_FORMAT = 1
# Libraries whose versions can change output bytes (decoding, resizing, encoding, inference).
OUTPUT_LIBRARIES = ("xdepth", "numpy", "pillow", "opencv-python-headless", "openvino", "av")


class JobConflict(XDepthError):
    """OUT holds a job with other settings, or another job is writing to it."""


class UnsafeOutput(XDepthError, ValueError):
    """An output path would land outside OUT."""


def library_versions(names: tuple[str, ...] = OUTPUT_LIBRARIES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def settings_record(model: dict[str, Any], settings: PostSettings) -> dict[str, Any]:
    """Everything that changes the output bytes, as one JSON-ready object."""
    post = settings.hashed()
    kind, value = background_kind(settings.background)
    if kind == "image" and "composite" in settings.outputs:
        post["background_sha256"] = sha256_file(value)  # type: ignore[arg-type]
    return {"model": model, "post": post, "libraries": library_versions()}


def settings_hash(record: dict[str, Any]) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


class OutputFolder:
    """OUT for one job: call `open()` first, `close()` at the end (or use `with`)."""

    def __init__(self, out: str | Path, record: dict[str, Any], overwrite: bool = False) -> None:
        self.root = Path(out)
        self.record = record
        self.sha256 = settings_hash(record)
        self.overwrite = overwrite
        self.resuming = False
        self.removed_temp_files: list[Path] = []
        self._lock_fd: int | None = None
        self._real_root: Path | None = None
        self._checked_folders: set[Path] = set()

    def __enter__(self) -> OutputFolder:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> OutputFolder:
        """Create and lock OUT, clear stale temp files, check or write the job file."""
        if self.root.exists() and not self.root.is_dir():
            raise XDepthError(f"{self.root}: exists and is not a folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()
        self._lock()
        try:
            self.resuming = self._check_job_file()
            self.removed_temp_files = remove_stale_temp_files(self.root)
            if not self.resuming:
                job = {
                    "xdepth_job": JOB_FORMAT,
                    "settings_sha256": self.sha256,
                    "settings": self.record,
                    "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                }
                path = self.root / JOB_FILE
                try:
                    write_atomic(path, (json.dumps(job, indent=2) + "\n").encode())
                except OSError as exc:
                    raise storage_fault(exc, path) or exc from None
        except BaseException:
            self.close()
            raise
        return self

    def attach(self) -> OutputFolder:
        """Write into an OUT that another process opened and holds (the driver of a Ray job).

        No lock and no temp-file sweep: those are the opener's. The job file must record
        these very settings, so a worker whose libraries or effective inference precision
        differ from the driver's never mixes its bytes into the job; outputs that exist
        count as done, so a retried batch skips what it already wrote.
        """
        path = self.root / JOB_FILE
        try:
            job = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise JobConflict(
                f"{path}: cannot read the job file ({exc}); the job's driver writes it, and "
                "workers see it only when OUT is on a filesystem they share, at the same path"
            ) from None
        if job.get("settings_sha256") != self.sha256:
            changed = _differences(job.get("settings", {}), self.record)
            shown = "\n  ".join(changed[:8]) or "(settings hash differs)"
            raise JobConflict(
                f"{self.root}: this worker's settings differ from the job's:\n  {shown}\n"
                "Install the same versions on every node and use nodes of one CPU kind"
            )
        self._real_root = self.root.resolve()
        self.resuming = True
        return self

    def _lock(self) -> None:
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise JobConflict(
                f"{self.root}: another xdepth job (pid {holder}) is writing to this folder; "
                "wait for it to finish or choose another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _check_job_file(self) -> bool:
        """True to resume (same settings); False for a fresh job; raise on a conflict."""
        path = self.root / JOB_FILE
        if not path.exists():
            return False
        try:
            job = json.loads(path.read_text(encoding="utf-8"))
            old_sha = job["settings_sha256"]
            old_record = job.get("settings", {})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if self.overwrite:
                return False
            raise JobConflict(
                f"{path}: unreadable job file ({exc}); pass --overwrite to start the job afresh"
            ) from None
        if old_sha == self.sha256:
            return not self.overwrite
        if self.overwrite:
            return False
        changed = _differences(old_record, self.record)
        shown = "\n  ".join(changed[:8]) or "(settings hash differs)"
        raise JobConflict(
            f"{self.root} holds results made with other settings; refusing to mix them.\n"
            f"  {shown}\nUse another output folder, the same settings, or --overwrite to "
            "recompute every image with the new settings"
        )

    # -- per image ------------------------------------------------------------------------

    def folder_for(self, rel: Path) -> Path:
        """The folder of an input's outputs, checked to lie inside OUT (symlinks resolved)."""
        problem = rel_problem(rel)
        if problem:
            raise UnsafeOutput(problem)
        folder = self.root / rel.parent
        if folder in self._checked_folders:
            return folder
        real = folder.resolve()
        if self._real_root is None:
            raise XDepthError("OutputFolder.open() must be called before writing")
        if not real.is_relative_to(self._real_root):
            raise UnsafeOutput(
                f"{folder}: resolves to {real}, outside the output folder {self._real_root} "
                "(a symlink); refusing to write there"
            )
        return folder

    def paths(self, rel: Path, suffixes: tuple[str, ...]) -> list[Path]:
        folder = self.folder_for(rel)
        return [folder / f"{rel.stem}.{suffix}" for suffix in suffixes]

    def complete(self, rel: Path, suffixes: tuple[str, ...]) -> bool:
        """Every output of `rel` exists as a regular file, or a video's frame folder (so it
        was written whole: both are renamed into place when complete)."""
        if not self.resuming:
            return False
        try:
            targets = self.paths(rel, suffixes)
        except UnsafeOutput:
            return False  # reported when the image is written
        for target in targets:
            try:
                mode = target.lstat().st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    return False
            except OSError:
                return False
        return True

    def write(self, rel: Path, files: dict[str, bytes]) -> tuple[Path, ...]:
        """Write `<rel parent>/<stem>.<suffix>` files atomically; return their paths.

        All or nothing: when one file fails, those written before it are removed, so an
        image is either complete or absent. A full disk (or quota, read-only, I/O error)
        raises StorageFault, which stops the job.
        """
        folder = self.folder_for(rel)
        written: list[Path] = []
        target = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if folder not in self._checked_folders:
                self.folder_for(rel)  # again: the folder may have been swapped for a symlink
                self._checked_folders.add(folder)
            for suffix, data in files.items():
                target = folder / f"{rel.stem}.{suffix}"
                written.append(write_atomic(target, data))
        except Exception as exc:
            for path in written:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            fault = storage_fault(exc, target)
            if fault is not None:
                raise fault from exc
            raise
        return tuple(written)
