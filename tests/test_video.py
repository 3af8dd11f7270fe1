"""Videos through `xdepth run`: every output decodes with PyAV to the frames, size and pixel
format it should; rotation, frame selection, bad files, determinism and resume."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from xdepth.cli.main import main
from xdepth.eval.clips import make_clip, write_clip
from xdepth.eval.scenes import make_scene
from xdepth.model.cache import cached_artifact
from xdepth.post.encoders import TEMP_PREFIX

FRAMES, HEIGHT, WIDTH = 12, 64, 96
ALL = "depth16,depth8,depth-color,mask,composite,cutout,npy,depth16-png,cutout-png"


@pytest.fixture(scope="module")
def artifact() -> Path:
    """The embedded model, exported once (f32) to the session's artifact folder."""
    return cached_artifact("xdepth-tiny", precision="f32")


def _run(artifact: Path, inputs: list[Path], out: Path, *extra: str) -> int:
    args = ["run", *map(str, inputs), "-o", str(out), "--artifact", str(artifact), "--quiet"]
    return main([*args, *extra])


def _run_process(artifact: Path, inputs: list[Path], out: Path, *extra: str) -> int:
    args = ["run", *map(str, inputs), "-o", str(out), "--artifact", str(artifact), "--quiet"]
    code = f"import sys; from xdepth.cli.main import main; sys.exit(main({[*args, *extra]!r}))"
    return subprocess.run([sys.executable, "-c", code], check=False).returncode


def _decode(path: Path, codec: str | None = None) -> tuple[list[np.ndarray], str, str]:
    """Every frame of a video as stored (its own pixel format), the codec and the format;
    `codec` picks a decoder (libvpx-vp9 keeps VP9's alpha, FFmpeg's own drops it)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        name = stream.codec_context.name
        if codec is None:
            frames = list(container.decode(stream))
        else:
            decoder = av.CodecContext.create(codec, "r")
            frames = [f for packet in container.demux(stream) for f in decoder.decode(packet)]
        fmt = frames[0].format.name
        alpha = fmt.startswith("yuva")  # numpy takes it as RGBA
        arrays = [f.to_ndarray(format="rgba") if alpha else f.to_ndarray() for f in frames]
        return arrays, name, fmt


def _audio_clip(path: Path, frames: np.ndarray, fps: int = 12) -> Path:
    """An H.264 MP4 with an AAC tone, as phones and cameras write."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps))
        video.height, video.width = frames.shape[1:3]
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        samples = 1024
        t = 0
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
            while t < (index + 1) * 16000 // fps:
                tone = np.sin(np.arange(t, t + samples) / 16000 * 2 * np.pi * 440)
                chunk = av.AudioFrame.from_ndarray(
                    (tone[None] * 0.2).astype(np.float32), format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 16000, t
                container.mux(audio.encode(chunk))
                t += samples
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


def test_every_output_decodes_to_the_frames_size_and_format(artifact: Path, tmp_path: Path):
    clip = make_clip("pan", 0, FRAMES, HEIGHT, WIDTH)
    (tmp_path / "in").mkdir()
    _audio_clip(tmp_path / "in" / "pan.mp4", clip.rgb)
    out = tmp_path / "out"
    assert _run(artifact, [tmp_path / "in"], out, "--outputs", ALL) == 0
    expected = {
        "depth16.mkv": ("ffv1", "gray16le", (HEIGHT, WIDTH)),
        "depth8.mkv": ("ffv1", "gray", (HEIGHT, WIDTH)),
        "mask.mkv": ("ffv1", "gray", (HEIGHT, WIDTH)),
        "depth-color.mp4": ("h264", "yuv420p", None),
        "composite.mp4": ("h264", "yuv420p", None),
    }
    for suffix, (codec, fmt, shape) in expected.items():
        frames, name, pix = _decode(out / f"pan.{suffix}")
        assert (len(frames), name, pix) == (FRAMES, codec, fmt), suffix
        if shape:
            assert frames[0].shape == shape, suffix
    mask, _, _ = _decode(out / "pan.mask.mkv")
    assert set(np.unique(np.stack(mask))) <= {0, 255}
    cutout, _, pix = _decode(out / "pan.cutout.webm", codec="libvpx-vp9")
    assert (len(cutout), pix) == (FRAMES, "yuva420p")
    alpha = np.stack(cutout)[..., 3]
    assert alpha.min() < 16 and alpha.max() > 239  # clear background, opaque subject
    for folder, ext in (("depth-npy", "npy"), ("depth16-png", "png"), ("cutout-png", "png")):
        names = sorted(p.name for p in (out / f"pan.{folder}").iterdir())
        assert names == [f"{i:06d}.{ext}" for i in range(FRAMES)], folder
    depth = np.load(out / "pan.depth-npy" / "000000.npy")
    assert depth.shape == (HEIGHT, WIDTH) and depth.dtype == np.float32
    with av.open(str(out / "pan.depth-color.mp4")) as viewing:
        assert [s.codec_context.name for s in viewing.streams.audio] == ["aac"]
    report = json.loads((out / "run.json").read_text())
    assert report["frames"] == FRAMES and report["videos"][0]["frames"] == FRAMES
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))


