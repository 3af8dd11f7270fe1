"""The trainer of the shipped xdepth-tiny: data, losses, and the training run."""
