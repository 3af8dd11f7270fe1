"""Videos as cameras, phones and editors write them, through `xdepth run`: streams that
start late, damaged bytes mid-file, non-square pixels, MPEG transport and program streams,
frame times with a gap under a sound track, files whose names lie."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from test_video import FRAMES, HEIGHT, WIDTH, _decode, _run

from xdepth.eval.clips import make_clip, write_clip
from xdepth.job.video_io import VideoDecoder
from xdepth.model.cache import cached_artifact

RATE = 12


@pytest.fixture(scope="module")
def artifact() -> Path:
    return cached_artifact("xdepth-tiny", precision="f32")


def _h264(rgb: np.ndarray, path: Path, **options) -> Path:
    """Frames as an H.264 (4:2:0) video file, as cameras and phones write them."""
    return write_clip(rgb, path, **{"codec": "libx264", "pix_fmt": "yuv420p", **options})


def _videos(out: Path) -> dict[str, dict]:
    return {Path(v["path"]).name: v for v in json.loads((out / "run.json").read_text())["videos"]}


def _times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.time) for f in container.decode(video=0)]


def test_a_stream_that_starts_late_is_whole_and_times_count_from_its_start(
    artifact: Path, tmp_path: Path
) -> None:
    """A clip cut from a longer recording starts at 5 s on its clock; Matroska then
    declares where it ends (6 s), not its length: neither is a truncation, and --start /
    --end count from the clip's first frame."""
    rgb = make_clip("pan", 2, FRAMES, HEIGHT, WIDTH).rgb
    times_s = [5 + i / RATE for i in range(FRAMES)]
    folder = tmp_path / "in"
    folder.mkdir()
    _h264(rgb, folder / "late.mkv", times_s=times_s)
    _h264(rgb, folder / "late-too.mp4", times_s=times_s)
    out = tmp_path / "out"
    assert _run(artifact, [folder], out, "--outputs", "depth16") == 0
    assert {k: (v["frames"], v["partial"]) for k, v in _videos(out).items()} == {
        "late.mkv": (FRAMES, False),
        "late-too.mp4": (FRAMES, False),
    }
    assert _times(out / "late.depth16.mkv")[0] == 0.0
    for name in ("late.mkv", "late-too.mp4"):  # the progress bar's count
        with VideoDecoder(folder / name) as decoder:
            assert abs(decoder.info.estimated_frames - FRAMES) <= 1, decoder.info
    part = tmp_path / "part"
    selection = ("--outputs", "depth16", "--start", "0.2", "--end", "0.5")
    assert _run(artifact, [folder], part, *selection) == 0
    for name in ("late.mkv", "late-too.mp4"):
        assert _videos(part)[name]["frames"] == 3  # 3/12 to 5/12 s after its first frame


def test_damaged_bytes_mid_file_skip_their_frames_and_decoding_goes_on(
    artifact: Path, tmp_path: Path
) -> None:
    """Bytes overwritten in the middle of an H.264 MP4 (a bad sector, a broken download):
    the packets they hit are skipped, as players skip them, and every frame after them
    comes out; the video is partial, and its line names the first frame it lost."""
    frames = 30
    rgb = make_clip("pan", 3, frames, HEIGHT, WIDTH).rgb
    data = bytearray(_h264(rgb, tmp_path / "whole.mp4").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = np.random.default_rng(0).bytes(200)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "damaged.mp4").write_bytes(bytes(data))
    out = tmp_path / "out"
    assert _run(artifact, [folder], out, "--outputs", "depth16") == 1
    (error,) = map(json.loads, (out / "errors.jsonl").open())
    kept = len(_decode(out / "damaged.depth16.mkv")[0])
    video = _videos(out)["damaged.mp4"]
    assert video["partial"] and video["frames"] == kept
    assert 0 < error["frame"] < kept - 5, (error, kept)  # frames after the damage kept
    assert kept >= frames - 4 and "could not be decoded" in error["reason"]


