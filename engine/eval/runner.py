"""`xdepth eval`'s job: a set's samples through the engine's pipeline, scored in its post
workers, into OUT.

The same pipelined path as `xdepth run` (`xdepth.job.pipeline.Pipeline`): readers decode the
image and its ground truth, inference keeps requests in flight, post workers upsample the
prediction to the ground truth's size and score it (`xdepth.eval.protocol`). OUT holds:

- ``per_image.csv``: one line per scored sample, appended as it is scored;
- ``eval.json``: model, precision asked for and computed, CPU, dataset, split size, each
  metric averaged over images, images/s, and the published figures beside ours;
- ``errors.jsonl`` and ``run.json``: as for `xdepth run` (`xdepth.job.local.JobLog`).

OUT's job file (`xdepth.job.output_folder.OutputFolder`) records model, dataset, split and protocol:
the same command again skips the samples already in ``per_image.csv``; other settings are
refused unless ``overwrite``. A missing or damaged sample is reported by name, counted,
and the evaluation goes on.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdepth.eval.datasets import Dataset, Sample
from xdepth.eval.protocol import METRICS, Protocol, mean_scores, score_image
from xdepth.job.imageio import DEFAULT_MAX_PIXELS
from xdepth.job.local import JobLog, RunSummary
from xdepth.job.output_folder import OutputFolder
from xdepth.job.pipeline import Pipeline, Task
from xdepth.model.backends.interface import Backend, as_backend
from xdepth.model.hardware import cpu_info
from xdepth.post.encoders import write_atomic
from xdepth.post.resize import resize_depth

PER_IMAGE_FILE = "per_image.csv"
EVAL_FILE = "eval.json"
COLUMNS = ("name", *METRICS, "scale", "shift", "valid_px")


@dataclass
class EvalSummary:
    """What an evaluation measured; `record` is OUT/eval.json."""

    run: RunSummary
    scores: dict[str, float]
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return self.run.exit_code

    def describe(self) -> str:
        r = self.record
        lines = [
            f"{r['dataset']['title']} ({r['dataset']['split_size']} samples): "
            f"{r['scored']} scored, {r['failed']} failed, {r['skipped']} already scored; "
            f"{r['images_per_s']:.3g} images/s"
        ]
        if self.scores:
            lines.append(describe_scores(self.scores, r.get("published")))
        if r["failed"]:
            lines.append(f"failures are listed in {Path(self.run.out) / 'errors.jsonl'}")
        return "\n".join(lines)


def describe_scores(ours: dict[str, float], published: dict[str, Any] | None) -> str:
    """Our figures, and the published ones beside them where the card cites some."""
    header = f"{'':>10}" + "".join(f"{name:>9}" for name in METRICS)
    rows = [header, f"{'xdepth':>10}" + "".join(f"{ours[name]:>9.4f}" for name in METRICS)]
    if published:
        cells = [published.get(name) for name in METRICS]
        shown = "".join(f"{c:>9.4g}" if c is not None else f"{'-':>9}" for c in cells)
        rows.append(f"{'published':>10}{shown}")
        rows.append(f"published: {published.get('source', '')}")
    return "\n".join(rows)


def published_figures(inference: Backend, dataset: str) -> dict[str, Any] | None:
    """The card's published zero-shot figures for `dataset`, when it cites some."""
    from xdepth.model.cards import CardError, get_card

    variant = inference.identity().get("variant")
    if not variant:
        return None
    try:
        card = get_card(str(variant))
    except CardError:
        return None
    figures = card.published.get(dataset)
    return dict(figures) if figures else None


def _read_scored(path: Path, names: set[str]) -> list[dict[str, Any]]:
    """Rows of a previous run's per_image.csv (a line cut short by a kill is dropped)."""
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("name") in names and all(row.get(c) not in (None, "") for c in COLUMNS):
                rows.append(row)
    return rows


def _score(protocol: Protocol, inference: Backend, resize: str):
    """The post workers' hook: the prediction at the ground truth's size, scored."""

    def scorer(task: Task, result: Any) -> None:
        sample: Sample = task.source
        gt, mask = sample.gt_depth_m, sample.gt_mask
        sample.gt_depth_m = sample.gt_mask = None
        pred = result.depth
        if gt is None:
            raise ValueError(f"{sample.name}: no ground truth was read")
        if pred.shape != gt.shape:  # ground truth at another size than its image
            pred = resize_depth(pred, gt.shape[0], gt.shape[1], mode=resize)  # type: ignore[arg-type]
        sample.scores = score_image(pred, gt, protocol, mask)

    return scorer


