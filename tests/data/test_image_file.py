"""aekit.data.image_file: one file in (every format and mode), one file out (keeping format, size, mode, depth)."""

import numpy as np
import pytest
from PIL import Image

import aekit
from aekit.data.image_file import ImageInfo, probe_image, read_image, write_image
from helpers import opened


def gradient(h=20, w=24, c=3):
    """A smooth 8-bit picture, different in each channel."""
    yy, xx = np.mgrid[0:h, 0:w]
    chans = [(xx * 255 // (w - 1)), (yy * 255 // (h - 1)), ((xx + yy) * 255 // (h + w - 2))][:c]
    return np.stack(chans, -1).astype(np.uint8).squeeze()


@pytest.mark.parametrize(
    "fmt, suffix, mode",
    [("PNG", "png", "RGB"), ("JPEG", "jpg", "RGB"), ("BMP", "bmp", "RGB"), ("GIF", "gif", "P"),
     ("TIFF", "tif", "RGB"), ("PPM", "pgm", "L"), ("PPM", "ppm", "RGB"), ("WEBP", "webp", "RGB")],
)
def test_every_format_reads_as_floats_in_unit_range(tmp_path, fmt, suffix, mode):
    path = tmp_path / f"x.{suffix}"
    Image.fromarray(gradient(c=1 if mode == "L" else 3)).save(path, format=fmt)
    x, info = read_image(path)
    assert x.dtype == np.float32 and x.shape[:2] == (20, 24) and 0 <= x.min() and x.max() <= 1
    assert info.format == fmt and info.size == (20, 24) and info.bits == 8
    assert x.shape[2] == info.channels == (1 if mode == "L" else 3)
    if fmt in ("PNG", "BMP", "TIFF", "PPM"):  # lossless: exact
        want = gradient(c=x.shape[2]).reshape(x.shape) / 255
        np.testing.assert_allclose(x, want, atol=1e-6)


def test_sixteen_bit_grayscale_keeps_its_precision(tmp_path):
    a = (np.arange(20 * 24).reshape(20, 24) * 131).astype(np.uint16)
    for suffix in ("png", "tif", "pgm"):
        Image.fromarray(a).save(tmp_path / f"g.{suffix}")
        x, info = read_image(tmp_path / f"g.{suffix}")
        assert info.bits == 16 and info.channels == 1
        np.testing.assert_allclose(x[..., 0], a / 65535, atol=1e-7)


def test_alpha_is_composited_on_black(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200  # red 200 ...
    rgba[..., 3] = 51  # ... at 20% opacity -> 200 * 0.2 = 40
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    x, info = read_image(tmp_path / "a.png")
    assert info.mode == "RGBA" and info.channels == 3
    np.testing.assert_allclose(x[..., 0], 200 / 255 * 51 / 255, atol=1e-6)
    np.testing.assert_allclose(x[..., 1:], 0)
    la = Image.fromarray(np.full((4, 4), 255, np.uint8)).convert("LA")
    la.putalpha(Image.fromarray(np.full((4, 4), 102, np.uint8)))
    la.save(tmp_path / "la.png")
    x, info = read_image(tmp_path / "la.png")
    assert info.channels == 1 and np.allclose(x, 102 / 255)


def test_palette_images_colour_or_gray_by_their_palette(tmp_path):
    Image.fromarray(gradient()).quantize(16).save(tmp_path / "colour.png")
    Image.fromarray(gradient(c=1)).convert("P").save(tmp_path / "gray.png")
    assert read_image(tmp_path / "colour.png")[0].shape[2] == 3
    x, info = read_image(tmp_path / "gray.png")
    assert info.mode == "P" and x.shape[2] == 1
    np.testing.assert_allclose(x[..., 0], gradient(c=1) / 255, atol=1e-6)


def test_bilevel_and_cmyk(tmp_path):
    Image.fromarray(gradient(c=1)).convert("1").save(tmp_path / "b.png")
    x, info = read_image(tmp_path / "b.png")
    assert info.bits == 1 and set(np.unique(x)) <= {0.0, 1.0}
    Image.fromarray(gradient()).convert("CMYK").save(tmp_path / "c.jpg")
    x, info = read_image(tmp_path / "c.jpg")
    assert info.mode == "CMYK" and x.shape == (20, 24, 3)


def test_exif_orientation_is_applied(tmp_path):
    a = gradient()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: a viewer rotates it 90 degrees clockwise
    Image.fromarray(a).save(tmp_path / "o.png", exif=exif)
    assert probe_image(tmp_path / "o.png").size == (24, 20)
    x, info = read_image(tmp_path / "o.png")
    assert info.size == (24, 20) and x.shape == (24, 20, 3)
    np.testing.assert_allclose(x, np.rot90(a, k=-1) / 255, atol=1e-6)


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    x, _ = read_image(tmp_path / "anim.gif")
    assert x[0, 0].tolist() == [1.0, 0.0, 0.0]


def test_an_image_above_pillows_bomb_limits_is_one_note_or_a_one_line_error(tmp_path, monkeypatch, capsys, recwarn):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow warns above 100 pixels, refuses above 200
    monkeypatch.setattr("aekit.data.image_file._NOTED", set(), raising=False)
    large, huge = tmp_path / "large.png", tmp_path / "huge.png"
    Image.fromarray(gradient(12, 12)).save(large)  # 144 pixels: read, with one line said (once)
    Image.fromarray(gradient(16, 16)).save(huge)  # 256 pixels
    assert probe_image(large).size == (12, 12) and read_image(large)[0].shape == (12, 12, 3)
    assert capsys.readouterr().err == (f"aekit: note: {large}: 12x12 pixels, more than the 100 above which Pillow "
                                       "warns of a decompression bomb; reading it anyway takes gigabytes of memory\n")
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]  # not Python's two lines
    with pytest.raises(aekit.DataError) as e:
        read_image(huge)
    assert str(e.value) == (f"{huge}: too large to read: 256 pixels, more than the 200 Pillow opens (its guard "
                            "against decompression bombs)")


@pytest.mark.parametrize(
    "content, message",
    [(b"", "not an image"), (b"hello, I am text", "not an image"), ("truncated", "cannot decode")],
)
def test_bad_files_are_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content == "truncated":
        Image.fromarray(gradient(64, 64)).save(path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    with pytest.raises(aekit.DataError, match=message) as e:
        read_image(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(aekit.DataError, match="no such file"):
        read_image(tmp_path / "missing.png")


@pytest.mark.parametrize(
    "make, suffix",
    [
        (lambda: Image.fromarray(gradient(c=1)), "png"),  # L, 8-bit
        (lambda: Image.fromarray(gradient(c=1).astype(np.uint16) * 257), "png"),  # I;16
        (lambda: Image.fromarray(gradient(c=1).astype(np.uint16) * 257), "tif"),
        (lambda: Image.fromarray(gradient(c=1)), "pgm"),
        (lambda: Image.fromarray(gradient()), "jpg"),
        (lambda: Image.fromarray(gradient()), "bmp"),
        (lambda: Image.fromarray(gradient()).quantize(64), "gif"),  # palette
        (lambda: Image.fromarray(gradient()).convert("RGBA"), "png"),
        (lambda: Image.fromarray(gradient(c=1)).convert("1"), "png"),
        (lambda: Image.fromarray(gradient()), "webp"),
    ],
)
def test_write_keeps_format_size_mode_and_depth(tmp_path, make, suffix):
    src = tmp_path / f"in.{suffix}"
    make().save(src)
    x, info = read_image(src)
    small = x[::2, ::2]  # the model works at another size: written back at the original's
    out = tmp_path / f"out.{suffix}"
    write_image(out, small, like=info)
    y, again = read_image(out)
    assert again == info
    with Image.open(src) as a, Image.open(out) as b:
        assert (b.format, b.mode, b.size) == (a.format, a.mode, a.size)
    write_image(out, x, like=info)  # same size: the pixels survive (up to the format's own loss)
    y, _ = read_image(out)
    tolerance = {"jpg": 0.05, "webp": 0.05, "gif": 0.05}.get(suffix, 1e-6)
    assert np.abs(y - x).mean() <= tolerance
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_write_sixteen_bit_keeps_sixteen_bits(tmp_path):
    a = (np.arange(20 * 24).reshape(20, 24) * 131).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "g.png")
    x, info = read_image(tmp_path / "g.png")
    write_image(tmp_path / "o.png", x, like=info)
    assert np.array_equal(np.asarray(opened(tmp_path / "o.png")), a)


def test_write_converts_channels_to_the_original_and_without_like_uses_the_suffix(tmp_path):
    gray = ImageInfo(format="PNG", mode="L", bits=8, size=(20, 24), channels=1)
    write_image(tmp_path / "g.png", gradient() / 255, like=gray)
    assert opened(tmp_path / "g.png").mode == "L"
    write_image(tmp_path / "c.jpg", gradient() / 255)
    with Image.open(tmp_path / "c.jpg") as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (24, 20))
    with pytest.raises(aekit.DataError, match="unknown image format"):
        write_image(tmp_path / "x.what", gradient() / 255)
