"""Synthetic scenes with exact depth: the ground truth for training and checking models.

Real photos come without ground truth, so accuracy is measured on rendered scenes: a
textured back wall (optionally a floor in perspective) carrying painted shapes, and one to
three shaded, textured solids (spheres, boxes, cylinders) in front of it, occluding each
other. Painted shapes draw their colours and patterns from the same materials as the
solids, so colour alone cannot tell them apart; only shading, texture distortion and
occlusion can, which is what a depth model has to learn.

Depth ranges make the seed recipe's threshold exact: with ``inv = 1 / depth_m``, the
foreground mask equals ``(inv * 255 / inv.max()).astype(uint8) > 45``. The nearest visible
solid point lies within ``NEAREST_MAX_M``, solids end before ``SOLID_MAX_M`` and the wall and
floor start beyond ``BACKGROUND_MIN_M``; every scene is checked before it is returned.

Pure numpy and OpenCV, a few milliseconds per 256x256 scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from xdepth.eval.metrics import recipe_mask

NEAREST_MIN_M, NEAREST_MAX_M = 1.0, 1.4  # depth of the nearest solid's front
SOLID_MAX_M = 3.6  # no solid surface lies farther than this
BACKGROUND_MIN_M = 9.5  # wall and floor never come nearer than this
WALL_M = (10.5, 12.5)  # wall depth at the optical axis (without a floor)
WALL_FLOOR_M = (13.0, 16.0)  # deeper when there is a floor, so more of it shows
FOCAL = 1.0  # focal length in units of the longer image side (about 53 degrees of view)

# Fixed, disjoint seed ranges: training never sees a held-out scene.
TRAIN_SEEDS = range(0, 100_000_000)
HELD_OUT_SEEDS = range(1_000_000_000, 1_100_000_000)
HELD_OUT_BASE_SEED = HELD_OUT_SEEDS.start

_MAX_ATTEMPTS = 50

# The shapes photos come in, for every image set that measures a model (export fidelity and
# calibration, the bench, the demo): (name, height / width, long side / the model's input
# side). Landscape 16:9, portrait 3:4 and square, each larger than the model's input (as
# photos are) and then at other sizes, so a model that squashes and one that keeps the
# aspect ratio are both measured on what users feed them.
PHOTO_SHAPES: tuple[tuple[str, float, float], ...] = (
    ("landscape 16:9", 9 / 16, 1.5),
    ("portrait 3:4", 4 / 3, 1.5),
    ("square", 1.0, 1.5),
    ("landscape 16:9", 9 / 16, 2.5),
    ("portrait 3:4", 4 / 3, 1.0),
    ("square", 1.0, 0.75),
)
MIN_SIDE_PX = 32


def photo_hw(index: int, side_px: int) -> tuple[int, int]:
    """(height, width) of the `index`-th image of a set, for a model of input side `side_px`:
    PHOTO_SHAPES in turn, sides at least MIN_SIDE_PX."""
    _, aspect, scale = PHOTO_SHAPES[index % len(PHOTO_SHAPES)]
    long_px = round(side_px * scale)
    short_px = round(long_px * min(aspect, 1 / aspect))
    height, width = (long_px, short_px) if aspect > 1 else (short_px, long_px)
    return max(height, MIN_SIDE_PX), max(width, MIN_SIDE_PX)


@dataclass(frozen=True)
class Scene:
    """One rendered scene and its ground truth."""

    seed: int
    rgb: np.ndarray  # uint8 HxWx3
    depth_m: np.ndarray  # float32 HxW, metres along the optical axis
    mask: np.ndarray  # bool HxW, the near solids
    painted: np.ndarray  # bool HxW, shapes painted on the wall (background, not foreground)
    shadow: np.ndarray  # float32 HxW, 0..1: how much the solids' shadows darken the background
    floor: bool
    f_px: float


class _Material:
    """A palette and a pattern; shared by wall, floor, painted shapes and solids."""

    def __init__(self, rng: np.random.Generator, period_px: float, contrast: float = 1.0) -> None:
        hue = rng.uniform(0, 180)
        hsv = np.zeros((1, 3, 3), np.uint8)
        for i in range(3):
            hsv[0, i] = (
                (hue + rng.normal(0, 25)) % 180,
                rng.uniform(40, 230),
                rng.uniform(70, 250),
            )
        palette = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.float32) / 255
        palette[1:] = palette[0] + contrast * (palette[1:] - palette[0])
        self.palette = palette
        self.kind = rng.choice(["plain", "noise", "stripes", "checker", "dots"])
        self.period_px = period_px
        self.angle = rng.uniform(0, math.pi)
        self.noise = cv2.resize(
            rng.random((8, 8), dtype=np.float32), (64, 64), interpolation=cv2.INTER_CUBIC
        )

    def colour(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """RGB in [0, 1] at surface coordinates (u, v), given in pattern periods."""
        u, v = np.asarray(u, np.float32), np.asarray(v, np.float32)
        grain = self.noise[
            np.floor(v * 16).astype(np.int32) & 63, np.floor(u * 16).astype(np.int32) & 63
        ]
        ca, sa = np.float32(math.cos(self.angle)), np.float32(math.sin(self.angle))
        if self.kind == "plain":
            s = 0.15 * grain
        elif self.kind == "noise":
            s = grain
        elif self.kind == "stripes":
            s = 0.5 + 0.5 * np.sin(np.float32(2 * math.pi) * (ca * u + sa * v))
        elif self.kind == "checker":
            s = (np.floor(ca * u + sa * v) + np.floor(ca * v - sa * u)) % 2
        else:  # dots
            ru, rv = ca * u + sa * v, ca * v - sa * u
            du, dv = ru - np.round(ru), rv - np.round(rv)
            s = (du * du + dv * dv < 0.09).astype(np.float32)
        p0, p1, p2 = self.palette
        rgb = p0 + (p1 - p0) * np.clip(s, 0, 1)[..., None]
        accent = grain > 0.8
        rgb[accent] = 0.7 * rgb[accent] + 0.3 * p2
        return rgb


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A random rotation that keeps solids mostly upright (yaw any, tilt up to ~35 deg)."""
    yaw, pitch, roll = rng.uniform(0, 2 * math.pi), rng.normal(0, 0.35), rng.normal(0, 0.2)
    cy, sy, cp, sp, cr, sr = (
        math.cos(yaw),
        math.sin(yaw),
        math.cos(pitch),
        math.sin(pitch),
        math.cos(roll),
        math.sin(roll),
    )
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_roll @ r_pitch @ r_yaw