def test_phone_rotation_odd_size_and_frame_selection(artifact: Path, tmp_path: Path) -> None:
    """A 10-bit 4:2:2 H.264 clip stored sideways with a -90 degree display matrix (a phone
    held upright) comes out upright; an odd-sized 10-bit 4:4:4 clip keeps its size (padded
    to even sides where H.264 4:2:0 needs them); --every and --max-frames select."""
    folder = tmp_path / "in"
    folder.mkdir()
    phone = make_clip("dolly", 1, 10, 96, 64).rgb  # portrait
    write_clip(phone, folder / "phone.mov", codec="libx264", pix_fmt="yuv422p10le", rotation=-90)
    odd = make_clip("pan", 1, 10, 63, 95).rgb
    write_clip(odd, folder / "odd.mkv", pix_fmt="yuv444p10le")
    out = tmp_path / "out"
    args = ("--outputs", "depth16,depth-color", "--every", "2", "--max-frames", "4")
    assert _run(artifact, [folder], out, *args) == 0
    with av.open(str(folder / "phone.mov")) as stored:
        assert stored.streams.video[0].codec_context.width == 96  # stored sideways
    depth, _, _ = _decode(out / "phone.depth16.mkv")
    assert len(depth) == 4 and depth[0].shape == (96, 64)  # upright, as the frames were made
    depth, _, _ = _decode(out / "odd.depth16.mkv")
    assert len(depth) == 4 and depth[0].shape == (63, 95)
    colour, _, fmt = _decode(out / "odd.depth-color.mp4")
    assert (len(colour), fmt) == (4, "yuv420p")
    with av.open(str(out / "odd.depth-color.mp4")) as viewing:
        stream = viewing.streams.video[0].codec_context
        assert (stream.height, stream.width) == (64, 96)


def test_a_variable_frame_rate_keeps_every_frame(artifact: Path, tmp_path: Path) -> None:
    """Phones and screen recorders write variable frame rates. Every frame comes out and
    none is taken for missing (Matroska declares no frame count, and its duration at the
    average rate would promise 20 frames for these 12); --start/--end select by each
    frame's own time."""
    times_s = [0, 0.033, 0.066, 0.166, 0.199, 0.266, 0.299, 0.499, 0.532, 0.565, 0.615, 0.648]
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = make_clip("pan", 4, len(times_s), HEIGHT, WIDTH).rgb
    write_clip(rgb, folder / "screen.mkv", codec="libx264", pix_fmt="yuv420p", times_s=times_s)
    write_clip(rgb, folder / "phone.mp4", codec="libx264", pix_fmt="yuv420p", times_s=times_s)
    out = tmp_path / "out"
    assert _run(artifact, [folder], out, "--outputs", "depth16") == 0
    assert not (out / "errors.jsonl").exists() or not (out / "errors.jsonl").read_text()
    videos = json.loads((out / "run.json").read_text())["videos"]
    assert [(v["frames"], v["partial"]) for v in videos] == [(12, False), (12, False)]
    for name in ("screen", "phone"):
        assert len(_decode(out / f"{name}.depth16.mkv")[0]) == 12
    part = tmp_path / "part"
    assert (
        _run(artifact, [folder], part, "--outputs", "depth16", "--start", "0.15", "--end", "0.52")
        == 0
    )
    assert len(_decode(part / "screen.depth16.mkv")[0]) == 5  # 0.166 to 0.499 s