def test_non_square_pixels_come_out_as_they_display(artifact: Path, tmp_path: Path) -> None:
    """Anamorphic video stores each pixel twice as wide as it is high: the frames are
    widened to their display shape before the model sees them."""
    wide = make_clip("pan", 4, FRAMES, HEIGHT, WIDTH).rgb
    folder = tmp_path / "in"
    folder.mkdir()
    _h264(wide[:, :, ::2].copy(), folder / "anamorphic.mp4", pixel_aspect=Fraction(2))
    _h264(wide, folder / "square.mp4")
    out = tmp_path / "out"
    assert _run(artifact, [folder], out, "--outputs", "depth16,composite") == 0
    anamorphic, _, _ = _decode(out / "anamorphic.depth16.mkv")
    square, _, _ = _decode(out / "square.depth16.mkv")
    assert anamorphic[0].shape == (HEIGHT, WIDTH)
    assert _decode(out / "anamorphic.composite.mp4")[0][0].shape[:2] == (HEIGHT * 3 // 2, WIDTH)
    correlation = np.corrcoef(anamorphic[5].ravel(), square[5].ravel())[0, 1]
    assert correlation > 0.9, correlation


@pytest.mark.parametrize(
    ("name", "codec", "fmt"),
    [
        ("camcorder.mts", "libx264", "mpegts"),
        ("broadcast.ts", "mpeg2video", "mpegts"),
        ("dvd.mpg", "mpeg2video", "mpeg"),
        ("unnamed.bin", "mpeg2video", "mpegts"),  # by content
    ],
)
def test_mpeg_transport_and_program_streams_are_videos(
    artifact: Path, tmp_path: Path, name: str, codec: str, fmt: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = make_clip("dolly", 1, FRAMES, HEIGHT, WIDTH).rgb
    video = _h264(rgb, folder / name, codec=codec, fmt=fmt, fps=25)  # an MPEG-2 rate
    out = tmp_path / "out"
    assert _run(artifact, [video], out, "--outputs", "depth16") == 0  # named: by content too
    stem = Path(name).stem
    assert len(_decode(out / f"{stem}.depth16.mkv")[0]) == FRAMES
    assert _videos(out)[name]["frames"] == FRAMES
    # No index to seek by: a seek that lands past --start starts over from the beginning.
    part = tmp_path / "part"
    assert (
        _run(artifact, [video], part, "--outputs", "depth16", "--start", "0.2", "--end", "0.4") == 0
    )
    assert _videos(part)[name]["frames"] == 5  # 0.20 to 0.36 s at 25 frames/s


def test_a_file_is_what_its_bytes_say_not_its_name(artifact: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = make_clip("pan", 5, FRAMES, HEIGHT, WIDTH).rgb
    Image.fromarray(rgb[0]).save(folder / "photo.mp4", format="JPEG")
    _h264(rgb, folder / "clip.jpg", fmt="mp4")
    out = tmp_path / "out"
    assert _run(artifact, [folder], out, "--outputs", "depth16") == 0
    assert Image.open(out / "photo.depth16.png").size == (WIDTH, HEIGHT)
    assert len(_decode(out / "clip.depth16.mkv")[0]) == FRAMES


def test_frames_keep_their_times_in_step_with_the_sound(artifact: Path, tmp_path: Path) -> None:
    """A recording paused for 4 s (a gap in the frame times) with its sound: each output
    frame shows at its source time, so picture and sound stay together (at the average
    rate, frames after the gap would show seconds early)."""
    times_s = [i / RATE for i in range(6)] + [4.5 + i / RATE for i in range(6)]
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = make_clip("pan", 6, len(times_s), HEIGHT, WIDTH).rgb
    _h264(rgb, folder / "paused.mp4", times_s=times_s, tone=True)
    out = tmp_path / "out"
    assert _run(artifact, [folder], out, "--outputs", "depth16,depth-color", "--every", "2") == 0
    for output in ("paused.depth16.mkv", "paused.depth-color.mp4"):
        np.testing.assert_allclose(_times(out / output), times_s[::2], atol=0.002)
    with av.open(str(out / "paused.depth-color.mp4")) as container:
        sound = [float(p.pts * p.time_base) for p in container.demux(audio=0) if p.pts is not None]
    assert sound[0] == pytest.approx(0.0, abs=0.07) and sound[-1] > 4.5


def test_viewing_outputs_say_how_their_colours_were_encoded(artifact: Path, tmp_path: Path):
    """RGB becomes YUV by the BT.601 matrix; the H.264 and VP9 outputs say so (untagged HD
    video is shown as BT.709 by browsers, which shifts every colour), and a decoder that
    reads the tags gives back the colours."""
    rgb = np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    rgb[:, :, : WIDTH // 2] = (200, 40, 30)
    rgb[:, :, WIDTH // 2 :] = (30, 60, 210)
    video = _h264(rgb, tmp_path / "flat.mp4")
    out = tmp_path / "out"
    outputs = "composite,cutout,depth-color"
    assert _run(artifact, [video], out, "--outputs", outputs, "--threshold", "abs:0") == 0
    for name in ("flat.composite.mp4", "flat.cutout.webm", "flat.depth-color.mp4"):
        with av.open(str(out / name)) as container:
            frame = next(container.decode(video=0))
            assert (frame.colorspace, frame.color_range) == (6, 1), name
    with av.open(str(out / "flat.composite.mp4")) as container:
        shown = next(container.decode(video=0)).to_ndarray(format="rgb24")
    np.testing.assert_allclose(
        shown[HEIGHT // 2, [10, WIDTH - 10]], rgb[0, 0, [10, WIDTH - 10]], atol=6
    )


def test_frames_that_change_size_go_on_in_the_first_size_undistorted(
    artifact: Path, tmp_path: Path
) -> None:
    """Two transport streams joined (as a capture that restarts at another size): the
    outputs stay at the first frames' size and the larger 4:3 frames are fitted inside
    it, bars of zeros at the sides, not squashed to 3:2."""
    first = _h264(make_clip("pan", 1, FRAMES, HEIGHT, WIDTH).rgb, tmp_path / "a.ts", fmt="mpegts")
    times_s = [(FRAMES + i) / RATE for i in range(FRAMES)]
    later = make_clip("pan", 2, FRAMES, 96, 128).rgb
    second = _h264(later, tmp_path / "b.ts", fmt="mpegts", times_s=times_s)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    out = tmp_path / "out"
    _run(artifact, [joined], out, "--outputs", "depth16,composite")
    depth, _, _ = _decode(out / "joined.depth16.mkv")
    assert {d.shape for d in depth} == {(HEIGHT, WIDTH)} and len(depth) >= 2 * FRAMES - 2
    bars = WIDTH - round(128 * HEIGHT / 96)  # 96x128 fitted to a height of 64: 85 wide
    assert (depth[-1][:, : bars // 2] == 0).all() and (depth[-1][:, -(bars // 2) :] == 0).all()
    assert (depth[-1][:, bars : WIDTH - bars] > 0).all()
    assert (depth[0] > 0).mean() > 0.99
    barred = [i for i, d in enumerate(depth) if (d[:, : bars // 2] == 0).all()]
    assert _videos(out)["joined.ts"]["cuts"] == barred[:1]  # the alignment starts afresh


def test_an_animated_gif_is_a_video_and_a_still_one_an_image(
    artifact: Path, tmp_path: Path
) -> None:
    """A GIF of several frames (each shown 80 ms, the first 400 ms) comes out as a video at
    its frames' times; a GIF of one frame stays an image."""
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = make_clip("pan", 7, 8, HEIGHT, WIDTH).rgb
    frames = [Image.fromarray(f).quantize(64) for f in rgb]
    durations_ms = [400] + [80] * 7
    frames[0].save(
        folder / "loop.gif", save_all=True, append_images=frames[1:], duration=durations_ms
    )
    frames[0].save(folder / "still.gif")
    out = tmp_path / "out"
    assert _run(artifact, [folder], out, "--outputs", "depth16") == 0
    np.testing.assert_allclose(
        _times(out / "loop.depth16.mkv"), np.cumsum([0, *durations_ms[:-1]]) / 1000, atol=0.002
    )
    assert Image.open(out / "still.depth16.png").size == (WIDTH, HEIGHT)