def _hit_sphere(rays: np.ndarray, centre: np.ndarray, radius: float):
    """Depth, normals and surface coordinates where camera rays (z = 1) meet a sphere."""
    a = np.einsum("nk,nk->n", rays, rays)
    b = rays @ centre
    c = centre @ centre - radius * radius
    disc = b * b - a * c
    t = np.where(disc >= 0, (b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    local = rays * t[:, None] - centre
    normal = local / radius
    with np.errstate(invalid="ignore"):
        u = np.arctan2(normal[:, 0], normal[:, 2]) * radius
        v = np.arcsin(np.clip(normal[:, 1], -1, 1)) * radius
    return t, normal, u, v


def _hit_box(rays: np.ndarray, centre: np.ndarray, half: np.ndarray, rot: np.ndarray):
    """Slab-method intersection with an oriented box."""
    d = rays @ rot  # ray directions in box coordinates (rot maps box -> camera)
    o = -centre @ rot
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - o) / d
        t2 = (half - o) / d
    t_near = np.minimum(t1, t2)
    t_far = np.maximum(t1, t2).min(axis=1)
    axis = t_near.argmax(axis=1)
    t_in = t_near.max(axis=1)
    t = np.where((t_in <= t_far) & (t_in > 0), t_in, np.inf)
    local = o + d * np.where(np.isfinite(t), t, 0)[:, None]
    rows = np.arange(len(rays))
    normal_local = np.zeros_like(local)
    normal_local[rows, axis] = np.sign(local[rows, axis])
    uv_axes = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    u, v = local[rows, uv_axes[:, 0]], local[rows, uv_axes[:, 1]]
    return t, normal_local @ rot.T, u, v


def _hit_cylinder(rays: np.ndarray, centre: np.ndarray, radius: float, half_h: float, rot):
    """An upright (in its own frame) capped cylinder: side and both caps."""
    d = rays @ rot
    o = -centre @ rot
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = o[0] * d[:, 0] + o[2] * d[:, 2]
    c = o[0] ** 2 + o[2] ** 2 - radius * radius
    disc = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
        y_side = o[1] + t_side * d[:, 1]
        t_side = np.where(np.abs(y_side) <= half_h, t_side, np.inf)
        cap_y = np.where(o[1] < 0, -half_h, half_h)  # the cap facing the camera
        t_cap = (cap_y - o[1]) / d[:, 1]
    p_cap = o + d * np.where(np.isfinite(t_cap), t_cap, 0)[:, None]
    on_cap = (p_cap[:, 0] ** 2 + p_cap[:, 2] ** 2 <= radius * radius) & (t_cap > 0)
    t_cap = np.where(on_cap, t_cap, np.inf)
    cap = t_cap < t_side
    t = np.minimum(t_side, t_cap)
    local = o + d * np.where(np.isfinite(t), t, 0)[:, None]
    normal_local = np.where(
        cap[:, None],
        np.stack([np.zeros_like(t), np.sign(local[:, 1]), np.zeros_like(t)], axis=1),
        np.stack([local[:, 0], np.zeros_like(t), local[:, 2]], axis=1) / radius,
    )
    u = np.where(cap, local[:, 0], np.arctan2(local[:, 0], local[:, 2]) * radius)
    v = np.where(cap, local[:, 2], local[:, 1])
    return t, normal_local @ rot.T, u, v


def _place_solid(rng: np.random.Generator, primary: bool, anchor: np.ndarray | None):
    """A random solid: kind, geometry, and front depth inside the allowed range."""
    kind = rng.choice(["sphere", "box", "cylinder"])
    if kind == "sphere":
        bound = rng.uniform(0.2, 0.45)
        geom = {"radius": bound, "bound": bound}
    elif kind == "box":
        half = rng.uniform(0.12, 0.32, size=3)
        bound = float(np.linalg.norm(half))
        geom = {"half": half, "rot": _rotation(rng), "bound": bound}
    else:
        radius, half_h = rng.uniform(0.12, 0.3), rng.uniform(0.15, 0.4)
        bound = math.hypot(radius, half_h)
        geom = {"radius": radius, "half_h": half_h, "rot": _rotation(rng), "bound": bound}
    if primary:
        front = rng.uniform(NEAREST_MIN_M, NEAREST_MAX_M - 0.1)
    else:
        front = rng.uniform(NEAREST_MIN_M, SOLID_MAX_M - 2 * bound)  # its back stays near
    z = front + bound
    if anchor is not None and rng.random() < 0.6:  # overlap an earlier solid on screen
        xy = anchor + rng.normal(0, 0.12, size=2)
    else:
        xy = rng.uniform(-0.28, 0.28, size=2)
    centre = np.array([xy[0] * z, xy[1] * z, z])
    return kind, centre, geom, xy


def _paint_shapes(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    """Masks of shapes painted on the wall, sized like the solids' silhouettes."""
    shapes = []
    side = min(h, w)
    for _ in range(rng.integers(0, 4)):
        canvas = np.zeros((h, w), np.uint8)
        cx, cy = int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.1, 0.9) * h)
        size = rng.uniform(0.07, 0.3) * side
        kind = rng.integers(0, 4)
        if kind == 0:  # disc or ellipse
            axes = (int(size), int(size * rng.uniform(0.6, 1.0)))
            cv2.ellipse(canvas, (cx, cy), axes, rng.uniform(0, 180), 0, 360, 1, -1)
        elif kind == 1:  # rotated rectangle
            box = ((cx, cy), (size * rng.uniform(1, 2), size * rng.uniform(0.8, 1.6)), 0.0)
            box = (box[0], box[1], float(rng.uniform(0, 90)))
            cv2.fillPoly(canvas, [cv2.boxPoints(box).astype(np.int32)], 1)
        elif kind == 2:  # polygon
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * math.pi, n))
            rad = size * rng.uniform(0.6, 1.2, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)
            cv2.fillPoly(canvas, [pts.astype(np.int32)], 1)
        else:  # ring
            cv2.circle(canvas, (cx, cy), int(size), 1, max(2, int(size * 0.35)))
        shapes.append(canvas.astype(bool))
    return shapes


