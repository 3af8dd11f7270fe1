"""The exit codes of `xdepth`, in one place: the CLI returns them, the runner reports them."""

from __future__ import annotations

import signal

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# sysexits.h EX_IOERR: OUT could not take the job's outputs (disk full, quota, read-only, EIO).
EXIT_STORAGE = 74
# A shell's convention, 128 + the signal number: what a scheduler expects back.
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, a scheduler's stop (Slurm, Kubernetes, Ray)
EXIT_CODES = """\
exit codes:
  0    every image succeeded (or was already done)
  1    some images failed (each is listed in OUT/errors.jsonl); the others are done
  2    usage error: a bad option, input, model or output folder (not writable, or less
       free space than --min-free); nothing was processed
  74   OUT's filesystem stopped taking data (disk full, quota, read-only, I/O error): the
       job stopped, OUT/run.json says why; free space and run the same command again
  130  interrupted (Ctrl-C); running the same command again finishes the job
  143  terminated (SIGTERM); likewise. A second Ctrl-C or SIGTERM exits at once"""


def signal_exit_code(signum: int) -> int:
    """128 + the signal's number, the code a shell reports for a job its signal ended."""
    return 128 + int(signum)
