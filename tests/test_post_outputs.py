"""Depth outputs (16-bit PNG, PFM, npy, colour maps, Facebook pair) and geometry."""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from xdepth.post import (
    COLORMAPS,
    apply_colormap,
    colorize,
    colormap_lut,
    decode_pfm,
    depth_to_ply,
    encode_npy,
    encode_pfm,
    encode_ply,
    encode_png,
    facebook_3d_pair,
    focal_px_from_35mm,
    focal_px_from_fov,
    intrinsics,
    inverse_to_depth,
    normals_to_rgb,
    point_cloud,
    surface_normals,
    to_uint16,
)


def ramp_depth(height: int = 40, width: int = 60) -> np.ndarray:
    return np.linspace(0.5, 8.0, height * width, dtype=np.float32).reshape(height, width)


# --- depth images ----------------------------------------------------------------------


def test_png16_round_trips_the_range_white_near() -> None:
    depth = ramp_depth()
    levels = to_uint16(depth)
    assert levels.dtype == np.uint16 and levels[0, 0] == 0 and levels[-1, -1] == 65535
    back = cv2.imdecode(np.frombuffer(encode_png(levels), np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, levels)
    recovered = 0.5 + back.astype(np.float64) / 65535 * 7.5
    assert np.abs(recovered - depth).max() <= 7.5 / 65535


def test_png16_fixed_range_and_non_finite() -> None:
    depth = ramp_depth()
    depth[0, 0], depth[5, 5], depth[6, 6] = np.nan, 2.0, 1.0
    levels = to_uint16(depth, (0.0, 4.0))
    assert levels[0, 0] == 0 and levels[-1, -1] == 65535  # NaN -> 0, beyond range saturates
    assert levels[5, 5] == 32768 and levels[6, 6] == 16384  # round(v / 4 * 65535)
    assert (to_uint16(np.full((1, 1), 3.0, np.float32)) == 0).all()  # constant map


def test_pfm_layout_and_round_trip() -> None:
    depth = ramp_depth(3, 4)
    depth[0, 1], depth[2, 3] = np.nan, np.inf
    data = encode_pfm(depth)
    header = b"Pf\n4 3\n-1\n"
    assert data.startswith(header) and len(data) == len(header) + 4 * 12
    first_row_in_file = np.frombuffer(data[len(header) : len(header) + 16], "<f4")
    np.testing.assert_array_equal(first_row_in_file, depth[-1])  # bottom row first
    np.testing.assert_array_equal(decode_pfm(data), depth)


def test_pfm_reader_handles_big_endian_and_colour_and_errors() -> None:
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    big = b"Pf\n3 2\n1.0\n" + np.flipud(values).astype(">f4").tobytes()
    np.testing.assert_array_equal(decode_pfm(big), values)
    colour = np.arange(18, dtype=np.float32).reshape(2, 3, 3)
    data = b"PF\n3 2\n-1\n" + np.flipud(colour).astype("<f4").tobytes()
    np.testing.assert_array_equal(decode_pfm(data), colour)
    with pytest.raises(ValueError, match="not a PFM"):
        decode_pfm(b"P6\n3 2\n255\n")
    with pytest.raises(ValueError, match="truncated"):
        decode_pfm(b"Pf\n3 2\n-1\n" + b"\0" * 8)


def test_npy_round_trip() -> None:
    depth = ramp_depth()
    depth[1, 1] = np.nan
    loaded = np.load(io.BytesIO(encode_npy(depth)))
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, depth)


def test_colour_tables_match_matplotlib_endpoints() -> None:
    assert COLORMAPS == ("inferno", "turbo", "viridis", "Spectral_r")
    assert colormap_lut("inferno")[0].tolist() == [0, 0, 3]
    assert colormap_lut("inferno")[255].tolist() == [252, 254, 164]
    assert colormap_lut("viridis")[0].tolist() == [68, 1, 84]
    assert colormap_lut("viridis")[255].tolist() == [253, 231, 36]
    assert colormap_lut("turbo")[0].tolist() == [48, 18, 59]
    assert colormap_lut("Spectral_r")[0].tolist() == [94, 79, 162]  # blue far end
    for name in COLORMAPS:
        assert colormap_lut(name).shape == (256, 3) and len({*map(tuple, colormap_lut(name))}) > 200
    with pytest.raises(ValueError, match="unknown colour map 'jet'"):
        colormap_lut("jet")


