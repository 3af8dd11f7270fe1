"""The five evaluation sets as the field's evaluation code lays them out, read from a tar
archive (no extraction) or from the extracted folder, through the split's file list.

Layouts, constants and encodings are those of Marigold's evaluation code
(github.com/prs-eth/Marigold): ``src/dataset/{nyu,kitti,eth3d,scannet,diode}_dataset.py``
(depth decoding, valid range ``min_depth < d < max_depth``, crops),
``src/dataset/base_depth_dataset.py`` (tar or folder, members named ``./<relative path>``,
one sample per file-list line: ``rgb depth [third column]``), ``config/dataset/*.yaml``
(archive names, file lists, crops) and ``data_split/*`` (the file lists):

========  ==============================  ====================================  ==============
set       archive, file list              depth encoding                        valid range m
========  ==============================  ====================================  ==============
nyuv2     nyu_labeled_extracted.tar,      16-bit PNG, millimetres (/ 1000)      1e-3 .. 10
          filename_list_test.txt (654)    Eigen crop rows 45:471, cols 41:601
kitti     kitti_eigen_split_test.tar,     16-bit PNG / 256 (projected LiDAR;    1e-5 .. 80
          eigen_test_files_with_gt.txt    0 = none); Garg crop (--kb-crop: KB
          (652 with ground truth)         first); "None" depth lines left out
eth3d     eth3d.tar,                      float32 binary, row-major, the        1e-5 .. inf
          eth3d_filename_list.txt (454)   image's size (inf = none, read as 0)
scannet   scannet_val_sampled_800_1.tar,  16-bit PNG, millimetres (/ 1000)      1e-3 .. 10
          scannet_val_sampled_list_800_1
          .txt (800)
diode     diode_val.tar, diode_val_all_   float32 ``.npy`` in metres, with the  0.6 .. 350
          filename_list.txt (771: 325     validity mask ``.npy`` of the third
          indoor + 446 outdoor)           column
========  ==============================  ====================================  ==============

KITTI is scored on the full frame with Garg's crop by default (the protocol of the MiDaS, DPT
and Depth Anything tables). ``kb_crop=True`` first cuts image and ground truth to the
benchmark's 352 x 1216 (the KB crop of Marigold's ``kitti_dataset.py``
``kitti_benchmark_crop``: the bottom 352 rows, 1216 columns from ``(W - 1216) // 2``), and the
crop is then taken of the cut frame: with the Eigen crop that is Marigold's own KITTI setting
(``config/dataset/data_kitti_eigen_test.yaml``: ``kitti_bm_crop: true``,
``valid_mask_crop: eigen``). The file lists of
NYUv2, ETH3D, ScanNet and DIODE ship in ``configs/splits`` (``SHIPPED_SPLITS``). Marigold reads
ETH3D at a fixed 4032 x 6048; here the binary is shaped like its RGB image
(the same size in the real set), so smaller copies read too. DIODE's mask and its range both
apply (Marigold takes the mask only; the range holds for every masked pixel of the real set).
"""

from __future__ import annotations

import io
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from xdepth.errors import XDepthError
from xdepth.job.imageio import DecodedImage, allow_pixels, to_rgb


class DatasetError(XDepthError):
    """A dataset, its archive or its file list cannot be used as given."""


class SampleError(XDepthError):
    """One sample is missing or damaged; the message names it."""


@dataclass(frozen=True)
class DatasetSpec:
    """One evaluation set: its depth encoding, valid range, crop and split."""

    name: str
    title: str
    encoding: str  # png_mm | png_256 | float32_raw | npy_mask
    min_depth_m: float
    max_depth_m: float
    crop: str | None  # see xdepth.eval.protocol.CROPS
    split: str
    split_size: int
    list_names: tuple[str, ...]
    source: str
    kb_crop: bool = False  # KITTI: frames can be cut to the benchmark's 352 x 1216 first


_MARIGOLD = "prs-eth/Marigold"
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "nyuv2",
            "NYUv2",
            "png_mm",
            1e-3,
            10.0,
            "eigen-nyu",
            "labelled test split (Eigen)",
            654,
            ("filename_list_test.txt",),
            f"{_MARIGOLD} src/dataset/nyu_dataset.py, config/dataset/data_nyu_test.yaml",
        ),
        DatasetSpec(
            "kitti",
            "KITTI",
            "png_256",
            1e-5,
            80.0,
            "garg",
            "Eigen test split, images with projected LiDAR",
            652,
            ("eigen_test_files_with_gt.txt",),
            f"{_MARIGOLD} src/dataset/kitti_dataset.py, config/dataset/data_kitti_eigen_test.yaml",
            kb_crop=True,
        ),
        DatasetSpec(
            "eth3d",
            "ETH3D",
            "float32_raw",
            1e-5,
            float("inf"),
            None,
            "all high-resolution multi-view training images",
            454,
            ("eth3d_filename_list.txt",),
            f"{_MARIGOLD} src/dataset/eth3d_dataset.py, config/dataset/data_eth3d.yaml",
        ),
        DatasetSpec(
            "scannet",
            "ScanNet",
            "png_mm",
            1e-3,
            10.0,
            None,
            "validation subset (800 sampled frames)",
            800,
            ("scannet_val_sampled_list_800_1.txt",),
            f"{_MARIGOLD} src/dataset/scannet_dataset.py, config/dataset/data_scannet_val.yaml",
        ),
        DatasetSpec(
            "diode",
            "DIODE",
            "npy_mask",
            0.6,
            350.0,
            None,
            "validation split, indoor and outdoor",
            771,
            ("diode_val_all_filename_list.txt",),
            f"{_MARIGOLD} src/dataset/diode_dataset.py, config/dataset/data_diode_all.yaml",
        ),
    )
}


