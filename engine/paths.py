"""Where xdepth keeps what it makes for itself: one root, one environment variable each.

Compiled OpenVINO models go to ``$XDEPTH_CACHE`` (default ``~/.cache/xdepth/ov-cache``),
artifacts exported on first use to ``$XDEPTH_ARTIFACTS`` (default
``~/.cache/xdepth/artifacts``). Both can be deleted at any time; they refill on use.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """~/.cache/xdepth: the folder the defaults below live in."""
    return Path.home() / ".cache" / "xdepth"


def compile_cache_dir() -> Path:
    """$XDEPTH_CACHE, else ~/.cache/xdepth/ov-cache (xdepth.model.backends.openvino)."""
    env = os.environ.get("XDEPTH_CACHE")
    return Path(env) if env else cache_root() / "ov-cache"


def artifacts_dir() -> Path:
    """$XDEPTH_ARTIFACTS, else ~/.cache/xdepth/artifacts (xdepth.model.cache)."""
    env = os.environ.get("XDEPTH_ARTIFACTS")
    return Path(env) if env else cache_root() / "artifacts"
