"""Synthetic video clips with exact per-frame depth and masks, for tests and the bench.

Each clip is cut from rendered scenes (`xdepth.eval.scenes`), so its ground truth is exact:

- ``pan``: the camera's view window slides across a wider scene (a shifted sensor: depth
  at a scene point is unchanged, it only moves in the image);
- ``dolly``: the view closes in on the scene's centre (a zoom: depth per scene point is
  unchanged, the image magnifies);
- ``approach``: the scene's near object comes towards the camera: it grows as its depth
  shrinks (depth / s at magnification s), the background stays;
- ``cut``: a pan over one scene, then a pan over another (a scene cut at the middle).

Every frame gets fresh sensor noise, as a camera's frames do. `write_clip` encodes a clip
as a video file (lossless by default) for the engine to read back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from xdepth.eval.scenes import make_scene

CLIP_KINDS = ("pan", "dolly", "approach", "cut")
CAMERA_MOVES = ("pan", "dolly", "cut")  # kinds whose every pixel follows the clip's views
_NOISE = 2.0  # grey levels of per-frame sensor noise


@dataclass(frozen=True)
class Clip:
    """Frames and their ground truth: rgb (N, H, W, 3) uint8, depth_m (N, H, W) float32,
    mask (N, H, W) bool, the scenes' solids (their near subject: the seed threshold on
    each whole scene, so it means the same thing in every frame of a shot); `cuts` lists
    the frames that start a new shot; `views` maps each frame's pixels to its scene's (for
    the still background of ``approach``, the identity), so a scene point can be followed
    from frame to frame."""

    kind: str
    rgb: np.ndarray
    depth_m: np.ndarray
    mask: np.ndarray
    views: np.ndarray  # (N, 2, 3): each frame's pixel (x, y, 1) -> its scene's x, y
    cuts: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.rgb)


def _view(x0: float, y0: float, w: float, h: float, out_hw) -> np.ndarray:
    """The affine map from the pixels of an out_hw image of the window (x0, y0, w, h) to
    the scene's pixels."""
    sx, sy = w / out_hw[1], h / out_hw[0]
    return np.array([[sx, 0, x0 + 0.5 * sx - 0.5], [0, sy, y0 + 0.5 * sy - 0.5]])


def _window(image: np.ndarray, x0: float, y0: float, w: float, h: float, out_hw, interp):
    """The window (x0, y0, w, h) of `image`, resampled to out_hw (exact affine crop)."""
    matrix = _view(x0, y0, w, h, out_hw).astype(np.float32)
    flags = interp | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, matrix, (out_hw[1], out_hw[0]), flags=flags)


def _pan(seed: int, frames: int, h: int, w: int, travel: float = 0.5) -> tuple:
    big_w = round(w * (1 + travel))
    scene = make_scene(seed, h, big_w)
    rgb, depth, mask, views = [], [], [], []
    for i in range(frames):
        x0 = (big_w - w) * i / max(frames - 1, 1)
        rgb.append(_window(scene.rgb, x0, 0, w, h, (h, w), cv2.INTER_LINEAR))
        depth.append(_window(scene.depth_m, x0, 0, w, h, (h, w), cv2.INTER_NEAREST))
        mask.append(_window(scene.mask.view(np.uint8), x0, 0, w, h, (h, w), cv2.INTER_NEAREST))
        views.append(_view(x0, 0, w, h, (h, w)))
    return rgb, depth, mask, views


def _dolly(seed: int, frames: int, h: int, w: int, zoom: float = 1.6) -> tuple:
    scene = make_scene(seed, round(h * 1.5), round(w * 1.5))
    bh, bw = scene.depth_m.shape
    rgb, depth, mask, views = [], [], [], []
    for i in range(frames):
        s = zoom ** (i / max(frames - 1, 1))
        ww, hh = bw / s, bh / s
        x0, y0 = (bw - ww) / 2, (bh - hh) / 2
        rgb.append(_window(scene.rgb, x0, y0, ww, hh, (h, w), cv2.INTER_AREA))
        depth.append(_window(scene.depth_m, x0, y0, ww, hh, (h, w), cv2.INTER_NEAREST))
        solid = scene.mask.view(np.uint8)
        mask.append(_window(solid, x0, y0, ww, hh, (h, w), cv2.INTER_NEAREST))
        views.append(_view(x0, y0, ww, hh, (h, w)))
    return rgb, depth, mask, views


