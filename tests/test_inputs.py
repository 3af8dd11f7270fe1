"""Reading images (every Pillow mode, EXIF, bad files) and turning INPUTS into items."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from xdepth.job.imageio import ImageReadError, image_from_array, read_image, to_rgb
from xdepth.job.inputs import InputError, InputItem, RejectedInput, collect_inputs, open_inputs


def _save(image: Image.Image, path: Path, **options: object) -> Path:
    image.save(path, **options)
    return path


def _read_one(path: Path) -> tuple[int, int, int]:
    rgb = read_image(path).rgb
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
    return tuple(int(v) for v in rgb[0, 0])


# -- modes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "pixel", "fmt", "expected"),
    [
        ("L", 100, "PNG", (100, 100, 100)),
        ("1", 1, "PNG", (255, 255, 255)),
        ("LA", (200, 128), "PNG", (100, 100, 100)),  # round(200 * 128 / 255) on black
        ("RGBA", (200, 100, 50, 128), "PNG", (100, 50, 25)),
        ("RGBA", (200, 100, 50, 0), "PNG", (0, 0, 0)),
        ("RGBA", (200, 100, 50, 255), "PNG", (200, 100, 50)),
        ("CMYK", (100, 50, 0, 60), "TIFF", (119, 157, 195)),  # (255-C)(255-K)/255
        ("I;16", 65535, "PNG", (255, 255, 255)),
        ("I;16", 32896, "PNG", (128, 128, 128)),  # 128 * 257
        ("I", 200, "TIFF", (200, 200, 200)),  # 8-bit values kept
        ("I", 51400, "TIFF", (200, 200, 200)),  # 16-bit values / 257
        ("F", 0.5, "TIFF", (128, 128, 128)),  # 0..1 floats times 255
        ("F", 200.0, "TIFF", (200, 200, 200)),  # 0..255 floats kept
        ("YCbCr", (128, 128, 128), "TIFF", (128, 128, 128)),
        ("LAB", (255, 128, 128), "TIFF", (254, 255, 254)),  # white, through Pillow's LAB
    ],
)
def test_every_mode_reads_as_rgb(
    tmp_path: Path, mode: str, pixel: object, fmt: str, expected: tuple[int, int, int]
) -> None:
    path = _save(Image.new(mode, (3, 2), pixel), tmp_path / f"x.{fmt.lower()}", format=fmt)
    with Image.open(path) as reopened:
        assert reopened.mode == mode  # the file really holds this mode
    assert _read_one(path) == expected


def test_palette_transparency_goes_black(tmp_path: Path) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0])
    image.putpixel((1, 0), 1)
    path = _save(image, tmp_path / "p.png", transparency=1)
    with Image.open(path) as reopened:
        assert reopened.mode == "P" and "transparency" in reopened.info
    rgb = read_image(path).rgb
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[0, 1].tolist() == [0, 0, 0]
    opaque = _save(Image.new("P", (1, 1), 1), tmp_path / "q.png")
    assert read_image(opaque).rgb.shape == (1, 1, 3)


def test_modes_pillow_cannot_save_convert_too() -> None:
    # Premultiplied alpha already is "on black"; HSV goes through Pillow.
    assert to_rgb(Image.new("RGBa", (1, 1), (100, 50, 20, 128))).getpixel((0, 0)) == (100, 50, 20)
    assert to_rgb(Image.new("La", (1, 1), (90, 128))).getpixel((0, 0)) == (90, 90, 90)
    assert to_rgb(Image.new("HSV", (1, 1), (0, 255, 255))).getpixel((0, 0)) == (255, 0, 0)
    palette_alpha = Image.new("PA", (1, 1), (0, 0))
    palette_alpha.putpalette([200, 100, 50])
    assert to_rgb(palette_alpha).getpixel((0, 0)) == (0, 0, 0)


def test_arrays_are_accepted_in_every_layout() -> None:
    grey = np.full((2, 3), 7, np.uint8)
    assert image_from_array(grey)[0, 0].tolist() == [7, 7, 7]
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 200, 255
    assert image_from_array(rgba)[0, 0].tolist() == [200, 200, 200]
    assert image_from_array(np.full((1, 1), 65535, np.uint16))[0, 0].tolist() == [255] * 3
    assert image_from_array(np.full((1, 1), 0.5, np.float32))[0, 0].tolist() == [128] * 3
    with pytest.raises(ValueError, match="shape"):
        image_from_array(np.zeros((2, 3, 5), np.uint8))


# -- EXIF --------------------------------------------------------------------------------


def _exif(orientation: int, focal_35mm: int | None) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if focal_35mm is not None:
        exif.get_ifd(0x8769)[0xA405] = focal_35mm
    return exif.tobytes()


def test_exif_orientation_and_focal_length(tmp_path: Path) -> None:
    stored = np.arange(20 * 40 * 3, dtype=np.uint32).reshape(20, 40, 3).astype(np.uint8)
    path = _save(Image.fromarray(stored), tmp_path / "rot.png", exif=_exif(6, 28))
    decoded = read_image(path)
    # Orientation 6: the stored picture is turned 90 degrees clockwise for display.
    np.testing.assert_array_equal(decoded.rgb, np.rot90(stored, k=-1))
    assert decoded.f_35mm == 28.0
    plain = read_image(_save(Image.fromarray(stored), tmp_path / "plain.png", exif=_exif(1, 0)))
    np.testing.assert_array_equal(plain.rgb, stored)
    assert plain.f_35mm is None  # 0 means unknown in EXIF


# -- bad files ---------------------------------------------------------------------------


def _good_png(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    return _save(Image.new("RGB", size, (1, 2, 3)), path)


def _corrupt_png(path: Path) -> Path:
    """A PNG whose compressed pixel data is garbage (the chunk CRC is made to match)."""
    data = bytearray(_good_png(path, (64, 64)).read_bytes())
    start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[start - 8 : start - 4], "big")
    data[start : start + length] = bytes((b * 7 + 13) % 256 for b in range(length))
    crc = zlib.crc32(bytes(data[start - 4 : start + length]))
    data[start + length : start + length + 4] = crc.to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Every kind of bad input, made here, with a phrase its error must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = folder / "whole.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(jpeg)
    whole = jpeg.read_bytes()
    jpeg.unlink()
    (folder / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("this is not a picture")
    cv2.imwrite(str(folder / "float-rgb.tif"), np.ones((4, 4, 3), np.float32))
    bomb = Image.new("L", (3000, 2000))
    bomb.save(folder / "bomb.png")  # 6 MP of zeros: a few kB
    (folder / "folder.jpg").mkdir()
    os.mkfifo(folder / "fifo.jpg")
    return {
        "truncated": (folder / "cut.jpg", "truncated"),
        "corrupt": (_corrupt_png(folder / "corrupt.png"), "cannot decode"),
        "zero bytes": (folder / "zero.jpg", "empty file (0 bytes)"),
        "not an image": (folder / "notes.png", "not an image"),
        "unsupported mode": (folder / "float-rgb.tif", "TIFF file Pillow cannot decode"),
        "bomb": (folder / "bomb.png", "exceeds the limit of 1000000"),
        "a folder": (folder / "folder.jpg", "a folder"),
        "a FIFO": (folder / "fifo.jpg", "not a regular file"),
        "missing": (folder / "missing.jpg", "no such file"),
    }


def test_each_bad_file_is_refused_with_its_reason(tmp_path: Path) -> None:
    for kind, (path, phrase) in bad_files(tmp_path).items():
        with pytest.raises(ImageReadError) as caught:
            read_image(path, max_pixels=1_000_000)
        message = str(caught.value)
        assert str(path) in message and phrase in message, (kind, message)


def test_permission_denied_for_real(tmp_path: Path) -> None:
    """As root a chmod does not deny reading, so the read runs in a child dropped to nobody."""
    if os.geteuid() != 0:
        path = _good_png(tmp_path / "secret.png")
        path.chmod(0)
        with pytest.raises(ImageReadError, match="permission denied"):
            read_image(path)
        return
    folder = Path(tempfile.mkdtemp(prefix="xdepth-perm-"))  # the system temp folder: o+x
    try:
        if any(p.stat().st_mode & 0o001 == 0 for p in folder.parents):
            pytest.skip(f"{folder.parent} cannot be traversed by other users")
        folder.chmod(0o711)
        path = _good_png(folder / "secret.png")
        path.chmod(0)
        message = _read_as_nobody(path)
    finally:
        shutil.rmtree(folder)
    assert message == f"{path}: permission denied"


def _read_as_nobody(path: Path) -> str:
    """read_image in a forked child running as user nobody; its error message."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, read, report, leave at once
        os.close(reader)
        try:
            os.setgid(65534)
            os.setuid(65534)
            read_image(path)
            message = "read succeeded"
        except ImageReadError as exc:
            message = str(exc)
        except BaseException as exc:
            message = f"unexpected {type(exc).__name__}: {exc}"
        os.write(writer, message.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    return message


# -- INPUTS ------------------------------------------------------------------------------


def _tree(root: Path, *names: str) -> None:
    for name in names:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x")


def test_folders_globs_and_lists(tmp_path: Path) -> None:
    _tree(tmp_path / "in", "b.jpg", "a.PNG", "sub/c.webp", "notes.txt", "sub/d.gif")
    (tmp_path / "in" / "link").symlink_to(tmp_path / "in" / "sub")  # not followed
    items = collect_inputs([str(tmp_path / "in")])
    assert [i.rel.as_posix() for i in items] == ["a.PNG", "b.jpg", "sub/c.webp", "sub/d.gif"]
    globbed = collect_inputs([str(tmp_path / "in" / "**" / "*.gif")])
    assert [i.rel.as_posix() for i in globbed] == ["sub/d.gif"]
    listing = tmp_path / "in" / "sub" / "list.lst"
    listing.write_text("# shots\nc.webp\n\n  ../b.jpg  \n")
    listed = collect_inputs([f"@{listing}"])
    # Entries are relative to the list's folder; outputs to their common folder (in/).
    assert [(i.path, i.rel.as_posix()) for i in listed] == [
        (tmp_path / "in" / "sub" / "c.webp", "sub/c.webp"),
        (tmp_path / "in" / "b.jpg", "b.jpg"),
    ]
    assert collect_inputs([str(listing)]) == listed  # .lst is a list too
    anchored = collect_inputs([f"@{listing}"], relative_to=tmp_path)
    assert [i.rel.as_posix() for i in anchored] == ["in/sub/c.webp", "in/b.jpg"]
    with pytest.raises(InputError, match="no such file, folder or matching pattern"):
        collect_inputs([str(tmp_path / "nothing")])


def test_collisions_and_unsafe_names_are_usage_errors(tmp_path: Path) -> None:
    _tree(tmp_path, "one/x.jpg", "two/x.jpg", "three/y.jpg", "three/y.png", "t/.xdepth-tmp-z.jpg")
    with pytest.raises(InputError, match=r"two/x\.jpg and .*one/x\.jpg would both write"):
        collect_inputs([str(tmp_path / "one"), str(tmp_path / "two")])
    with pytest.raises(InputError, match="would both write outputs named y"):
        collect_inputs([str(tmp_path / "three")])
    with pytest.raises(InputError, match="reserved for temporary files"):
        collect_inputs([str(tmp_path / "t")])
    with pytest.raises(InputError, match=r"contains '\.\.'"):
        collect_inputs([str(tmp_path) + "/*/../one/x.jpg"])
    # The same file given twice is one input, not a collision.
    twice = collect_inputs([str(tmp_path / "one"), str(tmp_path / "one" / "x.jpg")])
    assert len(twice) == 1


def test_stdin_paths_stream_with_per_image_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path / "work", "a.jpg", "d/a.jpg", "d/b.jpg", "d/b.png")
    monkeypatch.chdir(tmp_path / "work")
    stdin = io.StringIO(
        f"a.jpg\n{tmp_path}/work/d/a.jpg\n# note\n../x.jpg\nd/b.jpg\nd/b.png\na.jpg\n"
    )
    source = open_inputs(["-"], stdin=stdin)
    assert source.total is None
    got = list(source)
    assert got[:3] == [
        InputItem(tmp_path / "work" / "a.jpg", Path("a.jpg")),
        InputItem(tmp_path / "work" / "d" / "a.jpg", Path("d/a.jpg")),
        got[2],
    ]
    assert isinstance(got[2], RejectedInput) and "lies outside" in got[2].reason
    assert got[3] == InputItem(tmp_path / "work" / "d" / "b.jpg", Path("d/b.jpg"))
    assert (
        isinstance(got[4], RejectedInput) and "would both write outputs named d/b" in got[4].reason
    )
    assert len(got) == 5  # the repeated a.jpg is dropped
    with pytest.raises(InputError, match="only once"):
        open_inputs(["-", "-"])


def test_files_inside_out_are_never_inputs(tmp_path: Path) -> None:
    _tree(tmp_path / "photos", "a.jpg", "out/a.cutout.png", "out/sub/b.png")
    source = open_inputs([str(tmp_path / "photos")]).excluding(tmp_path / "photos" / "out")
    assert [item.rel.as_posix() for item in source] == ["a.jpg"] and source.total == 1
    stdin = io.StringIO("out/sub/b.png\na.jpg\n")
    streamed = open_inputs(["-"], tmp_path / "photos", stdin).excluding(tmp_path / "photos/out")
    assert [item.rel.as_posix() for item in streamed] == ["a.jpg"]
