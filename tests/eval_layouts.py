"""Miniatures of the five evaluation sets: synthetic scenes (exact metric depth) written in
each set's own layout and depth encoding, as a folder and as a tar archive whose members
are named ``./<path>`` (as the field's archives are), with the split's file list."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from xdepth.eval.scenes import make_scene

SEED = 2_000_000_000
# KITTI frames are about 375 x 1242: the benchmark crop (352 x 1216) needs at least that.
HW = {"kitti": (375, 1242)}


@dataclass
class Miniature:
    """One written set: its folder, tar, file list and each sample's true depth."""

    name: str
    folder: Path
    tar: Path
    split: Path
    depth_m: dict[str, np.ndarray]  # rgb path -> the depth as the set's encoding stores it
    mask: dict[str, np.ndarray]  # rgb path -> DIODE's validity mask (others: all True)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _sample(name: str, i: int, rgb: np.ndarray, depth: np.ndarray, rng) -> tuple:
    """(files {path: bytes}, file-list line, stored depth in metres, validity mask)."""
    mask = np.ones(depth.shape, bool)
    if name == "nyuv2":
        base = f"test/room_{i:04d}"
        mm = np.round(depth * 1000).astype(np.uint16)
        files = {f"{base}/rgb_{i:04d}.png": _png(rgb), f"{base}/depth_{i:04d}.png": _png(mm)}
        files[f"{base}/filled_{i:04d}.png"] = files[f"{base}/depth_{i:04d}.png"]
        line = f"{base}/rgb_{i:04d}.png {base}/depth_{i:04d}.png {base}/filled_{i:04d}.png"
        return files, line, mm / 1000.0, mask
    if name == "kitti":
        drive = "2011_09_26/2011_09_26_drive_0002_sync"
        lidar = np.where(rng.random(depth.shape) < 0.3, np.round(depth * 256), 0)
        lidar = lidar.astype(np.uint16)
        rgb_path = f"{drive}/image_02/data/{i:010d}.png"
        depth_path = f"2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/{i:010d}.png"
        files = {rgb_path: _png(rgb), depth_path: _png(lidar)}
        return files, f"{rgb_path} {depth_path} 721.5377", lidar / 256.0, mask
    if name == "eth3d":
        raw = depth.astype(np.float32).copy()
        raw[rng.random(depth.shape) < 0.2] = np.inf  # no measurement
        rgb_path = f"court_{i}/images/dslr_images/DSC_{i:04d}.JPG"
        depth_path = f"court_{i}/ground_truth_masked/dslr_images/DSC_{i:04d}.JPG"
        files = {rgb_path: _jpeg(rgb), depth_path: raw.tobytes()}
        stored = np.where(np.isinf(raw), 0.0, raw.astype(np.float64))
        return files, f"{rgb_path} {depth_path}", stored, mask
    if name == "scannet":
        mm = np.round(depth * 1000).astype(np.uint16)
        rgb_path, depth_path = f"scene0{i}_00/color/000000.jpg", f"scene0{i}_00/depth/000000.png"
        files = {rgb_path: _jpeg(rgb), depth_path: _png(mm)}
        return files, f"{rgb_path} {depth_path}", mm / 1000.0, mask
    if name == "diode":
        stem = f"indoors/scene_{i:05d}/scan_00001/{i:05d}_00001_indoors_000_010"
        mask = rng.random(depth.shape) > 0.1
        files = {
            f"{stem}.png": _png(rgb),
            f"{stem}_depth.npy": _npy(depth.astype(np.float32)[..., None]),
            f"{stem}_depth_mask.npy": _npy(mask.astype(np.float32)),
        }
        line = f"{stem}.png {stem}_depth.npy {stem}_depth_mask.npy"
        return files, line, depth.astype(np.float32).astype(np.float64), mask
    raise ValueError(name)


def write_miniature(
    root: Path,
    name: str,
    count: int = 3,
    hw: tuple[int, int] | None = None,
    depth_scale: float = 1,
) -> Miniature:
    """`count` scenes of `hw` (default KITTI's size for KITTI, else 72 x 96) in set `name`'s
    layout under `root`, depths times `depth_scale`; KITTI's list also holds a line
    without ground truth ("None"), as the real one does."""
    hw = hw or HW.get(name, (72, 96))
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(count)
    lines, depth_m, masks = [], {}, {}
    for i in range(count):
        scene = make_scene(SEED + i, *hw)
        depth = scene.depth_m * np.float32(depth_scale)
        files, line, stored, mask = _sample(name, i, scene.rgb, depth, rng)
        for rel, data in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
        lines.append(line)
        depth_m[line.split()[0]] = stored
        masks[line.split()[0]] = mask
    if name == "kitti":
        lines.append("2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000099.png None 7")
    split = root / f"{name}_list.txt"
    split.write_text("\n".join(lines) + "\n")
    tar = root / f"{name}.tar"
    with tarfile.open(tar, "w") as archive:
        archive.add(folder, arcname=".")
    return Miniature(name, folder, tar, split, depth_m, masks)
