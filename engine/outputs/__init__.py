"""What a job writes: one image's result (`DepthResult`), the output kinds, and the
post-process settings and presets."""

from xdepth.outputs.result import DepthResult

__all__ = ["DepthResult"]
