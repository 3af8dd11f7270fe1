"""Throughput-against-accuracy benchmarks."""
