"""`xdepth eval` on miniatures of NYUv2, KITTI, ETH3D, ScanNet and DIODE (tests/eval_layouts)."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from eval_layouts import Miniature, write_miniature

from xdepth.cli.main import main
from xdepth.eval import DATASETS, evaluate, make_protocol, open_dataset, score_image
from xdepth.eval.datasets import DatasetError, SampleError, kb_crop_box, shipped_split
from xdepth.eval.protocol import crop_mask, valid_mask
from xdepth.model.backends import Backend

SETS = tuple(DATASETS)


@pytest.fixture(scope="module")
def miniatures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Miniature]:
    root = tmp_path_factory.mktemp("sets")
    return {name: write_miniature(root, name) for name in SETS}


class Oracle(Backend):
    """A backend that answers each image with its own ground truth, as a model would in
    disparity: ``scale / depth + shift`` (0 where there is no ground truth); `seen` lists
    the shapes of the images it was given."""

    name = "oracle"

    def __init__(self, mini: Miniature, scale=1.0, shift=0.0, wrong=None, kb_crop=None):
        super().__init__()
        dataset = open_dataset(mini.name, mini.folder, mini.split, kb_crop)
        self.answers, self.seen = {}, []
        for sample in dataset.samples:
            image = sample.decode(10**8).rgb
            gt = mini.depth_m[sample.name]
            inv = np.where(gt > 0, scale / np.where(gt > 0, gt, 1) + shift, 0.0)
            if wrong is not None:  # pixels the protocol must leave out, answered wrongly
                inv[wrong(gt)] = 50.0
            if inv.shape != image.shape[:2]:  # KITTI's benchmark crop: bottom rows, centred
                top, left = gt.shape[0] - image.shape[0], (gt.shape[1] - image.shape[1]) // 2
                inv = inv[top : top + image.shape[0], left : left + image.shape[1]]
            self.answers[hashlib.sha256(image.tobytes()).hexdigest()] = inv.astype(np.float32)

    def prepare(self, image_u8: np.ndarray) -> np.ndarray:
        self.seen.append(image_u8.shape)
        return image_u8

    def _infer(self, model_input: np.ndarray) -> np.ndarray:
        return self.answers[hashlib.sha256(model_input.tobytes()).hexdigest()]

    def identity(self) -> dict:
        return {"kind": "oracle"}


def _evaluate(backend, mini: Miniature, out: Path, source="tar", kb_crop=None, **protocol):
    dataset = open_dataset(mini.name, getattr(mini, source), mini.split, kb_crop)
    spec = dataset.spec
    return evaluate(
        backend, dataset, out, make_protocol(spec, "relative_inverse_depth", **protocol), quiet=True
    )


@pytest.mark.parametrize("source", ["tar", "folder"])
@pytest.mark.parametrize("name", SETS)
def test_ground_truth_as_prediction_scores_perfectly(miniatures, tmp_path, name, source):
    mini = miniatures[name]
    summary = _evaluate(Oracle(mini), mini, tmp_path / "out", source)
    assert summary.run.failed == 0 and summary.record["scored"] == 3
    assert summary.scores["abs_rel"] == pytest.approx(0, abs=1e-6)
    assert summary.scores["delta1"] == 1.0
    assert summary.scores["rmse"] == pytest.approx(0, abs=1e-6)
    record = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert record["dataset"]["split_size"] == 3 and record["dataset"]["name"] == name
    assert record["metrics"]["delta3"] == 1.0
    assert set(record) >= {"model", "precision", "effective_precision", "cpu", "images_per_s"}


@pytest.mark.parametrize("name", ["nyuv2", "kitti"])
def test_affine_distortion_in_disparity_is_aligned_away(miniatures, tmp_path, name):
    mini = miniatures[name]
    summary = _evaluate(Oracle(mini, scale=3.0, shift=0.2), mini, tmp_path / "out")
    assert summary.scores["abs_rel"] == pytest.approx(0, abs=1e-6)
    assert summary.scores["delta1"] == 1.0
    rows = list(csv.DictReader((tmp_path / "out" / "per_image.csv").open()))
    assert [float(r["scale"]) for r in rows] == pytest.approx([1 / 3] * 3, rel=1e-5)
    assert [float(r["shift"]) for r in rows] == pytest.approx([-0.2 / 3] * 3, abs=1e-6)
    # Without alignment the same prediction is far off.
    raw = _evaluate(Oracle(mini, 3.0, 0.2), mini, tmp_path / "raw", alignment="none")
    assert raw.scores["delta1"] < 0.5


def test_hand_computed_metrics() -> None:
    """Metric prediction, no alignment: four valid pixels (0 and 20 m are out of NYU's
    range), predicted 1, 2.6, 2, 8 m against 1, 2, 4, 8 m."""
    gt = np.array([[1.0, 2.0, 4.0], [0.0, 8.0, 20.0]])
    pred_m = np.array([[1.0, 2.6, 2.0], [5.0, 8.0, 3.0]])
    protocol = make_protocol(DATASETS["scannet"], "metric_depth_m")
    scores = score_image(1.0 / pred_m, gt, protocol)
    assert scores["valid_px"] == 4
    assert scores["abs_rel"] == pytest.approx((0.3 + 0.5) / 4, rel=1e-12)
    assert scores["delta1"] == 0.5  # ratios 1, 1.3, 2, 1
    assert scores["delta2"] == 0.75  # 1.3 < 1.5625 <= 2
    assert scores["delta3"] == 0.75  # 2 >= 1.953125
    assert scores["rmse"] == pytest.approx(math.sqrt((0.6**2 + 2**2) / 4), rel=1e-12)
    assert scores["log10"] == pytest.approx((math.log10(1.3) + math.log10(2)) / 4, rel=1e-12)
    # Scale-only in depth: s = sum(p g) / sum(p p) over the valid pixels.
    forced = make_protocol(DATASETS["scannet"], "metric_depth_m", alignment="scale")
    scale = score_image(1.0 / pred_m, gt, forced)["scale"]
    assert scale == pytest.approx((1 + 5.2 + 8 + 64) / (1 + 2.6**2 + 4 + 64), rel=1e-12)


def test_crops_and_ranges_exclude_exactly_their_pixels() -> None:
    nyu = crop_mask("eigen-nyu", (480, 640))
    assert nyu.sum() == 426 * 560 and nyu[45, 41] and not nyu[44, 41] and not nyu[470, 601]
    garg = crop_mask("garg", (375, 1242))  # KITTI's frame: rows 153:371, cols 44:1197
    rows, cols = np.nonzero(garg)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (153, 370, 44, 1196)
    assert garg.sum() == 218 * 1153
    protocol = make_protocol(DATASETS["kitti"], "relative_inverse_depth", crop="none")
    gt = np.array([[0.0, 1e-5, 2e-5, 79.9, 80.0, np.inf]])
    assert valid_mask(gt, protocol).tolist() == [[False, False, True, True, False, False]]
    diode = make_protocol(DATASETS["diode"], "relative_inverse_depth")
    gt = np.array([[0.6, 0.61, 349.0, 350.0]])
    mask = np.array([[True, False, True, True]])
    assert valid_mask(gt, diode, mask).tolist() == [[False, False, True, False]]


def test_kitti_default_garg_crop_and_marigolds_benchmark_crop(tmp_path) -> None:
    """A KITTI frame of 376 x 1241 (one of its sizes). By default the model sees the whole
    frame and Garg's crop is scored. With --kb-crop --crop eigen-kitti (Marigold's setting)
    the model sees its bottom 352 rows and the 1216 columns from (1241 - 1216) // 2 = 12;
    the Eigen crop of that cut frame (rows int(0.3324324 * 352) = 117 to
    int(0.91351351 * 352) = 321, cols 43 to 1172) is scored, which is rows 141:345, cols
    55:1184 of the frame; without the cut, the Eigen crop is rows 124:343, cols 44:1196."""
    mini = write_miniature(tmp_path / "sets", "kitti", count=1, hw=(376, 1241))
    gt = next(iter(mini.depth_m.values()))
    lidar = (gt > 1e-5) & (gt < 80)

    garg = crop_mask("garg", gt.shape)
    assert garg.sum() == (int(0.99189189 * 376) - int(0.40810811 * 376)) * (
        int(0.96405229 * 1241) - int(0.03594771 * 1241)
    )
    oracle = Oracle(mini, wrong=lambda gt: ~garg)
    default = _evaluate(oracle, mini, tmp_path / "default", "folder")
    assert oracle.seen == [(376, 1241, 3)] and default.scores["delta1"] == 1.0
    assert default.record["protocol"]["crop"] == "garg"
    assert default.record["dataset"]["kb_crop"] is False
    row = next(csv.DictReader((tmp_path / "default" / "per_image.csv").open()))
    assert int(row["valid_px"]) == np.count_nonzero(garg & lidar) > 5000

    scored = np.zeros(gt.shape, bool)
    scored[141:345, 55:1184] = True
    oracle = Oracle(mini, wrong=lambda gt: ~scored, kb_crop=True)
    summary = _evaluate(oracle, mini, tmp_path / "kb", "folder", True, crop="eigen-kitti")
    assert oracle.seen == [(352, 1216, 3)]
    assert summary.scores["abs_rel"] == pytest.approx(0, abs=1e-6) and summary.scores["delta1"] == 1
    row = next(csv.DictReader((tmp_path / "kb" / "per_image.csv").open()))
    assert int(row["valid_px"]) == np.count_nonzero(scored & lidar) > 5000
    assert summary.record["dataset"]["kb_crop"] is True

    full_frame = np.zeros(gt.shape, bool)
    full_frame[124:343, 44:1196] = True
    oracle = Oracle(mini, wrong=lambda gt: ~full_frame)
    whole = _evaluate(oracle, mini, tmp_path / "whole", "folder", crop="eigen-kitti")
    assert oracle.seen == [(376, 1241, 3)] and whole.scores["delta1"] == 1.0
    row = next(csv.DictReader((tmp_path / "whole" / "per_image.csv").open()))
    assert int(row["valid_px"]) == np.count_nonzero(full_frame & lidar)
    # The oracle right only on the KB crop's pixels is wrong on the full frame's.
    wrong = _evaluate(Oracle(mini, wrong=lambda gt: ~scored), mini, tmp_path / "wrong", "folder",
                      crop="eigen-kitti")  # fmt: skip
    assert wrong.scores["delta1"] < 0.99


def test_kb_crop_box_and_its_limits() -> None:
    assert kb_crop_box((375, 1242), "x") == (slice(23, 375), slice(13, 1229))
    assert kb_crop_box((352, 1216), "x") == (slice(0, 352), slice(0, 1216))
    with pytest.raises(SampleError, match="351 x 1242 is smaller"):
        kb_crop_box((351, 1242), "frame.png")
    with pytest.raises(DatasetError, match="only KITTI"):
        open_dataset("nyuv2", ".", kb_crop=True)


# Marigold's data_split/ files as shipped: line count (the set's size) and SHA-256.
SHIPPED = {
    "nyuv2": (654, "d9a47a1568b7d70a737a4bc75a49e66827b8e354219e9eee332676dbaee34a69"),
    "eth3d": (454, "39cf9f48bd524e51b1feda6092f84ed03b78eeaaf507c4068ab8130987e42971"),
    "scannet": (800, "066c76d6d8f93d6d7bed812e9c3bb0c375f08e7ff76569e13ce9c000dd74ead5"),
    "diode": (771, "657e430e9e75530c91a9fa4f355234a71a5a0f1060381f0966feabc3643178ce"),
}


@pytest.mark.parametrize("name", SETS)
def test_shipped_split_lists_are_the_default(tmp_path, name) -> None:
    path = shipped_split(name)
    if name not in SHIPPED:
        assert path is None
        return
    lines, digest = SHIPPED[name]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert len(path.read_text().splitlines()) == lines == DATASETS[name].split_size
    dataset = open_dataset(name, tmp_path)  # no --split: the shipped list, read lazily
    assert dataset.split_file == str(path) and len(dataset.samples) == lines
    first = {
        "nyuv2": ("test/kitchen_0004/rgb_0001.png", "test/kitchen_0004/depth_0001.png"),
        "eth3d": (
            "rgb/office/images/dslr_images/DSC_0219.JPG",
            "depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_0219.JPG",
        ),
        "scannet": ("scene0406_02/color/000300.jpg", "scene0406_02/depth/000300.png"),
        "diode": (
            "indoors/scene_00021/scan_00189/00021_00189_indoors_200_010.png",
            "indoors/scene_00021/scan_00189/00021_00189_indoors_200_010_depth.npy",
        ),
    }[name]
    assert (dataset.samples[0].rgb, dataset.samples[0].depth) == first
    given = tmp_path / "one.txt"
    given.write_text("a.png b.png\n")
    assert [s.rgb for s in open_dataset(name, tmp_path, given).samples] == ["a.png"]


def test_pixels_outside_crop_and_range_do_not_count(miniatures, tmp_path) -> None:
    """NYU at 480 x 640, every depth within 10 m: a prediction wrong only outside the
    Eigen crop scores perfectly, and without the crop it does not; one wrong only beyond
    NYU's 10 m scores perfectly too."""
    mini = write_miniature(tmp_path / "big", "nyuv2", count=1, hw=(480, 640), depth_scale=0.6)
    oracle = Oracle(mini, wrong=lambda gt: ~crop_mask("eigen-nyu", gt.shape))
    scores = _evaluate(oracle, mini, tmp_path / "out").scores
    assert scores["abs_rel"] == pytest.approx(0, abs=1e-6) and scores["delta1"] == 1.0
    assert _evaluate(oracle, mini, tmp_path / "nocrop", crop="none").scores["delta1"] < 0.9
    far = miniatures["nyuv2"]
    assert any((gt >= 10).any() for gt in far.depth_m.values())
    oracle = Oracle(far, wrong=lambda gt: gt >= 10)
    assert _evaluate(oracle, far, tmp_path / "far").scores["delta1"] == 1.0


