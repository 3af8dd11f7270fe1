"""The video bench end to end on a tiny clip: its result file names the CPU and the command,
and holds throughput against model only, the host's costs and a memory series."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from xdepth.bench import video_bench
from xdepth.bench.common import machine_slug


def test_video_bench_records_throughput_host_costs_and_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDEPTH_BENCH_RESULTS", str(tmp_path / "results"))
    args = ["--variants", "xdepth-tiny:f32", "--frames", "6", "--size", "96x64", "--runs", "1"]
    args += ["--memory-frames", "150", "--memory-size", "96x64"]
    args += ["--memory-variant", "xdepth-tiny:f32"]
    args += ["--artifacts-dir", str(tmp_path / "artifacts"), "--name", "video-test"]
    monkeypatch.setattr(sys, "argv", ["video_bench", *args])
    assert video_bench.main(args) == 0
    [path] = (tmp_path / "results").rglob("*-video-test.json")
    assert path.parent.name == machine_slug()
    result = json.loads(path.read_text())
    assert "--variants xdepth-tiny:f32" in result["environment"]["command"]
    assert result["environment"]["cpu_model"] and result["environment"]["cpu"]
    figures = result["throughput"]["xdepth-tiny:f32"]
    assert figures["e2e_frames_per_s"] > 0 and figures["model_only_frames_per_s"] > 0
    assert math.isclose(figures["e2e_vs_model"], figures["runs"][0]["e2e_vs_model"])
    assert figures["outputs_identical_across_runs"]
    costs = figures["host_cpu_ms_per_frame"]
    assert {"decode_h264", "resize_to_model", "depth16_encode", "composite_encode"} <= set(costs)
    memory = result["memory"]
    assert memory["frames"] == 150 and memory["clip"]["size"] == [96, 64]
    assert 0 < memory["early_frame"] < 150 and memory["peak_mb"] > 0
    assert math.isfinite(memory["slope_mb_per_1k_frames"]) and memory["series_frame_rss_mb"]
    assert memory["with_malloc_trim_threshold_128k"]["frames"] == 150
