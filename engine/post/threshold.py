"""Threshold policies: which pixels are "near" (the clip mask).

Every policy reduces to one cut level on the map: inverse depth ``>= level`` is kept
(metric depth ``<= level`` for ``metric``). The level can be computed on one map (say the
model-resolution depth, for speed) and applied to another (the upsampled one).

Policies, as strings for configs and the command line:
  ``abs:45``      seed rule: ``to_uint8_max(inv_depth) > 45`` on the 0-255 scale
  ``nearest:20%`` the nearest 20 % of the finite pixels (ties at the cut are all kept)
  ``otsu``        Otsu's cut on a 256-bin histogram of the min-max scaled inverse depth
  ``range:0.3``   inverse depth within 30 % of the nearest value: ``>= (1 - 0.3) * max``
  ``metric:2.5``  metric depth in metres, ``0 < depth_m <= 2.5``

Non-finite pixels are never kept. A constant positive map keeps every finite pixel for
abs (below 255), nearest, otsu and range; a map whose maximum is <= 0 keeps none for abs
and range (there is no near side to measure from).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from xdepth.post._check import depth_array
from xdepth.post.normalize import finite_range, uint8_cut


@dataclass(frozen=True)
class PolicyKind:
    """One threshold rule: its parameter and how it finds the cut level on a map.

    `level(finite_values, value, peak)` returns the cut; `peak` is the map's maximum (or
    the fixed `max_value`) for rules that scale from the near end (`uses_peak`).
    """

    name: str
    level: Callable[[np.ndarray, float | None, float], float]
    bounds: tuple[float, float] | None  # None: the rule takes no value
    rule: str = ""  # the bounds, as an error message says them
    low_excluded: bool = False  # the value must be above the lower bound
    percent: bool = False  # written with a % sign
    metric: bool = False  # reads metric depth and keeps what is nearer than the cut
    uses_peak: bool = False
    uint8_scale: bool = False  # cuts the seed's max-scaled uint8 map (its overflow rule applies)
    example: str = ""
    help: str = ""

    def check(self, value: float | None) -> None:
        if self.bounds is None:
            if value is not None:
                raise ValueError(f"{self.name} takes no value, got {value!r}")
            return
        if value is None or not math.isfinite(value):
            raise ValueError(f"threshold {self.name} needs a finite value, got {value!r}")
        lo, hi = self.bounds
        if not (lo <= value <= hi) or (self.low_excluded and value <= lo):
            raise ValueError(f"threshold {self.name} needs {self.rule}, got {value!r}")


def _abs_level(values: np.ndarray, value: float | None, peak: float) -> float:
    return uint8_cut(peak, value)  # type: ignore[arg-type]


def _range_level(values: np.ndarray, value: float | None, peak: float) -> float:
    return float(np.float32((1.0 - value) * peak))  # type: ignore[operator]


def _nearest_level(values: np.ndarray, value: float | None, peak: float) -> float:
    keep = max(1, math.ceil(value / 100.0 * values.size))  # type: ignore[operator]
    return float(np.partition(values, values.size - keep)[values.size - keep])


def _otsu(values: np.ndarray, value: float | None, peak: float) -> float:
    return _otsu_level(values)


def _metric_level(values: np.ndarray, value: float | None, peak: float) -> float:
    return float(value)  # type: ignore[arg-type]


# The registry: a new rule is a level function and one entry here.
POLICIES: dict[str, PolicyKind] = {
    kind.name: kind
    for kind in (
        PolicyKind(
            "abs", _abs_level, (0.0, 255.0), "0 <= level <= 255", uses_peak=True,
            uint8_scale=True, example="abs:45",
            help="max-scaled depth (0-255) above the level: the seed recipe's rule",
        ),
        PolicyKind(
            "nearest", _nearest_level, (0.0, 100.0), "0 < percent <= 100", low_excluded=True,
            percent=True, example="nearest:20%",
            help="the nearest share of the pixels (ties at the cut all kept)",
        ),
        PolicyKind(
            "otsu", _otsu, None, example="otsu",
            help="Otsu's cut on a 256-bin histogram of the min-max scaled depth",
        ),
        PolicyKind(
            "range", _range_level, (0.0, 1.0), "0 <= fraction <= 1", uses_peak=True,
            example="range:0.3", help="inverse depth within this fraction of the nearest value",
        ),
        PolicyKind(
            "metric", _metric_level, (0.0, math.inf), "distance_m > 0", low_excluded=True,
            metric=True, example="metric:2.5", help="metric depth up to this many metres",
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class ThresholdPolicy:
    """A named rule and its parameter; ``str(policy)`` gives back the parseable form."""

    kind: str
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in POLICIES:
            raise ValueError(f"threshold kind must be one of {tuple(POLICIES)}, got {self.kind!r}")
        self.spec.check(self.value)

    @property
    def spec(self) -> PolicyKind:
        return POLICIES[self.kind]

    @property
    def metric(self) -> bool:
        """True when the rule reads metric depth (keep below the cut), not inverse depth."""
        return self.spec.metric

    def __str__(self) -> str:
        if self.value is None:
            return self.kind
        return f"{self.kind}:{self.value:g}{'%' if self.spec.percent else ''}"


SEED_THRESHOLD_U8 = 45  # the seed recipe: max-scaled uint8 inverse depth > 45 is near
SEED_POLICY = ThresholdPolicy("abs", float(SEED_THRESHOLD_U8))


def parse_policy(text: str) -> ThresholdPolicy:
    """Parse ``"abs:45"``, ``"nearest:20%"``, ``"otsu"``, ``"range:0.3"``, ``"metric:2.5"``."""
    if not isinstance(text, str):
        raise TypeError(f"threshold policy must be a string, got {type(text).__name__}")
    raw = text.strip().lower()
    kind, sep, arg = raw.partition(":")
    kind, arg = kind.strip(), arg.strip()
    if kind not in POLICIES:
        examples = ", ".join(repr(p.example) for p in POLICIES.values())
        raise ValueError(
            f"bad threshold policy {text!r}: kind must be one of {', '.join(POLICIES)} "
            f"(e.g. {examples})"
        )
    spec = POLICIES[kind]
    if spec.bounds is None:
        if sep:
            raise ValueError(f"bad threshold policy {text!r}: {kind} takes no value")
        return ThresholdPolicy(kind)
    if spec.percent:
        arg = arg.removesuffix("%").strip()
    elif arg.endswith("%"):
        percent = [p.name for p in POLICIES.values() if p.percent]
        raise ValueError(
            f"bad threshold policy {text!r}: only {', '.join(map(repr, percent))} takes a percent"
        )
    try:
        value = float(arg)
    except ValueError:
        raise ValueError(
            f"bad threshold policy {text!r}: {kind} needs a number after ':', got {arg!r}"
        ) from None
    try:
        return ThresholdPolicy(kind, value)
    except ValueError as exc:
        raise ValueError(f"bad threshold policy {text!r}: {exc}") from None


def cut_level(
    depth: np.ndarray, policy: ThresholdPolicy, *, max_value: float | None = None
) -> float:
    """The level at which ``policy`` cuts ``depth`` (see the module docstring).

    ``max_value`` fixes the near end of the scale for ``abs`` and ``range`` (one scale for a
    batch or a video); by default it is the map's finite maximum. Returns +inf when nothing
    can be kept.
    """
    x = depth_array(depth)
    spec = policy.spec
    if spec.metric:
        return spec.level(x, policy.value, math.nan)
    if spec.uses_peak:
        peak = finite_range(x)[1] if max_value is None else float(np.float32(max_value))
        if not peak > 0:
            return math.inf
        return spec.level(x, policy.value, peak)
    finite = x.ravel() if np.isfinite(np.sum(x, dtype=np.float64)) else x[np.isfinite(x)]
    if finite.size == 0:
        return math.inf
    return spec.level(finite, policy.value, math.nan)


def apply_cut(depth: np.ndarray, level: float, *, metric: bool = False) -> np.ndarray:
    """Bool mask of the pixels kept at ``level``: ``>= level``, or ``0 < d <= level`` if metric."""
    x = depth_array(depth)
    if metric:
        mask = (x <= np.float32(level)) & (x > 0)
    else:
        mask = x >= np.float32(level)
        if not np.isfinite(np.max(x)):  # +inf would pass any cut; it is "no depth"
            mask &= np.isfinite(x)
    return mask


def threshold_mask(
    depth: np.ndarray,
    policy: ThresholdPolicy | str,
    *,
    max_value: float | None = None,
    stats_from: np.ndarray | None = None,
) -> np.ndarray:
    """Bool mask of the near pixels of ``depth`` under ``policy``.

    ``stats_from`` (e.g. the model-resolution map) supplies the statistics (maximum,
    percentile, Otsu histogram) when computing them on ``depth`` itself would be slow;
    by default they come from ``depth``, which is what the seed did.
    """
    if isinstance(policy, str):
        policy = parse_policy(policy)
    source = depth if stats_from is None else stats_from
    level = cut_level(source, policy, max_value=max_value)
    return apply_cut(depth, level, metric=policy.metric)


def mask_from_uint8(depth_u8: np.ndarray, level: int = SEED_THRESHOLD_U8) -> np.ndarray:
    """The seed's ``np.where(depth_u8 > level, 255, 0)`` as a bool mask."""
    if not isinstance(depth_u8, np.ndarray) or depth_u8.dtype != np.uint8 or depth_u8.ndim != 2:
        raise TypeError("depth_u8 must be a 2-D uint8 array (e.g. from to_uint8_max)")
    return depth_u8 > level


def _otsu_level(values: np.ndarray) -> float:
    """Otsu's cut (OpenCV) on the finite values, mapped back to the input's units."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo  # constant: every pixel is as near as the nearest
    gain = np.float32(255.0 / (hi - lo))
    scaled = np.rint((values - np.float32(lo)) * gain).astype(np.uint8)
    t, _ = cv2.threshold(scaled.reshape(1, -1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    # OpenCV keeps scaled > t, i.e. scaled >= t + 1, i.e. value >= lo + (t + 0.5) / gain.
    return lo + (t + 0.5) * (hi - lo) / 255.0