def _approach(seed: int, frames: int, h: int, w: int, grow: float = 1.4) -> tuple:
    scene = make_scene(seed, h, w)
    ys, xs = np.nonzero(scene.mask)
    cy, cx = ys.mean(), xs.mean()
    background = make_scene(seed + 1, h, w)
    rgb, depth, mask = [], [], []
    for i in range(frames):
        s = grow ** (i / max(frames - 1, 1))
        # Magnify about the object's centre: the pixel at p shows the scene at c + (p - c) / s.
        matrix = np.float32([[1 / s, 0, cx - cx / s], [0, 1 / s, cy - cy / s]])
        flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
        obj = cv2.warpAffine(scene.mask.astype(np.uint8), matrix, (w, h), flags=flags) > 0
        obj_rgb = cv2.warpAffine(scene.rgb, matrix, (w, h), flags=flags)
        obj_depth = cv2.warpAffine(scene.depth_m, matrix, (w, h), flags=flags) / s
        rgb.append(np.where(obj[..., None], obj_rgb, background.rgb))
        depth.append(np.where(obj, obj_depth, background.depth_m).astype(np.float32))
        mask.append(obj | background.mask)
    return rgb, depth, mask, [_view(0, 0, w, h, (h, w))] * frames


def make_clip(kind: str, seed: int = 0, frames: int = 24, height: int = 64, width: int = 96):
    """The clip of `kind` (CLIP_KINDS) for `seed`: same arguments, same arrays."""
    if kind not in CLIP_KINDS:
        raise ValueError(f"clip kind must be one of {', '.join(CLIP_KINDS)}, got {kind!r}")
    cuts: tuple[int, ...] = ()
    if kind == "cut":
        half = frames // 2
        rgb_a, depth_a, mask_a, views_a = _pan(seed, half, height, width)
        rgb_b, depth_b, mask_b, views_b = _pan(seed + 1000, frames - half, height, width)
        rgb, depth, mask, cuts = rgb_a + rgb_b, depth_a + depth_b, mask_a + mask_b, (half,)
        views = views_a + views_b
    else:
        rgb, depth, mask, views = {"pan": _pan, "dolly": _dolly, "approach": _approach}[kind](
            seed, frames, height, width
        )
    rng = np.random.default_rng(seed)
    noisy = [
        np.clip(np.rint(f + rng.standard_normal(f.shape) * _NOISE), 0, 255).astype(np.uint8)
        for f in rgb
    ]
    depth_m = np.stack(depth).astype(np.float32)
    mask_b = np.stack(mask).astype(bool)
    return Clip(kind, np.stack(noisy), depth_m, mask_b, np.stack(views), cuts)


