"""`xdepth run --ray`: the batch job on Ray Data, with the local runner's files and rules.

The driver (the calling process) does what the local runner does around its pipeline: it
checks the settings, opens OUT (lock, job file with the settings hash, stale temp files),
skips inputs whose outputs are complete, and keeps OUT/errors.jsonl, the progress bar and
OUT/run.json. The other inputs go through ``ray.data`` ``map_batches`` to a fixed pool of
actors (`xdepth.job.ray_actor.DepthActor`): each opens the artifact once, with OpenVINO's
threads set to the CPUs Ray reserves for it, and sends every batch through the local
runner's own loop and pipeline (`xdepth.job.outcomes.drive`: read, infer, post-process,
atomic write under OUT). Images go in batches; a video is a batch of its own, so one actor
decodes, aligns and encodes it whole, in order, as a local run does, and renames its
files into place at its end. An actor returns one row per input (ok, skipped, or failed
with stage and reason; for a video its frames and its run.json record), so a bad image or
video never fails the Ray job.

Actors open the artifact, read the inputs and write OUT by the driver's paths, from the
driver's working folder: on a cluster these live on a filesystem every node mounts at the
same path. Ray is imported here only, and only when a job runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np

from xdepth.api import open_backend
from xdepth.cli.options import run_options
from xdepth.errors import XDepthError, whole_number
from xdepth.job.imageio import DEFAULT_MAX_PIXELS
from xdepth.job.inputs import InputSource, RejectedInput, open_inputs
from xdepth.job.local import JobLog, RunSummary, open_job
from xdepth.job.outcomes import replay
from xdepth.job.output_folder import OutputFolder
from xdepth.job.ray_actor import STAGE_KEYS, DepthActor
from xdepth.job.ray_progress import FrameTally, LiveFrames, TallyPoller
from xdepth.job.signals import reclaim_signals
from xdepth.job.storage import StorageFault, check_output
from xdepth.job.video_io import MAYBE_VIDEO_EXTENSIONS, is_video
from xdepth.model.backends.interface import as_backend
from xdepth.outputs.settings import PostSettings

__all__ = ["run_from_args", "run_ray"]
MAX_BATCH_SIZE = 32
_ADDRESS = re.compile(r"auto|local|ray://\S+|\S+:\d+")
# The last line of a traceback that Ray wraps around an actor's XDepthError (or subclass).
_ACTOR_ERROR = re.compile(r"^xdepth(?:\.\w+)+: (.*)", re.MULTILINE | re.DOTALL)


class JobOptions(TypedDict, total=False):
    """The job options of `xdepth.job.local.run`, taken alike; the pipeline's apply per actor."""

    overwrite: bool
    quiet: bool
    readers: int
    post_workers: int
    max_in_flight: int | None
    max_pixels: int
    min_free: int | None


