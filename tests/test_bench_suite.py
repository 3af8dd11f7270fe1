"""`xdepth bench`: a small real run has every figure; the README table matches the results."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import modules_loaded_by

from xdepth.bench.ceiling import matmul_isa
from xdepth.bench.common import RESULTS_DIR
from xdepth.bench.schema import CELL_KEYS, METRIC_KEYS, SUITE
from xdepth.model.hardware import cpu_info

README = Path(__file__).resolve().parent.parent / "README.md"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """tiny-dpt-beit, OpenVINO f32 and int8, two streams settings, three peers, 1 thread."""
    pytest.importorskip("torch")
    from xdepth.bench.suite import main

    root = tmp_path_factory.mktemp("bench")
    code = main(
        [
            "--variants", "tiny-dpt-beit", "--formats", "openvino:f32,openvino:int8",
            "--streams", "1,auto", "--images", "2", "--runs", "5", "--warmup", "0",
            "--threads", "1", "--peers", "seed,pipeline,benchmark_app",
            "--calibration-size", "4", "--results-dir", str(root / "results"),
            "--artifacts-dir", str(root / "artifacts"), "--name", "bench-test",
        ]
    )  # fmt: skip
    assert code == 0
    (path,) = (root / "results").rglob("*-bench-test.json")
    return path, json.loads(path.read_text())


def _xdepth_cells(payload: dict) -> list[dict]:
    return [c for c in payload["cells"] if c["contender"] == "xdepth"]


def test_result_has_command_environment_and_peaks(small_run, no_network) -> None:
    path, payload = small_run
    assert payload["suite"] == SUITE
    assert payload["command"].startswith("python -m xdepth.bench.suite --variants tiny-dpt-beit")
    env = payload["environment"]
    assert env["cpu_model"] and env["libraries"]["openvino"] and env["libraries"]["torch"]
    peaks = payload["peaks"]
    assert set(peaks["tflops"]) == set(peaks["isa"]) == {"fp32", "bf16", "int8"}
    assert all(v > 0 for v in peaks["tflops"].values())
    assert payload["variants"]["tiny-dpt-beit"]["gflop_per_image"] > 0
    assert path.parent.name == env["machine"] == cpu_info().machine_name(1)  # --threads 1
    assert set(peaks["native"]) == set(peaks["tflops"]) and peaks["native"]["fp32"]
    fastest = payload["fastest"]["tiny-dpt-beit"]
    assert fastest["chosen"] in fastest["rates"] and fastest["random_init"] is True


def test_every_cell_has_every_field(small_run) -> None:
    _, payload = small_run
    cells = payload["cells"]
    assert all(set(CELL_KEYS) <= set(cell) for cell in cells)
    assert not [c["error"] for c in cells if c["error"]]
    seen = {(c["contender"], c["format"], c["precision"], c["mode"]) for c in cells}
    for precision in ("f32", "int8"):
        for mode in ("model-only", "end-to-end"):
            assert ("xdepth", "openvino", precision, mode) in seen
        assert ("benchmark_app", "openvino", precision, "model-only") in seen
    assert ("seed", "transformers", "f32", "end-to-end") in seen
    assert ("pipeline", "transformers", "f32", "end-to-end") in seen
    for cell in _xdepth_cells(payload):
        rate = cell["images_per_s"]
        assert cell["runs"] == 5 and len(cell["run_s"]) == 5
        assert 0 < rate["min"] <= rate["median"] <= rate["max"]
        assert 0 < cell["latency_ms"]["p50"] <= cell["latency_ms"]["p95"]
        assert cell["effective_precision"] in ("f32", "bf16", "int8")
        # The engine's own process: its peak, steady state and stages, and the artifact.
        assert cell["peak_rss_mb"] >= cell["steady_rss_mb"] > 0 and cell["artifact_mb"] > 0
        stages = cell["memory"]["warm_cache"]["stages_mb"]
        assert 0 < stages["imported"] <= stages["compiled"] and cell["bench_rss_mb"] > 0
        assert cell["first_result_s"]["cold_cache"] > 0 and cell["first_result_s"]["warm_cache"] > 0
        assert set(cell["fidelity"]) == set(METRIC_KEYS)
        assert cell["pct_of_peak"] > 0 and cell["peak_key"] in ("fp32", "int8")
        assert cell["peak_key"] == {"f32": "fp32"}.get(cell["effective_precision"], "int8")
        assert cell["random_init"] is True and cell["accuracy"] is None  # random weights
    f32 = [c for c in _xdepth_cells(payload) if c["precision"] == "f32"]
    assert all(c["fidelity"]["delta1"] > 0.999 for c in f32)  # f32 IR matches the reference


def test_benchmark_app_ratio_and_companion_files(small_run) -> None:
    path, payload = small_run
    ratios = {r["precision"]: r for r in payload["vs_benchmark_app"]}
    assert set(ratios) == {"f32", "int8"}
    assert all(r["ratio"] > 0 and r["target"] == 0.95 for r in ratios.values())
    with path.with_suffix(".csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(payload["cells"])
    assert {r["command"] for r in rows} == {payload["command"]}
    assert all(r["random_init"] == "True" and r["lib_openvino"] for r in rows)
    png = path.with_name(path.stem + "-pareto.png")
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_load_results_and_pareto_mark_random_init(small_run) -> None:
    from xdepth.bench.report import load_results, pareto_figure

    path, payload = small_run
    cells = load_results(path.parent)
    assert len(cells) == len(payload["cells"]) and cells[0]["result_file"] == path.name
    axes = pareto_figure(cells).axes[0]
    labels = [t.get_text() for t in axes.texts]
    assert labels and all("(random init)" in label for label in labels)
    assert all(len(c.get_facecolors()) == 0 for c in axes.collections)  # hollow markers


def test_readme_table_regenerates_from_committed_results() -> None:
    from xdepth.bench.report import load_results, update_readme

    committed = [c for c in load_results(RESULTS_DIR) if c["contender"] == "xdepth"]
    embedded = [c for c in committed if c["variant"] == "xdepth-tiny" and not c["error"]]
    assert embedded, "commit the results of `xdepth bench --quick`"
    assert all(set(c["accuracy"]) == set(METRIC_KEYS) for c in embedded)  # vs ground truth
    old, new = update_readme(README, RESULTS_DIR)
    assert new == old, "run: python -m xdepth.bench.report --readme README.md"
    assert "*random init*" in old


def test_report_prints_the_table_of_the_results_given(capsys) -> None:
    from xdepth.bench.report import END, START, main

    assert main(["--results", str(RESULTS_DIR), "--table"]) == 0
    block = README.read_text(encoding="utf-8").split(START)[1].split(END)[0]
    assert capsys.readouterr().out.strip() == block.strip()  # the README's, exactly


def test_isa_names_per_cpu() -> None:
    zen4 = {"avx512f", "fma", "avx512_bf16", "avx512_vnni"}
    assert matmul_isa(zen4) == {"fp32": "AVX-512 FMA", "bf16": "AVX512_BF16", "int8": "AVX512_VNNI"}
    spr = zen4 | {"amx_tile", "amx_bf16", "amx_int8"}
    assert matmul_isa(spr)["bf16"] == "AMX-BF16" and matmul_isa(spr)["int8"] == "AMX-INT8"


def test_bench_subcommand_imports_no_heavy_library() -> None:
    parse = "import xdepth.cli; xdepth.cli.build_parser().parse_args(['bench', '--quick'])"
    assert modules_loaded_by(parse, ("torch", "openvino", "matplotlib")) == []


def test_bad_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from xdepth.cli.main import main

    assert main(["bench", "--runs", "3", "--no-ceiling"]) == 2
    assert "--runs must be at least 5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--formats", "onnx:f32"])