def write_clip(
    frames: np.ndarray,
    path: str | Path,
    *,
    fps: int = 12,
    codec: str = "ffv1",
    pix_fmt: str = "bgr0",
    rotation: int = 0,
    times_s: list[float] | None = None,
    fmt: str | None = None,
    pixel_aspect: Fraction | None = None,
    tone: bool = False,
) -> Path:
    """Encode uint8 RGB frames (N, H, W, 3) as a video file (lossless FFV1 by default);
    `rotation` records a display rotation (degrees counter-clockwise), as phones do,
    and the frames are stored turned the other way so that they display as given;
    `times_s` gives each frame its own time (a variable frame rate, to the millisecond);
    `fmt` names the container where the file's name does not; `pixel_aspect` records
    non-square pixels (a stored pixel's width / height); `tone` adds an AAC sound track
    as long as the frames span."""
    import av

    path = Path(path)
    with av.open(str(path), "w", format=fmt, options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        turns = round(rotation / 90) % 4
        stored = [np.ascontiguousarray(np.rot90(f, -turns)) for f in frames]
        stream.height, stream.width = stored[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if turns:
            stream.set_display_rotation(rotation)
        if pixel_aspect is not None:
            stream.codec_context.sample_aspect_ratio = pixel_aspect
        sound = container.add_stream("aac", rate=16000) if tone else None
        time_base = Fraction(1, 1000) if times_s is not None else Fraction(1, fps)
        stream.codec_context.time_base = time_base
        for index, pixels in enumerate(stored):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index if times_s is None else round(times_s[index] * 1000)
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            end_s = times_s[-1] if times_s is not None else (len(stored) - 1) / fps
            _write_tone(container, sound, end_s + 0.5)
    return path


def _write_tone(container, sound, seconds: float, rate: int = 16000) -> None:
    """A sine tone of `seconds` into the AAC stream `sound`, in 1024-sample blocks."""
    import av

    samples = np.sin(np.arange(int(seconds * rate)) * 0.05).astype(np.float32)
    for start in range(0, len(samples) - 1024, 1024):
        block = av.AudioFrame.from_ndarray(
            samples[None, start : start + 1024], format="fltp", layout="mono"
        )
        block.sample_rate, block.pts = rate, start
        container.mux(sound.encode(block))
    container.mux(sound.encode(None))


def flicker(
    norm_depth: np.ndarray,
    gt_depth_m: np.ndarray,
    cuts=(),
    tolerance: float = 0.01,
    views: np.ndarray | None = None,
) -> float:
    """Mean absolute frame-to-frame change of normalised depth (0..1, N x H x W) on the
    pixels whose true depth changed by less than `tolerance` (relative) between the two
    frames; pairs across a scene cut are left out. With the clip's `views`, each pixel is
    compared with the same scene point in the frame before (`flicker_along`)."""
    changes = []
    for t in range(1, len(norm_depth)):
        if t in cuts:
            continue
        if views is None:
            prev, before, inside = norm_depth[t - 1], gt_depth_m[t - 1], True
        else:
            prev, before, inside = _followed(views, t, norm_depth[t - 1], gt_depth_m[t - 1])
        held = inside & (np.abs(gt_depth_m[t] - before) <= tolerance * before)
        if held.any():
            changes.append(np.abs(norm_depth[t].astype(np.float64) - prev)[held])
    return float(np.concatenate(changes).mean()) if changes else 0.0


def flicker_along(
    norm_depth: np.ndarray, gt_depth_m: np.ndarray, views: np.ndarray, cuts=(), tolerance=0.01
) -> float:
    """`flicker` measured along the motion: each pixel against the same scene point in the
    frame before (through the clips' `views`), where that point's true depth held. An
    error that moves with the image content is not counted here, as it is at fixed pixels.
    """
    return flicker(norm_depth, gt_depth_m, cuts, tolerance, views)


def _followed(views: np.ndarray, t: int, norm_before: np.ndarray, gt_before: np.ndarray):
    """Frame t - 1's normalised and true depth at the scene point each pixel of frame t
    shows, and whether that point was inside frame t - 1."""
    height, width = gt_before.shape
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    # pixel of t -> scene -> pixel of t - 1
    scene_x = views[t, 0, 0] * gx + views[t, 0, 1] * gy + views[t, 0, 2]
    scene_y = views[t, 1, 0] * gx + views[t, 1, 1] * gy + views[t, 1, 2]
    back = np.linalg.inv(np.vstack([views[t - 1], [0.0, 0.0, 1.0]]))
    map_x = (back[0, 0] * scene_x + back[0, 1] * scene_y + back[0, 2]).astype(np.float32)
    map_y = (back[1, 0] * scene_x + back[1, 1] * scene_y + back[1, 2]).astype(np.float32)
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    before = cv2.remap(gt_before, map_x, map_y, cv2.INTER_NEAREST)
    prev = cv2.remap(norm_before.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
    return prev, before, inside


def motion_consistent(norm_depth: np.ndarray, views: np.ndarray, cuts=(), fine: int = 2):
    """The output of a clip made perfectly consistent along the motion: each frame of a
    shot carried into its scene's pixels (through `views`, on a grid `fine` times denser),
    averaged per scene point over the shot, and cut back out frame by frame. For clips
    whose every pixel follows their views (CAMERA_MOVES).

    Its `flicker` at fixed pixels is the least that any output keeping each scene point's
    value (smoothing along the motion, however long) could show with these values: what
    is left is error that travels with the image content, which only a model that errs
    less removes."""
    norm = np.asarray(norm_depth, np.float32)
    starts = [0, *sorted(c for c in cuts if 0 < c < len(norm)), len(norm)]
    return np.concatenate(
        [_shot_consistent(norm[a:b], views[a:b], fine) for a, b in itertools.pairwise(starts)]
    )


def _shot_consistent(norm: np.ndarray, views: np.ndarray, fine: int) -> np.ndarray:
    """`motion_consistent` of one shot."""
    height, width = norm.shape[1:]
    corners = np.array([[0, 0, 1], [width - 1, height - 1, 1]], np.float64).T
    reach = np.concatenate([view @ corners for view in views], axis=1)  # scene x, y
    origin = reach.min(axis=1) - 1.0
    canvas_wh = tuple(int(v) for v in np.ceil((reach.max(axis=1) - origin + 2.0) * fine))
    maps = []  # frame pixel -> canvas pixel
    for view in views:
        to_canvas = view.copy()
        to_canvas[:, 2] -= origin
        maps.append((to_canvas * fine).astype(np.float32))
    total = np.zeros(canvas_wh[::-1], np.float64)
    count = np.zeros(canvas_wh[::-1], np.int64)
    ones = np.ones(norm.shape[1:], np.float32)
    for frame, to_canvas in zip(norm, maps, strict=True):
        # the frame's edge pixels are inside it: sample them whole, not mixed with outside
        carried = cv2.warpAffine(
            frame, to_canvas, canvas_wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        seen = cv2.warpAffine(ones, to_canvas, canvas_wh, flags=cv2.INTER_LINEAR) > 0.999
        total[seen] += carried[seen]
        count[seen] += 1
    scene = (total / np.maximum(count, 1)).astype(np.float32)
    back = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return np.stack([cv2.warpAffine(scene, m, (width, height), flags=back) for m in maps])


def clipped_share(depth: np.ndarray, depth_range: tuple[float, float] | None) -> float:
    """The share of a frame's pixels its output range leaves out by more than 1 % of the
    range's span (they show at an end of the scale, where they cannot flicker)."""
    if depth_range is None:
        return 0.0
    lo, hi = depth_range
    margin = 0.01 * (hi - lo)
    return float(np.mean((depth < lo - margin) | (depth > hi + margin)))


def score_clip(results: list, clip: Clip, floor: bool = False) -> dict[str, float]:
    """Flicker (of the 16-bit depth output's scale), mean delta1 and mask IoU of a clip's
    per-frame results (DepthResult, in order) against its ground truth, the mean share of
    pixels the output's range clips (`clipped_share`), and with `floor`, for camera
    moves, the flicker of the same output made consistent along the motion
    (`motion_consistent`)."""
    from xdepth.eval.metrics import depth_metrics, mask_iou
    from xdepth.post import to_uint16

    if len(results) != len(clip):
        raise ValueError(f"{len(results)} results for a clip of {len(clip)} frames")
    norm = np.stack([to_uint16(r.depth, r.depth_range) / 65535.0 for r in results])
    scores = {
        "flicker": flicker(norm, clip.depth_m, clip.cuts),
        "flicker_along": flicker_along(norm, clip.depth_m, clip.views, clip.cuts),
        "delta1": float(
            np.mean(
                [
                    depth_metrics(r.depth, d)["delta1"]
                    for r, d in zip(results, clip.depth_m, strict=True)
                ]
            )
        ),
        "mask_iou": float(
            np.mean([mask_iou(r.mask, m) for r, m in zip(results, clip.mask, strict=True)])
        ),
        "clipped": float(np.mean([clipped_share(r.depth, r.depth_range) for r in results])),
    }
    if floor and clip.kind in CAMERA_MOVES:
        # the least flicker an output consistent along the motion could have with these values
        consistent = motion_consistent(norm, clip.views, clip.cuts)
        scores["flicker_floor"] = flicker(consistent, clip.depth_m, clip.cuts)
    return scores
