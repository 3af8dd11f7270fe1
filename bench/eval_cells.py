"""Real accuracy for `xdepth bench --eval-data nyuv2=PATH,...`: each artifact is scored on
the benchmarks given, with `xdepth eval`'s protocol and runner, beside its speed."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from xdepth.eval.datasets import DATASETS

BENCH_METRICS = ("abs_rel", "delta1")


def parse_eval_data(text: str) -> dict[str, dict[str, str | None]]:
    """``nyuv2=PATH[@SPLIT],kitti=PATH`` -> {"nyuv2": {"data": PATH, "split": SPLIT}}."""
    found: dict[str, dict[str, str | None]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, where = item.partition("=")
        name = name.strip().lower()
        if not sep or not where or name not in DATASETS:
            raise argparse.ArgumentTypeError(
                f"--eval-data {item!r}: give NAME=PATH[@SPLIT], NAME one of {', '.join(DATASETS)}"
            )
        data, _, split = where.partition("@")
        found[name] = {"data": data, "split": split or None}
    return found


def benchmark_scores(
    backend: Any, eval_data: dict[str, dict[str, str | None]] | None, limit: int | None = None
) -> dict[str, dict[str, float]] | None:
    """AbsRel and delta1 per benchmark, averaged over its images (the first `limit` of
    its split when given); None without --eval-data."""
    if not eval_data:
        return None
    from xdepth.eval import evaluate, make_protocol, open_dataset
    from xdepth.model.backends.interface import as_backend

    inference = as_backend(backend)
    figures: dict[str, dict[str, float]] = {}
    for name, where in eval_data.items():
        dataset = open_dataset(name, str(where["data"]), where["split"])
        if limit:
            dataset.samples = dataset.samples[:limit]
        protocol = make_protocol(dataset.spec, inference.semantics)
        with tempfile.TemporaryDirectory(prefix=f"xdepth-bench-{name}-") as out:
            summary = evaluate(inference, dataset, Path(out), protocol, quiet=True)
        figures[name] = {k: round(summary.scores[k], 5) for k in BENCH_METRICS if summary.scores}
        figures[name]["images"] = summary.record["scored"]
    return figures