# Marigold kitti_dataset.py, kitti_benchmark_crop: KB_CROP_HEIGHT = 352, KB_CROP_WIDTH = 1216.
KB_CROP_HW = (352, 1216)
# The file lists shipped in configs/splits (Marigold's data_split/, Apache-2.0), by set.
SHIPPED_SPLITS = {
    "nyuv2": "filename_list_test.txt",
    "eth3d": "eth3d_filename_list.txt",
    "scannet": "scannet_val_sampled_list_800_1.txt",
    "diode": "diode_val_all_filename_list.txt",
}


def shipped_split(name: str) -> Path | None:
    """The file list xdepth ships for set `name`, if it ships one."""
    from xdepth.model.cards import configs_dir

    file = SHIPPED_SPLITS.get(name)
    return configs_dir() / "splits" / file if file else None


def kb_crop_box(hw: tuple[int, int], what: str) -> tuple[slice, slice]:
    """Rows and columns of the KITTI benchmark crop of a frame of `hw`: the bottom 352 rows
    and 1216 columns from ``(W - 1216) // 2``, as Marigold's ``kitti_benchmark_crop``."""
    (h, w), (crop_h, crop_w) = hw, KB_CROP_HW
    if h < crop_h or w < crop_w:
        raise SampleError(
            f"{what}: {h} x {w} is smaller than KITTI's {crop_h} x {crop_w} benchmark crop "
            "(turn it off with --no-kb-crop)"
        )
    top, left = h - crop_h, (w - crop_w) // 2
    return slice(top, top + crop_h), slice(left, left + crop_w)


