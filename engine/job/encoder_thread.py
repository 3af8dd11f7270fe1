"""A video output's encoder on a thread of its own.

A video's outputs were encoded one after another by the job's caller thread, which also
orders results and keeps the logs: at 1080p a 16-bit FFV1 frame takes 30-150 ms of CPU and
an H.264 frame 25-100 ms (smooth to noisy depth), so that one thread capped a job at 4-17
frames per second however many cores the model had (the embedded model on 2 cores: 11.7
frames/s; 16.3 with a thread per output). Each output now encodes on its own thread, fed
through a short queue, frames in order: the outputs encode in parallel with each other
and with the pipeline (PyAV releases the GIL while FFmpeg encodes and muxes), and each
encoder still runs single-threaded, so the bytes stay those of a serial encode.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Protocol

QUEUED_FRAMES = 4  # per output: enough to ride out one slow frame, a few frames of memory


class OutputWriter(Protocol):
    """What `xdepth.job.video_io` writers offer (StreamWriter, FrameFolderWriter)."""

    def add(self, *frame: Any) -> None: ...
    def close(self) -> None: ...
    def publish(self) -> Any: ...
    def abort(self) -> None: ...


class EncoderThread:
    """`writer` behind a thread: `add` queues a frame (raising the first error the thread
    met, e.g. a full disk), `close` waits for the queue, `abort` drops what is queued."""

    def __init__(self, writer: OutputWriter, name: str) -> None:
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(QUEUED_FRAMES)
        self.error: BaseException | None = None
        self.dropping = False
        self.thread = threading.Thread(target=self._run, name=f"xdepth-encode-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (frame := self.queue.get()) is not None:
            if self.error is None and not self.dropping:
                try:
                    self.writer.add(*frame)
                except BaseException as exc:  # raised in the caller's thread, at its next call
                    self.error = exc

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def add(self, *frame: Any) -> None:
        self._check()
        self.queue.put(frame)

    def _stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def close(self) -> None:
        """Encode what is queued, then flush and close the file."""
        self._stop()
        self._check()
        self.writer.close()

    def publish(self) -> Any:
        return self.writer.publish()

    def abort(self) -> None:
        self.dropping = True
        self._stop()
        self.writer.abort()
