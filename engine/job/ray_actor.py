"""The actor of `xdepth run --ray`: one artifact, opened once, and the engine's own pipeline.

Ray Data constructs `DepthActor` in a process of its own on some node of the cluster and
calls it once per call of the job: the [path, rel] pairs of some images, or of one video.
It sends them through the local runner's own loop (`xdepth.job.outcomes.drive`: decode,
infer, temporal alignment, the video's encoders, the rename at its end) and returns one
row per input. The class is plain Python, which Ray runs as an actor (xdepth.job.ray_job);
Ray is imported only to wait on the progress tally's handle the driver passes in.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from xdepth.api import open_backend
from xdepth.errors import XDepthError
from xdepth.job.inputs import InputItem
from xdepth.job.local import job_done, job_pipeline
from xdepth.job.outcomes import Outcome, Outcomes, drive
from xdepth.job.output_folder import OutputFolder, settings_record
from xdepth.job.ray_progress import TallySender
from xdepth.job.storage import StorageFault
from xdepth.model.backends.interface import as_backend
from xdepth.outputs.settings import PostSettings

__all__ = ["STAGE_KEYS", "DepthActor", "claim_numa_node"]
STAGE_KEYS = ("busy_s", "waited_for_input_s", "waited_on_next_stage_s")
NUMA_NODES = Path("/sys/devices/system/node")


class DepthActor:
    """One actor of the pool: the artifact opened once, every batch through the job pipeline.

    Ray constructs it on its node with the driver's paths and settings; `cpus` is what Ray
    reserved for it, and becomes OpenVINO's INFERENCE_NUM_THREADS. Ray reserves CPUs by
    count, not by id: when this process may run on more CPUs than that, other actors may
    share them, and OpenVINO's thread pinning (first CPUs first) would stack every actor's
    streams on the same cores, so it is turned off. A process confined to its own CPUs
    (`numa`: a NUMA node claimed with `claim_numa_node`) keeps it.
    """

    def __init__(
        self,
        artifact: str,
        out: str,
        cwd: str,
        settings: PostSettings,
        cpus: int,
        backend_options: dict[str, Any],
        pipeline_options: dict[str, Any],
        numa: bool = False,
        tally: Any = None,
    ) -> None:
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise XDepthError(
                f"{cwd}: the driver's working folder is not reachable on "
                f"{socket.gethostname()} ({exc.strerror}); run the job from a folder on a "
                "filesystem every node mounts at the same path"
            ) from None
        self.numa_node, self._numa_lock = claim_numa_node() if numa else (None, None)
        shared = not numa and len(os.sched_getaffinity(0)) > cpus
        backend = open_backend(
            artifact, threads=cpus, cpu_pinning=False if shared else None, **backend_options
        )
        self.inference = as_backend(backend)
        self.settings = settings
        record = settings_record(self.inference.identity(), settings)
        self.folder = OutputFolder(out, record).attach()
        self.pipeline_options = pipeline_options
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.tally = tally  # a FrameTally actor: a video's frames on the driver's bar as they go

    def _sender(self) -> TallySender | None:
        if self.tally is None:
            return None
        import ray

        return TallySender(self.tally, ray.get)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Calls of [path, rel] pairs in (images, or a video); per input: status, stage,
        reason, a video's frames and run.json record, and a share of the timings."""
        pairs = [pair for call in batch["inputs"] for pair in json.loads(str(call))]
        paths = [str(path) for path, _ in pairs]
        items = [InputItem(Path(path), Path(rel)) for path, rel in pairs]
        pipeline = job_pipeline(self.inference, self.settings, self.folder, **self.pipeline_options)
        busy_before = self.inference.clock.seconds
        started = time.time()  # wall clock: comparable across the pool's processes
        outcomes = Outcomes(self._sender())
        fault: StorageFault | None = None
        try:
            done = partial(job_done, self.folder, self.settings)
            drive(pipeline, items, self.settings, self.folder, outcomes, done)
        except StorageFault as exc:  # OUT refused data: reported, and the driver stops
            fault = exc
        ends = [_final(outcomes.by_path.get(path), path, fault) for path in paths]
        share = 1.0 / len(paths)
        rows: dict[str, Any] = {
            "actor": [self.name] * len(paths),
            "started": [started] * len(paths),
            "ended": [time.time()] * len(paths),
            "path": paths,
            "status": [end.status for end in ends],
            "stage": [end.stage for end in ends],
            "reason": [end.reason for end in ends],
            "frame": [-1 if end.frame is None else end.frame for end in ends],
            "frames": [end.frames for end in ends],
            "record": [json.dumps(end.record) if end.record else "" for end in ends],
            "video": [end.video for end in ends],
            "model_s": [(self.inference.clock.seconds - busy_before) * share] * len(paths),
        }
        for name, stats in pipeline.stats.items():
            figures = stats.as_dict()
            rows[f"{name}.workers"] = [figures["workers"]] * len(paths)
            for key in STAGE_KEYS:
                rows[f"{name}.{key}"] = [figures[key] * share] * len(paths)
        return {key: np.asarray(values) for key, values in rows.items()}


def _final(outcome: Outcome | None, path: str, fault: StorageFault | None) -> Outcome:
    """An input's outcome for the driver: "stopped" (with the fault's code and reason) when
    OUT refused data before it ended."""
    if outcome is not None and outcome.status != "cancelled":
        return outcome
    if fault is not None:
        return Outcome("stopped", fault.code, str(fault))
    return Outcome("failed", "run", f"{path}: the pipeline ended without its result")


def claim_numa_node(nodes: Path = NUMA_NODES, locks: Path | None = None) -> tuple[str, int]:
    """Confine this process to the CPUs of a NUMA node no other actor on the machine holds.

    The claim is an flock on a node-local file per NUMA node, held by the returned file
    descriptor (the kernel drops it when the process ends). Every thread of the process
    moves, so OpenVINO, which pins its streams inside the process's CPUs, and the decode and
    encode threads all stay on the node, near the memory they first touch.
    """
    folder = locks or Path(tempfile.gettempdir())
    allowed = os.sched_getaffinity(0)
    for node in sorted(nodes.glob("node[0-9]*"), key=lambda path: int(path.name[4:])):
        cpus = _cpu_list(node / "cpulist") & allowed
        if not cpus:
            continue
        fd = os.open(folder / f"xdepth-numa-{node.name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        for thread in Path("/proc/self/task").iterdir():
            with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(thread.name), cpus)
        return node.name, fd
    raise XDepthError(
        f"{socket.gethostname()}: no NUMA node in {nodes} is free (each holds another "
        "xdepth actor); with --ray-numa run at most one actor per NUMA node: set "
        "--ray-cpus-per-actor to a node's CPUs"
    )


def _cpu_list(path: Path) -> set[int]:
    """The CPUs of a sysfs list such as '0-3,8-11'."""
    cpus: set[int] = set()
    for part in path.read_text().strip().split(","):
        if part:
            first, _, last = part.partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    return cpus
