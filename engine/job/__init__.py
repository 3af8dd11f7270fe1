"""A job: inputs, decoding, the pipeline, the local and Ray runners, the output folder,
and what stops a job (storage faults, signals, exit codes)."""