def test_resume_and_damaged_samples(miniatures, tmp_path) -> None:
    mini = write_miniature(tmp_path / "sets", "scannet", count=4)
    oracle = Oracle(mini)
    names = sorted(mini.depth_m)
    (mini.folder / names[1]).write_bytes(b"not a jpeg")  # damaged image
    depth_of = {line.split()[0]: line.split()[1] for line in mini.split.read_text().splitlines()}
    (mini.folder / depth_of[names[2]]).unlink()  # missing ground truth
    out = tmp_path / "out"
    first = _evaluate(oracle, mini, out, "folder")
    assert (first.record["scored"], first.record["failed"]) == (2, 2)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(e["path"] for e in errors) == [names[1], names[2]]
    assert first.scores["delta1"] == 1.0
    again = _evaluate(oracle, mini, out, "folder")
    assert (again.run.skipped, again.run.ok, again.record["scored"]) == (2, 0, 2)
    assert len(list(csv.DictReader((out / "per_image.csv").open()))) == 2


def test_reference_and_openvino_f32_agree(tiny_artifact, miniatures, tmp_path) -> None:
    from xdepth.api import open_backend
    from xdepth.cli.options import reference_backend

    mini = miniatures["nyuv2"]
    ov = _evaluate(open_backend(tiny_artifact), mini, tmp_path / "ov").scores
    ref = _evaluate(reference_backend("tiny-dpt-beit", None, True), mini, tmp_path / "ref")
    for name in ov:
        assert ov[name] == pytest.approx(ref.scores[name], abs=1e-4), name


