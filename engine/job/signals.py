"""SIGTERM stops a job the way Ctrl-C does, and a second signal stops it at once.

Schedulers (Slurm, Kubernetes, a preempted Ray node) send SIGTERM, then SIGKILL after a
grace period. The first SIGINT or SIGTERM raises `Interrupted` (a KeyboardInterrupt) in the
main thread: the job stops feeding images, drops those in flight (every output is written
atomically), writes OUT/run.json and exits with 128 + the signal's number. A second signal
exits at once, without cleaning up: a rerun removes what is left and finishes the job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from xdepth.job.exit_codes import signal_exit_code

__all__ = ["Interrupted", "reclaim_signals", "stop_on_signals"]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; `exit_code` is what the process should exit with."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(self.name)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return signal_exit_code(self.signum)


class _State:
    active = False  # inside stop_on_signals()
    stopping = False  # a first signal was handled


def _handle(signum: int, frame: FrameType | None) -> None:
    if _State.stopping:
        os.write(2, f"xdepth: {signal.Signals(signum).name} again: exiting now\n".encode())
        os._exit(signal_exit_code(signum))
    _State.stopping = True
    raise Interrupted(signum)


def _install() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _handle)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted` once, then exit at once.

    Only the main thread can handle signals; elsewhere this does nothing. The previous
    handlers come back at the end.
    """
    if threading.current_thread() is not threading.main_thread() or _State.active:
        yield
        return
    previous: dict[int, Any] = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    _State.active, _State.stopping = True, False
    _install()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _State.active = _State.stopping = False


def reclaim_signals() -> None:
    """Install the stop handlers again where a library replaced them (`ray.init` sets its own
    SIGTERM handler, which would end the driver without writing OUT/run.json)."""
    if _State.active and threading.current_thread() is threading.main_thread():
        _install()
