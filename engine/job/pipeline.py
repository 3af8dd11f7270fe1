"""The pipelined runner: feed -> readers -> inference -> post workers -> the caller.

::

    feed ──read_q──> readers (threads: decode, EXIF, RGB, host resize)
         ──infer_q──> inference (OpenVINO: async requests in flight; else one thread)
         ──post_q───> post workers (threads: upsample, mask, composites, encode, write)
         ──done_q───> the caller (progress, errors, ordering)

Every queue is bounded, and a window of `max_in_flight` images caps the work between the
feed and the caller, so memory depends on these sizes, never on the number of inputs.
Post-processing runs in threads, not processes: its heavy steps (OpenCV resize, distance
transforms and PNG encoding, Pillow decoding, numpy on whole arrays) release the GIL.
Profiled on a 1920x1080 JPEG (decode, resize, upsample, mask, 16-bit depth and RGBA
cutout PNGs), 2-3 % of the host time holds the GIL (bench/engine_measure.py), so threads
scale to many cores, while a process pool would copy every full-size image and depth map.

A failure is caught where it happens, recorded on the image's task as (stage, reason), and
the task goes straight to the caller; the other images go on. A write that OUT's filesystem
refuses (disk full, quota, read-only, I/O error: `xdepth.job.storage`) is no image's failure:
the pipeline stops, cancels what is in flight, and `results()` raises the StorageFault.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xdepth.errors import XDepthError, whole_number
from xdepth.job.imageio import (
    DEFAULT_MAX_PIXELS,
    image_from_array,
    image_from_pil,
    read_image,
)
from xdepth.job.inputs import InputItem, RejectedInput
from xdepth.job.storage import StorageFault, storage_fault
from xdepth.job.task import StageStats, Task
from xdepth.job.video_frames import FrameSequencer
from xdepth.model.backends.interface import Backend
from xdepth.outputs.result import DepthResult
from xdepth.outputs.settings import PostSettings
from xdepth.outputs.video_kinds import video_kinds

_STOP = object()  # end of a queue's stream


Writer = Callable[[Task, dict[str, bytes]], tuple[Path, ...]]
# In place of writing: a post-worker hook that consumes the task's result (e.g. scores it).
Scorer = Callable[[Task, DepthResult], None]


class Pipeline:
    """One pass over some inputs; `results()` yields finished tasks (ordered if asked)."""

    def __init__(
        self,
        inference: Backend,
        settings: PostSettings,
        *,
        readers: int = 2,
        post_workers: int = 2,
        max_in_flight: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        background_image: np.ndarray | None = None,
        writer: Writer | None = None,
        skip: Callable[[Task], bool] | None = None,
        scorer: Scorer | None = None,
    ) -> None:
        whole_number(readers, "readers")
        whole_number(post_workers, "post_workers")
        self.inference = inference
        self.settings = settings
        self.readers, self.post_workers = readers, post_workers
        self.max_pixels = max_pixels
        self.background_image = background_image
        self.writer, self.skip = writer, skip
        self.scorer = scorer
        requests = inference.requests
        self.read_q: queue.Queue = queue.Queue(2 * readers)
        self.infer_q: queue.Queue = queue.Queue(max(2, requests))
        self.post_q: queue.Queue = queue.Queue()  # bounded by post_slots, so callbacks never block
        self.done_q: queue.Queue = queue.Queue()
        post_capacity = 2 * post_workers
        self.post_slots = threading.Semaphore(post_capacity)
        default_window = 2 * readers + readers + max(2, requests) + requests
        default_window += post_capacity + post_workers + 2
        self.window_size = default_window
        if max_in_flight is not None:
            self.window_size = whole_number(max_in_flight, "max_in_flight")
        self.window = threading.Semaphore(self.window_size)
        self.stop = threading.Event()
        self.stats = {
            "feed": StageStats("feed", 1),
            "read": StageStats("read", readers),
            "infer": StageStats("infer", requests),
            "post": StageStats("post", post_workers),
            "caller": StageStats("caller", 1),
        }
        self._fatal: BaseException | None = None
        self._fault: StorageFault | None = None  # OUT stopped taking data: the job stops
        self._sentinels_lock = threading.Lock()
        self._sentinels_sent = False
        self._threads: list[threading.Thread] = []
        # A video's frames reach post in order, aligned; the frames a frame's smoothing waits
        # for must fit in the window with it.
        self.sequencer = FrameSequencer(max_lag=self.window_size - 1)

    # -- stages ---------------------------------------------------------------------------

    def _feed(self, sources: Iterable[Any]) -> None:
        stats = self.stats["feed"]
        try:
            for index, source in enumerate(sources):
                start = time.perf_counter()
                self.window.acquire()
                waited = time.perf_counter() - start
                if self.stop.is_set():
                    self.window.release()
                    break
                task = Task(index, source)
                if isinstance(source, RejectedInput):
                    task.error = (source.stage, source.reason)
                    self.done_q.put(task)
                elif self.skip is not None and self.skip(task):
                    task.skipped = True
                    self.done_q.put(task)
                else:
                    start = time.perf_counter()
                    self.read_q.put(task)
                    waited += time.perf_counter() - start
                stats.add(wait_next=waited)
        except Exception as exc:  # a broken input stream ends the job, raised by results()
            self._fatal = exc
        finally:
            self._send_read_sentinels()

    def _send_read_sentinels(self) -> None:
        with self._sentinels_lock:
            if self._sentinels_sent:
                return
            self._sentinels_sent = True
        for _ in range(self.readers):
            self.read_q.put(_STOP)

    def _read(self) -> None:
        stats = self.stats["read"]
        while True:
            start = time.perf_counter()
            task = self.read_q.get()
            begun = time.perf_counter()
            if task is _STOP:
                break
            if self.stop.is_set():
                task.cancelled = True
                self.done_q.put(task)
                continue
            self._decode(task)
            done = time.perf_counter()
            if task.error and task.frame is None:  # a frame still takes its turn in order
                self.done_q.put(task)
            else:
                self.infer_q.put(task)
            stats.add(done - begun, begun - start, time.perf_counter() - done)
        self.infer_q.put(_STOP)

    def _decode(self, task: Task) -> None:
        source = task.source
        try:
            if isinstance(source, InputItem):
                decoded = read_image(source.path, self.max_pixels)
            elif isinstance(source, (str, Path)):
                decoded = read_image(source, self.max_pixels)
            elif isinstance(source, Image.Image):
                decoded = image_from_pil(source)
            elif isinstance(source, np.ndarray):
                task.image = image_from_array(source)
                decoded = None
            elif callable(getattr(source, "decode", None)):  # e.g. a benchmark sample
                decoded = source.decode(self.max_pixels)
            else:
                raise TypeError(
                    f"input #{task.index} is a {type(source).__name__}; give a path, "
                    "a PIL image or a numpy array"
                )
            if decoded is not None:
                task.image, task.f_35mm = decoded.rgb, decoded.f_35mm
        except Exception as exc:  # any undecodable input is that image's failure only
            task.fail("read", exc)
            return
        try:
            task.model_input = self.inference.prepare(task.image)
        except Exception as exc:
            task.fail("resize", exc)

    def _infer(self) -> None:
        stats, inference = self.stats["infer"], self.inference
        if inference.asynchronous:
            inference.set_callback(self._inferred)
        finished = 0
        while finished < self.readers:
            start = time.perf_counter()
            task = self.infer_q.get()
            got = time.perf_counter()
            if task is _STOP:
                finished += 1
                continue
            if self.stop.is_set():
                task.cancelled = True
                self.done_q.put(task)
                continue
            self.post_slots.acquire()
            slotted = time.perf_counter()
            model_input, task.model_input = task.model_input, None
            handed_on = False
            try:
                if task.error:
                    pass  # a failed video frame, on its way to the sequencer
                elif inference.asynchronous:
                    inference.start(model_input, task)  # the callback hands it on
                    handed_on = True
                else:
                    task.depth = inference.run(model_input)
            except Exception as exc:  # this image's inference failed; the others go on
                task.fail("infer", exc)
            if not handed_on:
                self._handoff(task)
            stats.add(time.perf_counter() - slotted, got - start, slotted - got)
        inference.wait_all()
        for task in self.sequencer.drain():  # frames whose predecessors never came (a stop)
            self.post_q.put(task)
        for _ in range(self.post_workers):
            self.post_q.put(_STOP)

    def _inferred(self, task: Task, depth: np.ndarray | None, error: BaseException | None) -> None:
        """OpenVINO's callback thread: hand the result on without blocking (a slot is held)."""
        if error is not None:
            task.fail("infer", error)
        task.depth = depth
        self._handoff(task)

    def _handoff(self, task: Task) -> None:
        """To the post workers, video frames in order (a frame held for an earlier one
        gives its post slot back: the window still bounds the frames held)."""
        ready = self.sequencer.arrive(task)
        if task not in ready:
            task.slot_freed = True
            self.post_slots.release()
        for item in ready:
            self.post_q.put(item)

    def _post(self) -> None:
        stats = self.stats["post"]
        while True:
            start = time.perf_counter()
            task = self.post_q.get()
            begun = time.perf_counter()
            if task is _STOP:
                break
            if not task.slot_freed:
                self.post_slots.release()
            if self.stop.is_set():
                task.cancelled = True
            elif not task.error:
                self._finish(task)
            self.done_q.put(task)
            stats.add(time.perf_counter() - begun, begun - start)
        self.done_q.put(_STOP)

    def _finish(self, task: Task) -> None:
        stage = "post"
        try:
            image = task.image
            depth = self.inference.finish(task.depth, image.shape[:2], self.settings.resize)
            result = DepthResult(
                image,
                depth,
                self.settings,
                semantics=self.inference.semantics,
                f_35mm=task.f_35mm,
                background_image=self.background_image,
                path=task.path,
                rel=task.rel,
                depth_range=task.alignment.depth_range if task.alignment else None,
            )
            if self.scorer is not None:
                stage = "score"
                self.scorer(task, result)
                return
            if self.writer is None:
                result.mask  # noqa: B018  (computed here, in the pool, not by the caller)
                task.result = result
                return
            if task.frame is not None:  # encoded in order by the video's writer
                kinds = video_kinds(self.settings.outputs)
                task.planes = {kind.name: kind.frame(result) for kind in kinds}
                return
            files = result.files()
            stage = "write"
            task.written = self.writer(task, files)
        except Exception as exc:  # post-processing or writing this image failed
            fault = storage_fault(exc, task.rel or task.path) if stage == "write" else None
            if fault is None:
                task.fail(stage, exc)
            else:
                task.cancelled = True
                self._halt(fault)
        finally:
            task.depth = None
            if self.writer is not None or self.scorer is not None:
                task.image = None

    def _halt(self, fault: StorageFault) -> None:
        """Stop the job from a worker: later images are cancelled, results() raises `fault`.
        The readers' stop signs go from another thread: the feed may wait on its input
        stream (stdin), and a full read queue must not block this worker."""
        self._fault = self._fault or fault
        self.stop.set()
        threading.Thread(target=self._send_read_sentinels, daemon=True).start()

    # -- driving --------------------------------------------------------------------------

    def results(self, sources: Iterable[Any], ordered: bool = False) -> Iterator[Task]:
        """Run the stages over `sources`; yield every task once it is finished."""
        targets = [(self._feed, (sources,))]
        targets += [(self._read, ())] * self.readers
        targets += [(self._infer, ())]
        targets += [(self._post, ())] * self.post_workers
        for target, args in targets:
            thread = threading.Thread(target=target, args=args, daemon=True)
            thread.name = f"xdepth-{target.__name__.strip('_')}"
            thread.start()
            self._threads.append(thread)
        stats = self.stats["caller"]
        pending: dict[int, Task] = {}
        next_index = 0
        finished = 0
        try:
            while finished < self.post_workers:
                start = time.perf_counter()
                task = self.done_q.get()
                stats.add(wait_input=time.perf_counter() - start)
                if task is _STOP:
                    finished += 1
                    continue
                if not ordered:
                    self.window.release()
                    yield task
                    continue
                pending[task.index] = task
                while next_index in pending:
                    ready = pending.pop(next_index)
                    next_index += 1
                    self.window.release()
                    yield ready
        finally:
            if finished < self.post_workers:
                self._cancel(finished)
            for thread in self._threads[1:]:
                thread.join()
        if self._fault is not None:
            raise self._fault
        fatal = self._fatal
        if isinstance(fatal, XDepthError):
            raise fatal
        if fatal is not None:
            raise XDepthError(
                f"reading the inputs stopped: {type(fatal).__name__}: {fatal}"
            ) from fatal

    def _cancel(self, finished: int) -> None:
        """Stop early (the caller stopped iterating): drop queued work, let threads end."""
        self.stop.set()
        self._send_read_sentinels()  # the feed may be blocked on its input stream
        while finished < self.post_workers:
            task = self.done_q.get()
            if task is _STOP:
                finished += 1
            else:
                self.window.release()