def run_ray(
    artifact: str | Path,
    inputs: InputSource | Iterable[str | Path],
    out: str | Path,
    settings: PostSettings | None = None,
    *,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: int | None = None,
    batch_size: int | None = None,
    numa: bool = False,
    streams: int | str | None = None,
    precision_hint: str | None = None,
    cache_dir: str | Path | None = None,
    relative_to: str | Path | None = None,
    **options: Unpack[JobOptions],
) -> RunSummary:
    """What `xdepth run --ray` does: `inputs` into `out` on a Ray actor pool, resumably.

    `address`: a Ray cluster (auto, HOST:PORT, ray://HOST:PORT); None attaches to the Ray
    this process already initialised, else to RAY_ADDRESS or a running local Ray, else
    starts one. `actors` (default: as many as fit) x `cpus_per_actor` (default: the smallest
    node's CPUs, i.e. one actor per node) make the pool; `batch_size` images go to an actor
    at a time (default: up to 32, fewer when that leaves actors idle). `numa` confines each
    actor to a NUMA node of its machine that no other actor holds.
    Raises XDepthError on usage errors; image failures go to OUT/errors.jsonl.
    """
    counts = {"actors": actors, "cpus_per_actor": cpus_per_actor, "batch_size": batch_size}
    for name in ("readers", "post_workers", "max_in_flight"):  # checked here, used by actors
        counts[name] = options.get(name)
    for name, value in counts.items():
        _check_count(name, value)
    settings = settings or PostSettings()
    source = (
        inputs
        if isinstance(inputs, InputSource)
        else open_inputs([str(x) for x in inputs], relative_to)
    ).excluding(out)
    check_output(out, source.items, settings, options.get("min_free"))
    backend_options = {"streams": streams, "inference_precision": precision_hint}
    backend_options["cache_dir"] = str(cache_dir) if cache_dir is not None else None
    # The driver compiles once too: the job file records the effective inference precision.
    driver_options = backend_options | {"streams": 1}
    inference = as_backend(open_backend(str(artifact), threads=1, **driver_options))
    max_pixels = options.get("max_pixels", DEFAULT_MAX_PIXELS)
    overwrite, quiet = options.get("overwrite", False), options.get("quiet", False)
    folder, summary, background = open_job(inference, settings, out, overwrite, max_pixels)
    del inference
    driver_only = ("overwrite", "quiet", "min_free")
    pipeline_options = {k: v for k, v in options.items() if k not in driver_only}
    constructor = {
        "artifact": str(artifact),
        "out": str(out),
        "cwd": os.getcwd(),
        "settings": settings,
        "numa": numa,
        "backend_options": backend_options,
        "pipeline_options": pipeline_options | {"background_image": background},
    }
    with folder:
        summary.resumed = folder.resuming
        summary.removed_temp_files = len(folder.removed_temp_files)
        with JobLog(summary, source.total, quiet) as log:
            rows = _pending(source, folder, settings, log)
            if rows:
                ray = _import_ray()
                started = _connect(ray, address, quiet)
                log.start = time.perf_counter()  # as the local runner: from a ready model on
                try:
                    pool = (actors, cpus_per_actor, batch_size, numa)
                    _run_pool(ray, rows, pool, constructor, summary, log)
                finally:
                    if started:
                        ray.shutdown()
    return summary


def _run_pool(
    ray: Any,
    rows: list[dict[str, Any]],
    pool: tuple[int | None, int | None, int | None, bool],
    constructor: dict[str, Any],
    summary: RunSummary,
    log: JobLog,
) -> None:
    """Size the pool on the cluster, run the rows through it, and log what comes back."""
    start_epoch = time.time()
    actors, cpus_per_actor, batch_size, numa = pool
    count, cpus = _pool_size(ray, actors, cpus_per_actor)
    images = sum(1 for row in rows if not row["video"])
    size = batch_size or max(1, min(MAX_BATCH_SIZE, math.ceil(images / count)))
    summary.ray = {"actors": count, "cpus_per_actor": cpus, "batch_size": size, "numa": numa}
    tally = poller = None
    if any(row["video"] for row in rows):  # a video's frames on the bar as they go
        tally = ray.remote(num_cpus=0)(FrameTally).remote()
        poller = TallyPoller(lambda: ray.get(tally.take.remote()), LiveFrames(log))
    constructor = constructor | {"cpus": cpus, "tally": tally}
    batches = _results(ray, _calls(rows, size), count, cpus, constructor)
    order = {row["path"]: index for index, row in enumerate(rows)}
    try:
        with poller or contextlib.nullcontext():
            _collect(batches, summary, log, summary.ray, start_epoch, poller)
    finally:  # run.json lists the videos in input order, as a local run does
        summary.videos.sort(key=lambda record: order.get(record["path"], len(order)))


def _calls(rows: list[dict[str, Any]], size: int) -> list[dict[str, str]]:
    """The actors' calls, one Ray Data row each (its inputs' [path, rel] pairs as JSON):
    each video alone, longest work first, then images `size` at a time."""
    pairs = [[row["path"], row["rel"]] for row in rows if not row["video"]]
    calls = [[[row["path"], row["rel"]]] for row in rows if row["video"]]
    calls += [pairs[start : start + size] for start in range(0, len(pairs), size)]
    return [{"inputs": json.dumps(call)} for call in calls]


def _check_count(name: str, value: int | None) -> None:
    if value is not None:
        whole_number(value, name)