class Archive:
    """The set's files, from a tar archive (read in place) or an extracted folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if path.is_file():
            try:
                self._tar = tarfile.open(path)  # noqa: SIM115  (open while the archive lives)
                for member in self._tar.getmembers():
                    if member.isfile():
                        self._members[_clean(member.name)] = member
            except (tarfile.TarError, OSError) as exc:
                raise DatasetError(f"--data {path}: not a readable tar archive ({exc})") from None
        elif not path.is_dir():
            raise DatasetError(f"--data {path}: no such tar archive or folder")

    @property
    def is_tar(self) -> bool:
        return self._tar is not None

    def read(self, rel: str) -> bytes:
        """The bytes of `rel` (a path relative to the set's root); SampleError if absent."""
        key = _clean(rel)
        if self._tar is not None:
            member = self._members.get(key)
            if member is None:
                raise SampleError(f"{rel}: not in {self.path.name}")
            with self._lock:  # one file offset per archive
                handle = self._tar.extractfile(member)
                if handle is None:
                    raise SampleError(f"{rel}: not a regular file in {self.path.name}")
                return handle.read()
        target = self.path / key
        if ".." in Path(key).parts or not target.is_file():
            raise SampleError(f"{rel}: no such file under {self.path}")
        return target.read_bytes()

    def top_level_lists(self) -> list[str]:
        """``.txt`` files at the set's root (where a copied file list may sit)."""
        if self._tar is not None:
            return sorted(n for n in self._members if "/" not in n and n.endswith(".txt"))
        return sorted(p.name for p in self.path.glob("*.txt"))


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


@dataclass(eq=False)
class Sample:
    """One file-list line; the pipeline's readers call `decode`, which also loads the
    ground truth (so it is decoded in the reader threads too)."""

    name: str  # the RGB file's relative path: the sample's name in every report
    rgb: str
    depth: str
    extra: str | None
    dataset: Dataset = field(repr=False)
    gt_depth_m: np.ndarray | None = None
    gt_mask: np.ndarray | None = None  # DIODE's validity mask
    scores: dict[str, float] | None = None

    def decode(self, max_pixels: int) -> DecodedImage:
        allow_pixels(max_pixels)
        data = self.dataset.archive.read(self.rgb)
        try:
            with Image.open(io.BytesIO(data)) as image:
                # No EXIF rotation: ground truth lies on the sensor's pixel grid.
                rgb = np.asarray(to_rgb(image))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise SampleError(f"{self.rgb}: damaged image ({exc})") from None
        depth, mask = self.dataset.read_depth(self, rgb.shape[:2])
        if self.dataset.kb_crop:  # image and ground truth alike, before inference
            rgb = rgb[kb_crop_box(rgb.shape[:2], self.rgb)]
            box = kb_crop_box(depth.shape, self.depth)
            depth, mask = depth[box], None if mask is None else mask[box]
        self.gt_depth_m, self.gt_mask = depth, mask
        return DecodedImage(np.ascontiguousarray(rgb), None)


@dataclass
class Dataset:
    """An opened set: its spec, archive and the samples of its file list."""

    spec: DatasetSpec
    archive: Archive
    split_file: str
    samples: list[Sample]
    left_out: int = 0  # file-list lines without ground truth (KITTI's "None")
    kb_crop: bool = False

    def read_depth(self, sample: Sample, hw: tuple[int, int]):
        """Metric depth (float64, 0 = none) and, for DIODE, the validity mask."""
        data = self.archive.read(sample.depth)
        encoding = self.spec.encoding
        try:
            if encoding == "float32_raw":
                depth = np.frombuffer(data, dtype=np.float32).astype(np.float64)
                if depth.size != hw[0] * hw[1]:
                    raise SampleError(
                        f"{sample.depth}: {depth.size} float32 values, the image has "
                        f"{hw[0]} x {hw[1]} pixels"
                    )
                depth = depth.reshape(hw)
                depth[np.isinf(depth)] = 0.0
                return depth, None
            if encoding == "npy_mask":
                depth = np.load(io.BytesIO(data)).squeeze().astype(np.float64)
                if sample.extra is None:
                    raise SampleError(f"{sample.name}: the file list names no validity mask")
                mask = np.load(io.BytesIO(self.archive.read(sample.extra))).squeeze()
                if mask.shape != depth.shape:
                    raise SampleError(f"{sample.extra}: mask {mask.shape}, depth {depth.shape}")
                return depth, mask.astype(bool)
            with Image.open(io.BytesIO(data)) as image:
                raw = np.asarray(image)
            if raw.ndim != 2:
                raise SampleError(f"{sample.depth}: depth PNG has {raw.ndim} dimensions, not 2")
            divisor = 1000.0 if encoding == "png_mm" else 256.0
            return raw.astype(np.float64) / divisor, None
        except SampleError:
            raise
        except (OSError, ValueError, EOFError) as exc:
            raise SampleError(f"{sample.depth}: damaged depth ({exc})") from None


def find_split(archive: Archive, data: Path, spec: DatasetSpec) -> Path | str:
    """The file list when --split is not given: the set's own list name, inside the archive
    or folder, or beside it; else the only ``.txt`` at the set's root; else the only one
    beside it naming the set, or the only one beside it."""
    inside = archive.top_level_lists()
    for name in spec.list_names:
        if name in inside:
            return name
        beside = data.parent / name
        if beside.is_file():
            return beside
    if len(inside) == 1:
        return inside[0]
    beside = sorted(data.parent.glob("*.txt"))
    named = [path for path in beside if spec.name in path.name.lower()]
    for candidates in (named, beside):
        if len(candidates) == 1:
            return candidates[0]
    raise DatasetError(
        f"no file list for {spec.name}: give --split FILE (Marigold's data_split/ file, e.g. "
        f"{spec.list_names[0]}); found {len(inside)} .txt files at the root of {data}"
    )


def open_dataset(
    name: str, data: str | Path, split: str | Path | None = None, kb_crop: bool | None = None
) -> Dataset:
    """The set `name` at `data` (tar or folder), with the samples of its file list: `split`,
    else the shipped list, else one found by `find_split`. `kb_crop`: cut KITTI frames to the
    benchmark's 352 x 1216 first (off by default; only KITTI has it)."""
    spec = DATASETS.get(name.lower())
    if spec is None:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if kb_crop and not spec.kb_crop:
        raise DatasetError(f"--kb-crop: only KITTI frames have a benchmark crop, not {name}")
    path = Path(data).expanduser()
    archive = Archive(path)
    where: Path | str = Path(split).expanduser() if split is not None else ""
    if split is None:
        where = shipped_split(spec.name) or find_split(archive, path, spec)
    if isinstance(where, Path):
        try:
            text = where.read_text(encoding="utf-8")
        except OSError as exc:
            raise DatasetError(f"--split {where}: {exc.strerror or exc}") from None
    else:
        text = archive.read(where).decode("utf-8")
    crop = bool(kb_crop)
    dataset = Dataset(spec, archive, str(where), [], kb_crop=crop)
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2:
            raise DatasetError(f"{where}, line {number}: needs 'rgb depth', got {line!r}")
        if fields[1] == "None":  # KITTI: no projected LiDAR for this frame
            dataset.left_out += 1
            continue
        extra = fields[2] if len(fields) > 2 else None
        dataset.samples.append(Sample(fields[0], fields[0], fields[1], extra, dataset))
    if not dataset.samples:
        raise DatasetError(f"{where}: the file list names no samples")
    return dataset