@pytest.mark.parametrize("name", ["inferno", "turbo", "viridis", "Spectral_r"])
def test_colorize_is_a_table_lookup(name: str) -> None:
    levels = np.random.default_rng(0).integers(0, 256, (17, 31), dtype=np.uint8)
    np.testing.assert_array_equal(apply_colormap(levels, name), colormap_lut(name)[levels])
    depth = ramp_depth()
    coloured = colorize(depth, name)
    assert coloured.shape == (40, 60, 3)
    assert coloured[-1, -1].tolist() == colormap_lut(name)[255].tolist()  # nearest
    assert coloured[0, 0].tolist() == colormap_lut(name)[0].tolist()


def test_facebook_pair_decodes_to_same_size_with_white_near() -> None:
    image = np.full((48, 64, 3), 120, np.uint8)
    inv_depth = np.ones((48, 64), np.float32)
    inv_depth[10:30, 20:40] = 9.0
    photo, depth_jpg = facebook_3d_pair(image, inv_depth)
    with Image.open(io.BytesIO(photo)) as a, Image.open(io.BytesIO(depth_jpg)) as b:
        assert (a.format, a.mode, a.size) == ("JPEG", "RGB", (64, 48))
        assert (b.format, b.mode, b.size) == ("JPEG", "L", (64, 48))
        grey = np.asarray(b)
    assert grey[20, 30] > 240 and grey[45, 5] < 15
    with pytest.raises(ValueError, match="must match"):
        facebook_3d_pair(image, inv_depth[:, :10])


# --- geometry --------------------------------------------------------------------------


def test_focal_length_helpers() -> None:
    assert focal_px_from_35mm(36, 4000) == 4000
    assert focal_px_from_35mm(26, 4032, 3024) == pytest.approx(26 / 36 * 4032)
    assert focal_px_from_35mm(26, 3024, 4032) == pytest.approx(26 / 36 * 4032)  # portrait
    assert focal_px_from_fov(90, 1000) == pytest.approx(500)
    assert intrinsics(4000, 3000).f_px == pytest.approx(2000 / math.tan(math.radians(27.5)))
    cam = intrinsics(640, 480, f_35mm=28)
    assert (cam.source, cam.cx, cam.cy) == ("exif", 319.5, 239.5)
    assert "35 mm equivalent 28 mm" in cam.describe()
    assert intrinsics(640, 480, f_px=500, f_35mm=28).source == "user"
    assert "55 deg horizontal" in intrinsics(640, 480).describe()
    with pytest.raises(ValueError, match="fov_deg"):
        focal_px_from_fov(180, 100)
    with pytest.raises(ValueError, match="f_35mm"):
        focal_px_from_35mm(0, 100)