def _pending(
    source: InputSource, folder: OutputFolder, settings: PostSettings, log: JobLog
) -> list[dict[str, Any]]:
    """The inputs still to do, as rows; refused and already complete ones are logged.

    Videos are told by name (then bytes, as locally) without opening every input on the
    driver; one told by its content only is found by the actor, which runs it whole."""
    rows = []
    for entry in source:
        if isinstance(entry, RejectedInput):
            log.add(str(entry.path), ("input", entry.reason))
            continue
        video = entry.path.suffix.lower() in MAYBE_VIDEO_EXTENSIONS and is_video(entry.path)
        if folder.complete(entry.rel, settings.video_suffixes if video else settings.file_suffixes):
            log.add(str(entry.path), None, skipped=True, video=video)
        else:
            rows.append({"path": str(entry.path), "rel": entry.rel.as_posix(), "video": video})
    return rows


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise XDepthError(f"--ray needs Ray Data ({exc}); install xdepth[ray]") from None
    return ray


def _connect(ray: Any, address: str | None, quiet: bool) -> bool:
    """Attach to (or start) Ray unless this process already has; True when attached here."""
    # Ray Data reports to the log; the job has its own progress bar and summary.
    logging.getLogger("ray.data").setLevel(logging.ERROR if quiet else logging.WARNING)
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or None, logging_level="warning", log_to_driver=not quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or "RAY_ADDRESS, a running local Ray, or a new one"
        raise XDepthError(f"cannot reach Ray ({where}): {exc}") from None
    reclaim_signals()  # ray.init replaced the SIGTERM handler with one that skips run.json
    return True