@lru_cache(maxsize=8)
def _camera(h: int, w: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Focal length, normalised pixel coordinates and camera rays (z = 1, and unit length)."""
    f_px = FOCAL * max(h, w)
    xs = (np.arange(w) + 0.5 - w / 2) / f_px
    ys = (np.arange(h) + 0.5 - h / 2) / f_px
    xn, yn = np.meshgrid(xs, ys)
    rays = np.stack([xn.ravel(), yn.ravel(), np.ones(h * w)], axis=1)
    unit_rays = rays / np.linalg.norm(rays, axis=1, keepdims=True)
    for array in (xn, yn, rays, unit_rays):
        array.setflags(write=False)
    return f_px, xn, yn, rays, unit_rays


def _render(rng: np.random.Generator, h: int, w: int, floor: bool) -> tuple:
    f_px, xn, yn, rays, unit_rays = _camera(h, w)
    # One directional light from the upper front, oblique enough to shade solids clearly.
    light = np.array([rng.choice([-1, 1]) * rng.uniform(0.3, 1.0), rng.uniform(-1.2, -0.3), -1])
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.1, 0.3)
    diffuse = 1.1 - ambient + rng.uniform(-0.1, 0.1)

    # Background: a slightly tilted wall, and a floor seen from above its far part.
    z0 = rng.uniform(*(WALL_FLOOR_M if floor else WALL_M))
    gx, gy = rng.uniform(-0.12, 0.12, size=2)
    denom = 1 - gx * xn - gy * yn
    wall_depth = z0 / denom
    wall_depth *= max(1.0, BACKGROUND_MIN_M / wall_depth.min())
    depth = wall_depth.copy()
    wall_period = rng.uniform(6, 30)
    wall_mat = _Material(rng, wall_period, contrast=rng.uniform(0.2, 0.7))
    bg_rgb = wall_mat.colour(xn * f_px / wall_period, yn * f_px / wall_period)
    wall_normal = np.array([gx, gy, -1.0]) / math.sqrt(gx * gx + gy * gy + 1)
    bg_shade = np.full((h, w), ambient + diffuse * max(0.0, wall_normal @ light), np.float32)
    if floor:
        height_m = BACKGROUND_MIN_M * yn.max() * 1.001  # nearest visible floor at 9.5 m
        with np.errstate(divide="ignore"):
            floor_depth = np.where(yn > 0, height_m / yn, np.inf)
        on_floor = floor_depth < wall_depth
        floor_mat = _Material(rng, 1.0, contrast=rng.uniform(0.4, 1.0))
        tile_m = rng.uniform(0.8, 2.0)
        fz = floor_depth[on_floor] / tile_m
        bg_rgb[on_floor] = floor_mat.colour(xn[on_floor] * fz, fz)
        bg_shade[on_floor] = ambient + diffuse * max(0.0, -light[1])
        depth = np.where(on_floor, floor_depth, depth)

    painted = np.zeros((h, w), bool)
    for shape in _paint_shapes(rng, h, w):
        mat = _Material(rng, rng.uniform(8, 40))
        scale = f_px / mat.period_px
        bg_rgb[shape] = mat.colour(xn[shape] * scale, yn[shape] * scale)
        painted |= shape

    rgb = (bg_rgb * bg_shade[..., None]).reshape(-1, 3)
    depth = depth.ravel()
    solid = np.zeros(h * w, bool)
    anchor = None
    for i in range(int(rng.integers(1, 4))):
        kind, centre, geom, xy = _place_solid(rng, i == 0, anchor)
        anchor = xy if anchor is None else anchor
        # Only rays inside the cone around the solid's bounding sphere can hit it.
        dist = float(np.linalg.norm(centre))
        cone = unit_rays @ (centre / dist) >= math.cos(math.asin(geom["bound"] / dist)) - 1e-3
        idx = np.flatnonzero(cone)
        sub = rays[idx]
        if kind == "sphere":
            t, normal, u, v = _hit_sphere(sub, centre, geom["radius"])
        elif kind == "box":
            t, normal, u, v = _hit_box(sub, centre, geom["half"], geom["rot"])
        else:
            t, normal, u, v = _hit_cylinder(
                sub, centre, geom["radius"], geom["half_h"], geom["rot"]
            )
        near = t < depth[idx]
        if not near.any():
            continue
        hit = idx[near]
        mat = _Material(rng, rng.uniform(8, 40))
        period_m = mat.period_px * centre[2] / f_px  # same on-screen scale as painted shapes
        colour = mat.colour(u[near] / period_m, v[near] / period_m)
        shade = ambient + diffuse * np.clip(normal[near] @ light, 0, None)
        rgb[hit] = colour * shade[:, None].astype(np.float32)
        depth[hit] = t[near]
        solid[hit] = True
    rgb, solid = rgb.reshape(h, w, 3), solid.reshape(h, w)
    shadow = _cast_shadow(rng, rgb, solid, light)
    return rgb, depth.reshape(h, w), solid, painted, shadow, f_px


def _cast_shadow(rng: np.random.Generator, rgb: np.ndarray, solid: np.ndarray, light) -> np.ndarray:
    """Darken the background with the solids' soft shadows, offset away from the light;
    returns the darkening (0..1, zero on the solids).

    Painted shapes cast none: a shadow is one of the cues that tell a solid from a picture.
    """
    h, w = solid.shape
    side = min(h, w)
    away = -np.asarray(light[:2]) / max(float(np.linalg.norm(light[:2])), 1e-6)
    dx, dy = away * rng.uniform(0.03, 0.08) * side
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    shadow = cv2.warpAffine(solid.astype(np.float32), shift, (w, h))
    shadow = cv2.GaussianBlur(shadow, (0, 0), rng.uniform(0.01, 0.03) * side)
    dim = 1 - rng.uniform(0.25, 0.5) * shadow
    rgb[~solid] *= dim[~solid][:, None]
    return np.where(solid, 0, 1 - dim).astype(np.float32)


def _finish(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Camera softness and sensor noise, so pixels are never exact copies of the model."""
    sigma = rng.uniform(0.5, 0.9)
    rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
    noise = rng.standard_normal(size=rgb.shape, dtype=np.float32)
    rgb = rgb * 255 + noise * np.float32(rng.uniform(1.0, 3.5))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def make_scene(seed: int, height: int = 256, width: int = 256, floor: bool | None = None) -> Scene:
    """The scene of `seed`: same seed and size, same bytes. `floor=None` draws it at random."""
    if height < MIN_SIDE_PX or width < MIN_SIDE_PX:
        raise ValueError(
            f"scene size {height}x{width} is too small; use at least {MIN_SIDE_PX}x{MIN_SIDE_PX}"
        )
    rng = np.random.default_rng(seed)
    has_floor = bool(rng.random() < 0.4) if floor is None else floor
    for _ in range(_MAX_ATTEMPTS):
        rgb_f, depth, solid, painted, shadow, f_px = _render(rng, height, width, has_floor)
        depth_m = depth.astype(np.float32)
        # Accept only scenes where the recipe threshold reproduces the solids exactly.
        if solid.any() and np.array_equal(recipe_mask(1.0 / depth_m), solid):
            rgb = _finish(rng, rgb_f)
            return Scene(seed, rgb, depth_m, solid, painted & ~solid, shadow, has_floor, f_px)
    raise RuntimeError(f"seed {seed}: no valid scene in {_MAX_ATTEMPTS} attempts")


def make_scenes(
    n: int,
    seed: int = HELD_OUT_BASE_SEED,
    height: int = 256,
    width: int = 256,
    floor: bool | None = None,
) -> list[Scene]:
    """`n` scenes with consecutive seeds from `seed` (the held-out range by default)."""
    if n < 0:
        raise ValueError(f"number of scenes must be >= 0, got {n}")
    return [make_scene(seed + i, height, width, floor) for i in range(n)]
