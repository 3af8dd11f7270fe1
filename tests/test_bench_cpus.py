"""The bench on CPUs this machine is not: an AVX2-only Zen 3, a Zen 4, a Sapphire Rapids.

CPU-dependent behaviour is read from a CpuInfo at run time, so a fake one shows what the
bench reports elsewhere: no peak and no share for a precision the CPU does not compute
natively, rows labelled with what ran, result folders named for the CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from xdepth.bench.ceiling import NOT_NATIVE, achieved, matmul_peaks
from xdepth.bench.fastest import fastest_precisions
from xdepth.bench.schema import make_cell
from xdepth.bench.table import _share, precision_label
from xdepth.model.hardware import CpuInfo, cpu_info

AVX2 = frozenset({"sse4_2", "avx2", "fma"})
ZEN4 = AVX2 | {"avx512f", "avx512_bf16", "avx512_vnni"}
SPR = ZEN4 | {"amx_tile", "amx_bf16", "amx_int8"}
ZEN3 = CpuInfo("AMD EPYC 7B13", AVX2, ("FP32", "INT8"), "AuthenticAMD", 25, 1)
GENOA = CpuInfo("AMD EPYC", ZEN4, ("BF16", "FP32", "INT8"), "AuthenticAMD", 25, 17)
XEON = CpuInfo(
    "Intel(R) Xeon(R) Platinum 8480+", SPR, ("BF16", "FP32", "INT8"), "GenuineIntel", 6, 143
)
VARIANT = {"name": "v", "random_init": True, "weights": "random-init", "gflop_per_image": 10.0}


@pytest.mark.parametrize(
    ("cpu", "threads", "name"),
    [
        (ZEN3, 1, "amd-epyc-zen3-avx2-1t"),
        (GENOA, 2, "amd-epyc-zen4-avx512bf16-2t"),
        (XEON, 2, "intel-xeon-spr-amx-2t"),
        (CpuInfo("AMD EPYC", AVX2, ("FP32",), "AuthenticAMD", 25, 2), 2, "amd-epyc-f25m2-avx2-2t"),
    ],
)
def test_machine_names_separate_cpus(cpu: CpuInfo, threads: int, name: str) -> None:
    assert cpu.machine_name(threads) == name
    described = cpu.describe()
    assert described["family"] == cpu.family and described["isa"] == cpu.isa


def test_results_land_in_a_folder_named_for_the_cpu(monkeypatch, tmp_path: Path) -> None:
    from xdepth.bench.common import environment, write_result

    monkeypatch.setattr("xdepth.bench.common.cpu_info", lambda: ZEN3)
    env = environment(threads=1)
    assert env["machine"] == "amd-epyc-zen3-avx2-1t" and env["cpu"]["generation"] == "Zen 3 Milan"
    path = write_result("r", {"environment": env}, tmp_path)
    assert path.parent.name == "amd-epyc-zen3-avx2-1t"


def test_avx2_cpu_has_no_bf16_peak_and_no_bf16_share() -> None:
    peaks = matmul_peaks(threads=1, size=128, repeats=1, cpu=ZEN3, with_torch=False)
    assert peaks["native"] == {"fp32": True, "bf16": False, "int8": True}
    assert peaks["tflops"]["bf16"] is None and peaks["method"]["bf16"].startswith(NOT_NATIVE)
    assert peaks["tflops"]["fp32"] > 0 and peaks["tflops"]["int8"] > 0
    assert peaks["method"]["fp32"].startswith("OpenVINO MatMul f32")
    assert peaks["isa"]["bf16"] == NOT_NATIVE and "no VNNI" in peaks["isa"]["int8"]
    # torch.compile in bf16 here is torch's emulation: no peak to compare it with.
    compiled = make_cell(VARIANT, peaks, contender="compile", fmt="transformers",
                         precision="bf16", mode="model-only", timing=_timing(5.0))  # fmt: skip
    assert compiled["pct_of_peak"] is None and compiled["peak_key"] is None
    assert _share(compiled | {"peaks": peaks}) == "bf16 not native here"


def test_bf16_request_that_ran_f32_is_labelled_and_compared_with_f32() -> None:
    peaks = {"tflops": {"fp32": 0.1, "bf16": None, "int8": 0.2}, "native": {"bf16": False}}
    cell = make_cell(VARIANT, peaks, contender="xdepth", fmt="openvino", precision="bf16",
                     mode="model-only", timing=_timing(5.0), effective_precision="f32")  # fmt: skip
    assert cell["peak_key"] == "fp32" and cell["pct_of_peak"] == 50.0
    assert precision_label(cell) == "openvino bf16 (ran f32)"
    assert achieved(5.0, 10.0, "bf16", peaks)["pct_of_peak"] is None


def test_peaks_of_this_cpu_are_native_only() -> None:
    peaks = matmul_peaks(threads=1, size=128, repeats=1, with_torch=False)
    for key, native in peaks["native"].items():
        assert (peaks["tflops"][key] is not None) == native
    assert peaks["native"]["bf16"] == cpu_info().has_bf16


def _timing(rate: float) -> dict:
    return {"images_per_s": {"median": rate, "min": rate, "max": rate}}


def _cell(precision: str, rate: float, ran: str | None = None, delta1: float = 1.0) -> dict:
    return make_cell(
        VARIANT | {"random_init": False, "weights": "shipped"},
        None,
        contender="xdepth",
        fmt="openvino",
        precision=precision,
        mode="model-only",
        timing=_timing(rate),
        effective_precision=ran,
        fidelity={"delta1": delta1, "abs_rel": 0.0, "mask_iou": 1.0},
    )


def test_fastest_precision_is_what_auto_would_pick() -> None:
    cells = [_cell("f32", 10.0), _cell("bf16", 30.0, ran="f32"), _cell("int8", 16.0)]
    record = fastest_precisions(cells)["v"]
    assert record["chosen"] == "openvino:int8"
    assert "openvino:bf16" in record["not_native"]  # ran f32: the f32 artifact again
    below = fastest_precisions([_cell("f32", 10.0), _cell("int8", 16.0, delta1=0.5)])["v"]
    assert below["chosen"] == "openvino:f32" and "openvino:int8" in below["dropped"]


def test_quick_mode_says_what_it_skips() -> None:
    from xdepth.bench.cli import QUICK_SKIPS, settings_from_args
    from xdepth.cli import build_parser

    args = build_parser().parse_args(["bench", "--quick"])
    settings = settings_from_args(args)
    assert "compile" not in settings["peers"] and settings["skipped"] == list(QUICK_SKIPS)
    args = build_parser().parse_args(["bench", "--quick", "--peers", "seed,compile"])
    assert not any("torch.compile" in s for s in settings_from_args(args)["skipped"])


def test_readme_table_shows_benchmark_columns_only_where_results_carry_them() -> None:
    from xdepth.bench.table import HEADER, readme_table

    context = {"result_file": "r.json", "command": "xdepth bench", "cpu_model": "AMD EPYC"}
    context |= {"started_utc": "2026-12-07T00:00:00", "threads_used": 2, "peaks": None}
    timing = {"latency_ms": {"p50": 100.0, "p95": 120.0}}
    plain = _cell("f32", 10.0) | context | timing | {"machine": "a-plain"}
    scored = _cell("int8", 16.0) | context | timing | {"machine": "b-scored"}
    scored["benchmarks"] = {
        "kitti": {"abs_rel": 0.08125, "delta1": 0.93761, "images": 652},
        "nyuv2": {"abs_rel": 0.05, "delta1": 0.97, "images": 654},
    }
    unscored = _cell("f32", 10.0) | context | timing | {"machine": "b-scored"}
    failed = unscored | {"precision": "bf16", "error": "export failed"}
    text = readme_table([plain, scored, unscored, failed], "results")
    groups = text.split("#### ")
    plain_lines, scored_lines = groups[1].splitlines(), groups[2].splitlines()
    assert HEADER in groups[1] and "AbsRel / delta1 |" not in groups[1]
    head = next(line for line in scored_lines if line.startswith("| variant"))
    assert head.endswith("| vs truth: delta1 / mask IoU | NYUv2: AbsRel / delta1 "
                         "| KITTI: AbsRel / delta1 |")  # fmt: skip
    rule = next(line for line in scored_lines if line.startswith("|---"))
    assert rule == "|---" * 13 + "|"
    rows = [line for line in scored_lines if line.startswith("| v |")]
    by_precision = {row.split(" | ")[1]: row for row in rows}
    assert by_precision["xdepth, openvino int8"].endswith("| 0.050 / 0.970 | 0.081 / 0.938 |")
    assert by_precision["xdepth, openvino f32"].endswith("| - | - |")
    assert all(row.count("|") == 14 for row in rows)  # failed rows too: 13 columns
    assert [line.count("|") for line in plain_lines if line.startswith("| v |")] == [12]