def test_cli_runs_and_documents_the_protocol(tiny_artifact, miniatures, tmp_path, capsys):
    mini = miniatures["kitti"]
    out = tmp_path / "out"
    args = [str(tiny_artifact), "--dataset", "kitti", "--data", str(mini.tar), "-o", str(out)]
    assert main(["eval", *args, "--quiet"]) == 0  # KITTI's list is not shipped: found beside
    record = json.loads((out / "eval.json").read_text())
    assert record["protocol"]["alignment"] == "scale-shift"
    assert record["protocol"]["space"] == "disparity"
    assert record["protocol"]["crop"] == "garg" and not record["dataset"]["kb_crop"]
    assert record["dataset"]["split_size"] == 3
    assert record["dataset"]["split_file"] == str(mini.split)
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    phrases = ("45:471", "0.40810811", "disparity", "0.6 < d < 350", "Marigold", "--kb-crop")
    for phrase in (*phrases, "352 x 1216", "(W - 1216) // 2", "shipped (filename_list_test"):
        assert phrase in text


def test_bench_eval_data_columns_and_pareto_axis(tiny_artifact, miniatures) -> None:
    from xdepth.api import open_backend
    from xdepth.bench.eval_cells import benchmark_scores, parse_eval_data
    from xdepth.bench.report import accuracy_axis, pareto_figure

    mini = miniatures["kitti"]
    given = parse_eval_data(f"KITTI={mini.tar}@{mini.split}, nyuv2={mini.folder}")
    assert given == {
        "kitti": {"data": str(mini.tar), "split": str(mini.split)},
        "nyuv2": {"data": str(mini.folder), "split": None},
    }
    with pytest.raises(argparse.ArgumentTypeError):
        parse_eval_data("sintel=x")
    found = benchmark_scores(open_backend(tiny_artifact), {"kitti": given["kitti"]}, limit=2)
    assert found["kitti"]["images"] == 2 and set(found["kitti"]) == {"abs_rel", "delta1", "images"}
    assert 0 <= found["kitti"]["delta1"] <= 1
    cell = {
        "variant": "v", "random_init": False, "contender": "xdepth", "format": "openvino",
        "mode": "model-only", "error": None, "images_per_s": {"median": 2.0},
        "fidelity": {"delta1": 0.99}, "benchmarks": found,
    }  # fmt: skip
    cells = [cell | {"precision": "f32"}, cell | {"precision": "int8", "benchmarks": None}]
    assert accuracy_axis(cells) == (
        ("benchmarks", "kitti", "delta1"),
        "accuracy: delta1 on KITTI (xdepth eval)",
    )
    axes = pareto_figure(cells).axes[0]
    assert axes.get_xlabel().startswith("accuracy: delta1 on KITTI")
    assert [t.get_text() for t in axes.texts] == ["v OV f32"]
    assert accuracy_axis([cells[1]])[0] == ("fidelity", "delta1")