def evaluate(
    backend: Any,
    dataset: Dataset,
    out: str | Path,
    protocol: Protocol,
    *,
    overwrite: bool = False,
    quiet: bool = False,
    readers: int = 2,
    post_workers: int = 2,
    max_in_flight: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> EvalSummary:
    """Score `backend` on `dataset` under `protocol` into `out`; see the module docstring."""
    from xdepth.outputs.settings import PostSettings

    inference = as_backend(backend)
    settings = PostSettings()
    record = {
        "model": inference.identity(),
        "eval": {
            "dataset": dataset.spec.name,
            "split": dataset.split_file,
            "kb_crop": dataset.kb_crop,
            "protocol": protocol.as_dict(),
        },
    }
    folder = OutputFolder(out, record, overwrite)
    summary = RunSummary(out=str(out), model=inference.label, precision=inference.precision())
    csv_path = Path(out) / PER_IMAGE_FILE
    with folder:
        summary.resumed = folder.resuming
        names = {s.name for s in dataset.samples}
        done = _read_scored(csv_path, names) if folder.resuming else []
        scored = {row["name"] for row in done}
        rows: list[dict[str, Any]] = list(done)
        pipeline = Pipeline(
            inference,
            settings,
            readers=readers,
            post_workers=post_workers,
            max_in_flight=max_in_flight,
            max_pixels=max_pixels,
            skip=lambda task: task.source.name in scored,
            scorer=_score(protocol, inference, settings.resize),
        )
        _write_rows(csv_path, done)
        busy_before = inference.clock.seconds
        with (
            JobLog(summary, len(dataset.samples), quiet) as log,
            csv_path.open("a", newline="", encoding="utf-8") as handle,
        ):
            writer = csv.DictWriter(handle, COLUMNS)
            try:
                for task in pipeline.results(dataset.samples):
                    sample: Sample = task.source
                    if not task.error and not task.skipped and not task.cancelled:
                        row = {"name": sample.name} | (sample.scores or {})
                        writer.writerow(row)
                        handle.flush()
                        rows.append(row)
                    log.add(sample.name, task.error, skipped=task.skipped, done=not task.cancelled)
            finally:
                summary.model_seconds = inference.clock.seconds - busy_before
                summary.stages = {name: s.as_dict() for name, s in pipeline.stats.items()}
    scores = mean_scores(rows)
    result = EvalSummary(summary, scores)
    result.record = _eval_record(inference, dataset, protocol, summary, scores, len(rows))
    text = json.dumps(result.record, indent=2, allow_nan=False) + "\n"
    write_atomic(Path(out) / EVAL_FILE, text.encode())
    return result


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """per_image.csv afresh: the header and the rows kept from a previous run."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _eval_record(
    inference: Backend,
    dataset: Dataset,
    protocol: Protocol,
    summary: RunSummary,
    scores: dict[str, float],
    scored_total: int,
) -> dict[str, Any]:
    spec = dataset.spec
    published = published_figures(inference, spec.name)
    return {
        "model": inference.label,
        "model_identity": inference.identity(),
        "precision": summary.precision.get("requested"),
        "effective_precision": summary.precision.get("effective"),
        "float_layers": summary.precision.get("float_layers"),
        "cpu": cpu_info().describe(),
        "dataset": {
            "name": spec.name,
            "title": spec.title,
            "split": spec.split,
            "split_file": dataset.split_file,
            "split_size": len(dataset.samples),
            "published_split_size": spec.split_size,
            "left_out_without_ground_truth": dataset.left_out,
            "kb_crop": dataset.kb_crop,
            "source": spec.source,
        },
        "protocol": protocol.as_dict(),
        "scored": scored_total,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "metrics": {name: _finite(scores.get(name)) for name in METRICS},
        "images_per_s": round(summary.images_per_s, 4),
        "model_images_per_s": round(summary.model_images_per_s, 4),
        "seconds": round(summary.seconds, 3),
        "published": published,
        "errors": summary.errors[:20],
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