@pytest.mark.parametrize("ksize", [1, 3, 5, 7, -1])
def test_normals_of_a_tilted_plane_are_constant_and_correct(ksize: int) -> None:
    vv, uu = np.mgrid[0:50, 0:70].astype(np.float32)
    a, b = 0.5, -0.25
    depth = a * uu + b * vv + 10.0
    normals = surface_normals(depth, ksize)
    expected = np.array([a, -b, 1.0]) / math.sqrt(a * a + b * b + 1)
    inner = normals[5:-5, 5:-5]
    np.testing.assert_allclose(inner, np.broadcast_to(expected, inner.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-5)
    flat = surface_normals(np.full((9, 9), 3.0, np.float32), ksize)
    assert (normals_to_rgb(flat) == (128, 128, 255)).all()


def test_camera_space_normals_of_a_3d_plane() -> None:
    height, width, f_px = 60, 80, 70.0
    n = np.array([0.3, -0.2, -1.0])
    n /= np.linalg.norm(n)  # faces the camera: n . P < 0 for points ahead
    offset = -3.0  # plane n . P = offset
    vv, uu = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack(
        [(uu - (width - 1) / 2) / f_px, (vv - (height - 1) / 2) / f_px, np.ones_like(uu)], -1
    )
    depth = (offset / (rays @ n)).astype(np.float32)
    normals = surface_normals(depth, 3, f_px=f_px)
    expected = n * np.array([1, -1, -1])  # camera frame -> viewer frame
    inner = normals[5:-5, 5:-5]
    assert np.abs(inner - expected).max() < 2e-3


def test_normals_mark_missing_depth_with_zero_vectors() -> None:
    depth = np.full((10, 10), 2.0, np.float32)
    depth[5, 5] = np.nan
    normals = surface_normals(depth)
    assert (normals[5, 5] == 0).all() and (normals[0, 0] == (0, 0, 1)).all()
    assert normals_to_rgb(normals)[5, 5].tolist() == [128, 128, 128]
    assert surface_normals(np.ones((1, 1), np.float32)).tolist() == [[[0.0, 0.0, 1.0]]]
    with pytest.raises(ValueError, match="ksize"):
        surface_normals(depth, 4)


def read_ply(data: bytes) -> tuple[list[str], np.ndarray]:
    """Minimal binary little-endian PLY reader for vertex x y z (+ red green blue)."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    props = [line.split() for line in header if line.startswith("property")]
    kinds = {"float": "<f4", "uchar": "u1"}
    dtype = np.dtype([(name, kinds[kind]) for _, kind, name in props])
    assert len(data) - end == count * dtype.itemsize
    return header, np.frombuffer(data[end:], dtype, count=count)


def test_ply_round_trips_known_points() -> None:
    depth = np.full((4, 6), 2.0, np.float32)
    depth[1, 2] = 4.0
    image = np.arange(72, dtype=np.uint8).reshape(4, 6, 3)
    camera = intrinsics(6, 4, f_px=100.0)
    header, vertices = read_ply(depth_to_ply(depth, camera, image))
    assert len(vertices) == 24
    assert "comment depth: metric depth, metres" in header
    assert any("f_px=100.000" in line and "source=user" in line for line in header)
    v = vertices.reshape(4, 6)
    uu, vv = np.meshgrid(np.arange(6), np.arange(4))
    np.testing.assert_allclose(v["x"], (uu - 2.5) * depth / 100.0, rtol=1e-6)
    np.testing.assert_allclose(v["y"], (vv - 1.5) * depth / 100.0, rtol=1e-6)
    np.testing.assert_array_equal(v["z"], depth)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], -1), image)


def test_point_cloud_skips_invalid_pixels_and_honours_mask_and_stride() -> None:
    depth = np.full((10, 10), 1.5, np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2] = np.nan, 0.0, -1.0
    camera = intrinsics(10, 10)
    xyz, rgb = point_cloud(depth, camera)
    assert xyz.shape == (97, 3) and rgb is None
    mask = np.zeros((10, 10), bool)
    mask[5:, 5:] = True
    assert point_cloud(depth, camera, mask=mask)[0].shape == (25, 3)
    assert point_cloud(depth, camera, stride=3)[0].shape == (15, 3)  # 16 grid points - NaN
    gl = point_cloud(depth, camera, frame="opengl")[0]
    np.testing.assert_array_equal(gl * (1, -1, -1), xyz)
    header, vertices = read_ply(encode_ply(xyz, comments=("hello",)))
    assert "comment hello" in header and vertices.dtype.names == ("x", "y", "z")
    np.testing.assert_array_equal(np.stack([vertices[a] for a in "xyz"], -1), xyz)
    with pytest.raises(ValueError, match="single lines"):
        encode_ply(xyz, comments=("two\nlines",))


def test_relative_depth_is_labelled_and_inverse_depth_converts() -> None:
    inv = np.array([[2.0, 0.0], [np.nan, 0.5]], np.float32)
    depth = inverse_to_depth(inv)
    assert (
        depth[0, 0] == 0.5
        and depth[1, 1] == 2.0
        and np.isnan(depth[0, 1])
        and np.isnan(depth[1, 0])
    )
    camera = intrinsics(2, 2, f_px=10.0)
    header, vertices = read_ply(depth_to_ply(depth, camera, metric=False))
    assert "comment depth: relative depth, unknown scale" in header and len(vertices) == 2
