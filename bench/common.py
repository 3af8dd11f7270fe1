"""Shared benchmark plumbing: machine identity, library versions, timing, result files.

Results go to ``bench/results/<machine>/<date>-<name>.json`` (override the root with
``XDEPTH_BENCH_RESULTS``), where ``<machine>`` names the CPU by vendor, generation, best
native ISA and the threads the run used (``amd-epyc-zen4-avx512bf16-2t``): "AMD EPYC" alone
is every EPYC generation, and one thread of a CPU is not two.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from xdepth.model.hardware import core_count, cpu_info, cpu_model
from xdepth.post.encoders import write_atomic

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LIBRARIES = (
    "numpy",
    "opencv-python-headless",
    "pillow",
    "torch",
    "transformers",
    "openvino",
    "nncf",
    "xdepth",
)


def machine_slug(threads: int | None = None) -> str:
    """Folder-safe machine name, e.g. ``amd-epyc-zen4-avx512bf16-2t`` (threads: this
    process's cores unless a run uses fewer)."""
    return cpu_info().machine_name(threads or core_count())


def library_versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (nothing is imported)."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def command_line() -> str:
    """The command that started this process, as it can be typed again."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = [sys.executable, "-m", spec.name] if spec is not None else [sys.executable, sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])


def environment(threads: int | None = None) -> dict[str, Any]:
    """Where and how a benchmark ran: enough to compare or repeat the figures."""
    return {
        "machine": machine_slug(threads),
        "cpu_model": cpu_model(),
        "cpu": cpu_info().describe(),
        "cores": core_count(),
        "threads": threads or core_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "command": command_line(),
        "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def results_dir() -> Path:
    return Path(os.environ.get("XDEPTH_BENCH_RESULTS", RESULTS_DIR))


def write_result(name: str, payload: dict[str, Any], root: Path | None = None) -> Path:
    """Write ``payload`` (plus ``environment()`` unless present) as JSON; return its path.

    `root` replaces ``results_dir()`` (the file still goes to ``<root>/<machine>/``)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise ValueError(f"result name must be lower-case letters, digits, - or _, got {name!r}")
    record = {"name": name, **payload}
    record.setdefault("environment", environment())
    folder = (root or results_dir()) / record["environment"]["machine"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dt.date.today().isoformat()}-{name}.json"
    write_atomic(path, (json.dumps(record, indent=2, sort_keys=False) + "\n").encode())
    return path


def time_runs(fn: Callable[[], object], runs: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``runs`` calls after ``warmup`` untimed ones."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_ms(times_s: list[float]) -> float:
    return round(statistics.median(times_s) * 1e3, 2)
