"""xdepth: fast monocular depth and depth-based clipping on CPUs. The runtime imports no torch.

`xdepth.DepthEngine` (see xdepth.api) is imported on first use, so `import xdepth` stays
light: no OpenVINO, no OpenCV, no torch until an engine is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xdepth.api import DepthEngine

__all__ = ["DepthEngine"]


def __getattr__(name: str) -> Any:
    if name == "DepthEngine":
        from xdepth.api import DepthEngine

        return DepthEngine
    raise AttributeError(f"module 'xdepth' has no attribute {name!r}")
