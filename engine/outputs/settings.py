"""What a job writes and how: output kinds, post-process options, named presets.

Presets are TOML files in configs/presets (or a path to one): every key is a field of
`PostSettings`, plus an optional ``description``. Command-line options override them.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from xdepth.errors import XDepthError, whole_number
from xdepth.model.cards import configs_dir
from xdepth.outputs.kinds import OUTPUT_KINDS
from xdepth.outputs.video_kinds import VIDEO_KINDS, video_kinds
from xdepth.post import COLORMAPS, COMPOSITE_MODES, SEED_POLICY, CompositeMode, parse_policy

DEFAULT_PRESET = "default"
_HEX_COLOR = re.compile(r"#([0-9a-fA-F]{6})")
_NAMED_BACKGROUNDS = ("black", "white", "blur", "gray")


class SettingsError(XDepthError, ValueError):
    """A post-process option or preset is invalid; the message names it and the fix."""


@dataclass(frozen=True)
class PostSettings:
    """Everything after inference that shapes the output bytes."""

    outputs: tuple[str, ...] = ("depth16", "depth-color", "mask", "cutout")
    threshold: str = str(SEED_POLICY)  # a threshold policy (xdepth.post.parse_policy)
    # Bicubic upsampling undershoots below 0 next to sharp near edges. The seed's uint8 cast
    # wraps those pixels to 255 (kept as "near"); "clip" saturates them to 0. abs only.
    overflow: Literal["clip", "wrap"] = "clip"
    min_island_px: int = 0
    fill_holes: bool = False
    max_hole_px: int | None = None  # with fill_holes: fill holes up to this size only
    largest: bool = False
    feather_px: float = 0.0
    background: str = "black"  # black | white | gray | blur | #rrggbb | an image path
    blur_sigma_px: float = 15.0
    # The composite's image mode: "RGB" keeps the photo's colours; "L" is Pillow's grey
    # (ITU-R 601-2 luma), what the seed's Image.composite over an "L" black image gives.
    composite_mode: CompositeMode = "RGB"
    colormap: str = "inferno"
    png_level: int = 1
    resize: Literal["fast", "seed"] = "fast"  # "seed": torch's bicubic, bit-exact (needs torch)
    ply_stride: int = 1
    jpeg_quality: int = 95
    # Video inputs: "align" keeps one depth scale across frames (xdepth.post.temporal);
    # "none" normalises each frame on its own, as for images. Frames kept: from start_s to
    # end_s (seconds), every `every`-th, at most `max_frames`.
    temporal: Literal["align", "none"] = "align"
    every: int = 1
    max_frames: int | None = None
    start_s: float = 0.0
    end_s: float | None = None
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def file_suffixes(self) -> tuple[str, ...]:
        """The files one image's outputs are written as (<stem>.<suffix>), in order."""
        kinds = [OUTPUT_KINDS[kind] for kind in self.outputs if kind in OUTPUT_KINDS]
        return tuple(s for kind in kinds for s in kind.suffixes)

    @property
    def video_suffixes(self) -> tuple[str, ...]:
        """The files and frame folders one video's outputs are written as, in order."""
        return tuple(kind.suffix for kind in video_kinds(self.outputs))

    def hashed(self) -> dict[str, Any]:
        """The fields that change output bytes (all but the description), JSON-ready."""
        data = dataclasses.asdict(self)
        data.pop("description")
        data["outputs"] = list(self.outputs)
        return data


def _validate(s: PostSettings) -> None:
    known = {**OUTPUT_KINDS, **VIDEO_KINDS}
    unknown = [k for k in s.outputs if k not in known]
    if unknown or not s.outputs:
        raise SettingsError(
            f"unknown output(s) {', '.join(map(repr, unknown)) or '(none given)'}; choose from "
            f"{', '.join(known)}"
        )
    if len(set(s.outputs)) != len(s.outputs):
        raise SettingsError(f"outputs {list(s.outputs)} name a kind twice")
    try:
        policy = parse_policy(s.threshold)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"--threshold: {exc}") from None
    object.__setattr__(s, "threshold", str(policy))  # one spelling per policy, for the hash
    object.__setattr__(s, "outputs", tuple(s.outputs))
    if s.overflow not in ("clip", "wrap"):
        raise SettingsError(f"overflow must be 'clip' or 'wrap', got {s.overflow!r}")
    if s.overflow == "wrap" and not policy.spec.uint8_scale:
        raise SettingsError("overflow 'wrap' (the seed's uint8 cast) applies to abs:N only")
    _non_negative_int(s.min_island_px, "--min-island")
    for name in ("fill_holes", "largest"):
        if not isinstance(getattr(s, name), bool):
            raise SettingsError(f"{name} must be true or false, got {getattr(s, name)!r}")
    if s.max_hole_px is not None:
        _non_negative_int(s.max_hole_px, "--fill-holes MAX_PX")
    if not (isinstance(s.feather_px, (int, float)) and math.isfinite(s.feather_px)):
        raise SettingsError(f"--feather must be a number of pixels, got {s.feather_px!r}")
    if s.feather_px < 0:
        raise SettingsError(f"--feather must be >= 0 pixels, got {s.feather_px!r}")
    if not (isinstance(s.blur_sigma_px, (int, float)) and s.blur_sigma_px > 0):
        raise SettingsError(f"blur sigma must be > 0 pixels, got {s.blur_sigma_px!r}")
    object.__setattr__(s, "feather_px", float(s.feather_px))
    object.__setattr__(s, "blur_sigma_px", float(s.blur_sigma_px))
    background_kind(s.background)
    if s.composite_mode not in COMPOSITE_MODES:
        raise SettingsError(
            f"composite_mode must be one of {', '.join(map(repr, COMPOSITE_MODES))}, "
            f"got {s.composite_mode!r}"
        )
    if s.colormap not in COLORMAPS:
        raise SettingsError(f"--colormap {s.colormap!r} is not one of {', '.join(COLORMAPS)}")
    if isinstance(s.png_level, bool) or s.png_level not in range(10):
        raise SettingsError(f"png_level must be an integer 0..9, got {s.png_level!r}")
    if s.resize not in ("fast", "seed"):
        raise SettingsError(f"resize must be 'fast' or 'seed', got {s.resize!r}")
    whole_number(s.ply_stride, "--ply-stride", error=SettingsError)
    if isinstance(s.jpeg_quality, bool) or s.jpeg_quality not in range(1, 101):
        raise SettingsError(f"jpeg_quality must be an integer 1..100, got {s.jpeg_quality!r}")
    _validate_video(s)