def test_bad_videos_are_logged_and_the_job_goes_on(artifact: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    clip = make_clip("pan", 2, FRAMES, HEIGHT, WIDTH)
    good = write_clip(clip.rgb, folder / "good.mkv")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is not a video\n")
    with av.open(str(folder / "sound.mp4"), "w") as container:  # audio only
        stream = container.add_stream("aac", rate=16000)
        silence = np.zeros((1, 1024), np.float32)
        chunk = av.AudioFrame.from_ndarray(silence, format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, 0
        container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    whole = write_clip(clip.rgb, tmp_path / "whole.mkv").read_bytes()
    (folder / "cut.mkv").write_bytes(whole[: len(whole) * 2 // 3])
    out = tmp_path / "out"
    assert _run(artifact, [folder], out, "--outputs", "depth16") == 1
    errors = {Path(e["path"]).name: e for e in map(json.loads, (out / "errors.jsonl").open())}
    assert set(errors) == {"empty.mp4", "notes.mp4", "sound.mp4", "cut.mkv"}
    assert "empty" in errors["empty.mp4"]["reason"]
    assert "audio only" in errors["sound.mp4"]["reason"]
    assert all(e["stage"] == "read" for e in errors.values())
    broken = errors["cut.mkv"]["frame"]
    assert 0 < broken < FRAMES
    report = {Path(v["path"]).name: v for v in json.loads((out / "run.json").read_text())["videos"]}
    assert report["cut.mkv"]["partial"] and report["cut.mkv"]["frames"] == broken
    assert len(_decode(out / "cut.depth16.mkv")[0]) == broken  # the frames before it kept
    assert len(_decode(out / f"{good.stem}.depth16.mkv")[0]) == FRAMES


def test_a_truncated_mp4_keeps_the_frames_the_decoder_held(artifact: Path, tmp_path: Path):
    """An H.264 MP4 with its index first (`+faststart`, as players want) and B-frames, cut
    short: the decoder holds frames back for later packets, and the break must not take
    them with it: every frame whose packet arrived whole comes out."""
    folder = tmp_path / "in"
    folder.mkdir()
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(12))
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        for index, pixels in enumerate(make_clip("pan", 1, 24, HEIGHT, WIDTH).rgb):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = whole.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[: len(data) * 9 // 10])
    with av.open(str(cut)) as container:
        packets = list(container.demux(container.streams.video[0]))
        whole_packets = next(i for i, p in enumerate(packets) if p.is_corrupt or not p.size)
    assert 2 < whole_packets < 24
    cut_pts = packets[whole_packets].pts
    # The first frame lost, in showing order: B-frames decode after frames they show before.
    first_lost = (
        whole_packets if cut_pts is None else sum(p.pts < cut_pts for p in packets[:whole_packets])
    )
    out = tmp_path / "out"
    assert _run(artifact, [folder], out, "--outputs", "depth16") == 1
    (error,) = map(json.loads, (out / "errors.jsonl").open())
    assert error["frame"] == first_lost and "truncated" in error["reason"]
    assert len(_decode(out / "cut.depth16.mkv")[0]) == whole_packets


def test_outputs_are_deterministic_and_a_rerun_redoes_an_unfinished_video(
    artifact: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_clip(make_clip("cut", 3, FRAMES, HEIGHT, WIDTH).rgb, folder / "a.mkv")
    Image.fromarray(make_scene(4, HEIGHT, WIDTH).rgb).save(folder / "b.png")  # mixed in
    first, second = tmp_path / "first", tmp_path / "second"
    outputs = ("--outputs", "depth16,depth-color,cutout,mask")
    # Separate processes, as a rerun after kill -9 is (tests/test_video_faults.py kills one).
    assert _run_process(artifact, [folder], first, *outputs) == 0
    assert _run_process(artifact, [folder], second, *outputs) == 0
    names = sorted(p.name for p in first.iterdir() if p.name[:2] in ("a.", "b."))
    assert len(names) == 8
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # What a kill -9 mid-video leaves: temporary files, and not every output renamed.
    (second / "a.mask.mkv").unlink()
    (second / f"{TEMP_PREFIX}a.cutout.webm.0123456789ab").write_bytes(b"partial")
    assert _run_process(artifact, [folder], second, *outputs) == 0
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert not list(second.rglob(f"{TEMP_PREFIX}*"))
    assert FRAMES // 2 in json.loads((second / "run.json").read_text())["videos"][0]["cuts"]