def _pool_size(ray: Any, actors: int | None, cpus_per_actor: int | None) -> tuple[int, int]:
    """(actors, CPUs per actor); by default actors of the smallest node's CPUs, all that fit."""
    node_cpus = [int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node.get("Alive")]
    node_cpus = [cpus for cpus in node_cpus if cpus > 0]
    if not node_cpus:
        raise XDepthError("the Ray cluster has no node with CPUs")
    cpus = cpus_per_actor or min(node_cpus)
    if cpus > max(node_cpus):
        raise XDepthError(
            f"--ray-cpus-per-actor {cpus}: the largest Ray node has {max(node_cpus)} CPUs"
        )
    fit = sum(available // cpus for available in node_cpus)
    count = actors or fit
    if count > fit:
        raise XDepthError(
            f"--ray-actors {count} x --ray-cpus-per-actor {cpus}: the Ray nodes "
            f"({', '.join(map(str, node_cpus))} CPUs) hold only {fit} such actors"
        )
    return count, cpus


def _results(
    ray: Any,
    calls: list[dict[str, str]],
    actors: int,
    cpus: int,
    constructor: dict[str, Any],
) -> Iterator[dict[str, np.ndarray]]:
    """The actors' rows, batch by batch, as they finish."""
    ray.data.DataContext.get_current().enable_progress_bars = False
    # A call per row, a row per block and per batch: Ray Data cannot bundle a video with
    # images, and an actor returns a row per input.
    dataset = ray.data.from_items(calls, override_num_blocks=len(calls))
    mapped = dataset.map_batches(
        DepthActor,
        batch_size=1,
        batch_format="numpy",
        # A fixed pool: `size` is what `concurrency=actors` meant before Ray 2.51.
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus,
        fn_constructor_kwargs=constructor,
    )
    try:
        yield from mapped.iter_batches(batch_size=None, batch_format="numpy")
    except Exception as exc:  # an actor could not start, a node was lost, ...
        raise XDepthError(f"the Ray job stopped: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """An actor's own error message (Ray passes it on inside a traceback), else Ray's."""
    text = str(exc)
    found = _ACTOR_ERROR.search(text)
    return found.group(1).strip() if found else f"{type(exc).__name__}: {text}"


def _collect(
    batches: Iterable[dict[str, np.ndarray]],
    summary: RunSummary,
    log: JobLog,
    pool: dict[str, Any],
    start_epoch: float,
    poller: TallyPoller | None = None,
) -> None:
    """Log every row (a video's against what `poller` showed of it as it went); add the
    actors' timings up into the summary and `pool` (its "ray")."""
    actors = pool["actors"]
    model_s = 0.0
    stages: dict[str, dict[str, Any]] = {}
    calls: dict[tuple[str, float], list[float]] = {}  # (actor, start) -> [end, frames done]
    fault: StorageFault | None = None
    for batch in batches:  # a block of rows: one or more actor calls
        if poller is not None:
            poller.poll()  # the batch's videos sent their last frames before returning
        live = poller.live if poller is not None else None
        columns = ("status", "stage", "reason", "frames", "actor", "started", "ended")
        for index, (status, stage, reason, frames, actor, begin, end) in enumerate(
            zip(*(batch[c] for c in columns), strict=True)
        ):
            if status == "stopped":  # an actor's OUT refused data: the job stops (not a failure)
                fault = StorageFault(str(reason), str(stage))
                continue
            error = (str(stage), str(reason)) if status == "failed" else None
            with live.lock if live is not None else contextlib.nullcontext():
                replay(log, {k: v[index] for k, v in batch.items()}, error, live)
            call = calls.setdefault((str(actor), float(begin)), [float(end), 0])
            call[1] += int(frames) if batch["video"][index] else status == "ok"
        model_s += float(batch["model_s"].sum())
        for column, values in batch.items():
            name, _, key = column.partition(".")
            if not key:
                continue
            figures = stages.setdefault(name, dict.fromkeys(("workers", *STAGE_KEYS), 0.0))
            if key == "workers":
                figures[key] = max(figures[key], int(values.max()) * actors)
            else:
                figures[key] += float(values.sum())
        if fault is not None:  # stop taking batches; the driver's finally shuts Ray down
            break
    # Seconds the pool's models were busy, per actor: model-only images/s of the whole pool.
    summary.model_seconds = model_s / actors
    summary.stages = {
        name: {key: round(value, 3) if key != "workers" else value for key, value in f.items()}
        for name, f in stages.items()
    }
    if calls:
        pool |= _pool_timing(calls, start_epoch)
    if fault is not None:
        raise fault


def _pool_timing(calls: dict[tuple[str, float], list[float]], start_epoch: float) -> dict:
    """`startup_s`: from `start_epoch` until the last actor began its first call (scheduling,
    actor processes, model compile); `steady_images_per_s`: images and video frames done
    from then on to the last call's end (calls counted pro rata of their time in it) per
    second."""
    firsts: dict[str, float] = {}
    for actor, begin in calls:
        firsts[actor] = min(begin, firsts.get(actor, begin))
    full, last = max(firsts.values()), max(end for end, _ in calls.values())
    done = sum(
        ok * max(0.0, end - max(begin, full)) / (end - begin)
        for (_, begin), (end, ok) in calls.items()
        if end > begin
    )
    steady = round(done / (last - full), 3) if last > full else None
    return {"startup_s": round(full - start_epoch, 3), "steady_images_per_s": steady}


def run_from_args(args: argparse.Namespace, settings: PostSettings, source: InputSource) -> Any:
    """`xdepth run --ray`: the command's options checked and handed to `run_ray`."""
    if not _ADDRESS.fullmatch(args.ray) and args.ray:
        raise XDepthError(
            f"--ray {args.ray}: not a Ray address (auto, local, HOST:PORT, ray://HOST:PORT); "
            "put --ray after the inputs, or write --ray=ADDRESS"
        )
    if not args.artifact:
        raise XDepthError("--ray runs an exported model: give --artifact DIR")
    refused = [
        flag
        for flag, given in (
            ("--variant", args.variant),
            ("--weights", args.weights),
            ("--random-init", args.random_init),
            ("--threads", args.threads),
        )
        if given
    ]
    if refused:
        raise XDepthError(
            f"{', '.join(refused)} do not apply with --ray: actors run --artifact DIR with "
            "as many OpenVINO threads as --ray-cpus-per-actor"
        )
    return run_ray(
        args.artifact,
        source,
        Path(args.output),
        settings,
        address=args.ray or None,
        actors=args.ray_actors,
        cpus_per_actor=args.ray_cpus_per_actor,
        batch_size=args.ray_batch_size,
        numa=args.ray_numa,
        streams=args.streams,
        precision_hint=args.precision_hint,
        cache_dir=args.cache_dir,
        **run_options(args),
    )