def _validate_video(s: PostSettings) -> None:
    if s.temporal not in ("align", "none"):
        raise SettingsError(f"--temporal must be 'align' or 'none', got {s.temporal!r}")
    whole_number(s.every, "--every", error=SettingsError)
    if s.max_frames is not None:
        whole_number(s.max_frames, "--max-frames", error=SettingsError)
    for name, value in (("--start", s.start_s), ("--end", s.end_s)):
        if value is not None and not (
            isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
        ):
            raise SettingsError(f"{name} must be a number of seconds >= 0, got {value!r}")
    if s.end_s is not None and s.end_s <= s.start_s:
        raise SettingsError(f"--end ({s.end_s} s) must come after --start ({s.start_s} s)")
    object.__setattr__(s, "start_s", float(s.start_s))
    if s.end_s is not None:
        object.__setattr__(s, "end_s", float(s.end_s))


def _non_negative_int(value: object, name: str) -> None:
    whole_number(value, f"{name} (pixels)", minimum=0, error=SettingsError)


def background_kind(background: str) -> tuple[str, tuple[int, int, int] | Path | None]:
    """("color", rgb) | ("blur", None) | ("gray", None) | ("image", path)."""
    if not isinstance(background, str) or not background:
        raise SettingsError(f"--background must be a non-empty string, got {background!r}")
    if background == "black":
        return "color", (0, 0, 0)
    if background == "white":
        return "color", (255, 255, 255)
    if background in ("blur", "gray"):
        return background, None
    match = _HEX_COLOR.fullmatch(background)
    if match:
        value = int(match.group(1), 16)
        return "color", (value >> 16, (value >> 8) & 0xFF, value & 0xFF)
    if background.startswith("#"):
        raise SettingsError(f"--background {background!r}: colours are written #rrggbb")
    path = Path(background)
    if not path.is_file():
        raise SettingsError(
            f"--background {background!r} is neither one of {', '.join(_NAMED_BACKGROUNDS)}, "
            "a #rrggbb colour, nor an image file"
        )
    return "image", path


def presets_dir() -> Path:
    return configs_dir() / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def load_preset(name_or_path: str | Path) -> dict[str, Any]:
    """A preset's fields (a shipped name, or a .toml path), checked against PostSettings."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = presets_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise SettingsError(
                f"unknown preset {name_or_path!r}; shipped presets: {', '.join(preset_names())} "
                "(or pass a path to a .toml file)"
            )
    elif not path.is_file():
        raise SettingsError(f"{path}: no such preset file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read the preset ({exc})") from None
    known = {f.name for f in dataclasses.fields(PostSettings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(
            f"{path}: unknown key(s) {', '.join(unknown)}; presets take {', '.join(sorted(known))}"
        )
    if "outputs" in data:
        data["outputs"] = tuple(data["outputs"])
    return data


def make_settings(preset: str | Path | None = None, **overrides: Any) -> PostSettings:
    """Preset (default: `default`) with the given fields replaced; None values are ignored."""
    data = load_preset(preset or DEFAULT_PRESET)
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    if isinstance(data.get("outputs"), str):
        data["outputs"] = parse_outputs(data["outputs"])
    try:
        return PostSettings(**data)
    except TypeError as exc:
        raise SettingsError(f"bad settings: {exc}") from None


def parse_outputs(text: str) -> tuple[str, ...]:
    """``"depth16, cutout"`` -> ("depth16", "cutout")."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_threshold(text: str) -> str:
    """A policy string, or a bare number taken as ``abs:N`` (the older --threshold 45 form)."""
    try:
        return f"abs:{float(text):g}"
    except ValueError:
        return text