# Figures read from the cited tables: (AbsRel, delta1) on NYUv2 and KITTI.
PUBLISHED = {
    "depth-anything-small": ((0.053, 0.972), (0.08, 0.936), "LiheYoung/Depth-Anything README"),
    "depth-anything-v2-small": ((0.053, 0.973), (0.078, 0.936), "arXiv:2406.09414), Table 2"),
    "depth-anything-v2-base": ((0.049, 0.976), (0.078, 0.939), "arXiv:2406.09414), Table 2"),
    "depth-anything-v2-large": ((0.045, 0.979), (0.074, 0.946), "arXiv:2406.09414), Table 2"),
    "dpt-beit-large-512": ((0.048, 0.98), (0.127, 0.85), "LiheYoung/Depth-Anything README"),
}


def test_every_published_figure_cites_its_table() -> None:
    from xdepth.model.cards import all_cards

    cited = {}
    for name, card in all_cards().items():
        for dataset, figures in card.published.items():
            assert dataset in DATASETS, (name, dataset)
            assert "Table" in figures["source"] or "README" in figures["source"], name
            assert set(figures) - {"source"} <= {"abs_rel", "delta1"}, name
            assert all(0 < figures[k] < 1 for k in ("abs_rel", "delta1")), name
            cited.setdefault(name, {})[dataset] = (figures["abs_rel"], figures["delta1"])
    for name, (nyu, kitti, source) in PUBLISHED.items():
        assert (cited[name]["nyuv2"], cited[name]["kitti"]) == (nyu, kitti), name
        assert source in all_cards()[name].published["nyuv2"]["source"]
    # DPT and the other MiDaS v3.1 cards carry none: their tables use other metrics.
    assert not {"dpt-large-384", "dpt-hybrid-384", "dpt-swinv2-large-384"} & set(cited)


def test_eval_prints_published_figures_beside_ours(miniatures, tmp_path) -> None:
    class Named(Oracle):
        def identity(self) -> dict:
            return {"kind": "oracle", "variant": "depth-anything-v2-large"}

    mini = miniatures["nyuv2"]
    summary = _evaluate(Named(mini), mini, tmp_path / "out")
    assert summary.record["published"]["abs_rel"] == 0.045
    assert summary.record["published"]["delta1"] == 0.979
    lines = summary.describe().splitlines()
    ours = ["xdepth", "0.0000", "1.0000", "1.0000", "1.0000", "0.0000", "0.0000"]
    assert lines[2].split() == ours
    assert lines[3].split() == ["published", "0.045", "0.979", "-", "-", "-", "-"]
    assert lines[4].startswith("published: Depth Anything V2 paper") and "ViT-L row" in lines[4]
    assert Oracle(mini).identity().get("variant") is None  # no card: no published row
    assert "published" not in _evaluate(Oracle(mini), mini, tmp_path / "o2").describe()
