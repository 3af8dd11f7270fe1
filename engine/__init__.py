"""xdepth: fast monocular depth and depth-based clipping on CPUs. The runtime imports no torch."""
