"""`xdepth eval`: accuracy on the depth benchmarks (NYUv2, KITTI, ETH3D, ScanNet, DIODE).

Three parts, one idea each: `datasets` reads each set's archive or folder, file list and
depth encoding; `protocol` holds the valid ranges, crops, alignment and metrics;
`runner` streams the samples through the engine's pipeline and writes OUT.
"""

from xdepth.eval.datasets import DATASETS, Dataset, open_dataset
from xdepth.eval.protocol import Protocol, make_protocol, score_image
from xdepth.eval.runner import EvalSummary, evaluate

__all__ = [
    "DATASETS",
    "Dataset",
    "EvalSummary",
    "Protocol",
    "evaluate",
    "make_protocol",
    "open_dataset",
    "score_image",
]
