"""Post-processing: pure functions from model output arrays to clips, maps and files.

Arrays in: depth float32 H x W, image uint8 H x W x 3 RGB, mask bool H x W, alpha float32
0..1 or uint8. No model knowledge, no file I/O outside ``encoders``, no torch import
(only ``resize_depth(..., mode="seed")`` loads torch, on demand).
"""

from xdepth.post.colormap import COLORMAPS, apply_colormap, colorize, colormap_lut
from xdepth.post.composite import (
    blur_background,
    composite_color,
    composite_over,
    cover_resize,
    cutout_rgba,
    grayscale_background,
    refocus,
    replace_background,
)
from xdepth.post.depthmaps import decode_pfm, encode_npy, encode_pfm, facebook_3d_pair, to_uint16
from xdepth.post.encoders import (
    TEMP_PREFIX,
    encode,
    encode_jpeg,
    encode_png,
    encode_webp_lossless,
    remove_stale_temp_files,
    write_atomic,
)
from xdepth.post.geometry import (
    DEFAULT_FOV_DEG,
    Intrinsics,
    depth_to_ply,
    encode_ply,
    focal_px_from_35mm,
    focal_px_from_fov,
    intrinsics,
    inverse_to_depth,
    normals_to_rgb,
    point_cloud,
    surface_normals,
)
from xdepth.post.mask import (
    feather,
    fill_holes,
    keep_largest_component,
    refine_mask,
    remove_small_islands,
)
from xdepth.post.normalize import (
    finite_range,
    normalize_minmax,
    normalize_percentile,
    percentile_range,
    rescale,
    to_uint8_max,
    uint8_cut,
)
from xdepth.post.resize import resize_depth
from xdepth.post.threshold import (
    SEED_POLICY,
    ThresholdPolicy,
    apply_cut,
    cut_level,
    mask_from_uint8,
    parse_policy,
    threshold_mask,
)

__all__ = [
    "COLORMAPS",
    "DEFAULT_FOV_DEG",
    "SEED_POLICY",
    "TEMP_PREFIX",
    "Intrinsics",
    "ThresholdPolicy",
    "apply_colormap",
    "apply_cut",
    "blur_background",
    "colorize",
    "colormap_lut",
    "composite_color",
    "composite_over",
    "cover_resize",
    "cut_level",
    "cutout_rgba",
    "decode_pfm",
    "depth_to_ply",
    "encode",
    "encode_jpeg",
    "encode_npy",
    "encode_pfm",
    "encode_ply",
    "encode_png",
    "encode_webp_lossless",
    "facebook_3d_pair",
    "feather",
    "fill_holes",
    "finite_range",
    "focal_px_from_35mm",
    "focal_px_from_fov",
    "grayscale_background",
    "intrinsics",
    "inverse_to_depth",
    "keep_largest_component",
    "mask_from_uint8",
    "normalize_minmax",
    "normalize_percentile",
    "normals_to_rgb",
    "parse_policy",
    "percentile_range",
    "point_cloud",
    "refine_mask",
    "refocus",
    "remove_small_islands",
    "remove_stale_temp_files",
    "replace_background",
    "rescale",
    "resize_depth",
    "surface_normals",
    "threshold_mask",
    "to_uint8_max",
    "to_uint16",
    "uint8_cut",
    "write_atomic",
]
