"""Your own images: folders and arrays, channels, fitting to the working size, splits, and bad input."""

import numpy as np
import pytest
import torch
from image_folders import make_folder, picture, truncate
from PIL import Image

import aekit
from aekit.data import fit_images, load_array, load_data, split_indices


# --- folders ------------------------------------------------------------------------------------

def test_folder_is_searched_recursively_with_subfolders_as_labels(tmp_path):
    root = make_folder(tmp_path / "pets", 12)
    (root / "cats" / "deeper").mkdir()
    Image.fromarray(picture(99)).save(root / "cats" / "deeper" / "x.JPG")  # any case, any depth
    (root / "notes.txt").write_text("not an image")  # other suffixes are ignored
    (root / ".hidden.png").write_bytes(b"ignored too")
    data = load_data(str(root), workers=0)
    assert data.images.shape == (13, 3, 24, 24) and data.images.dtype == torch.float32
    assert 0 <= float(data.images.min()) and float(data.images.max()) <= 1
    assert data.label_names == ["cats", "cats/deeper", "dogs"]
    by_name = dict(zip(data.names, data.labels))
    assert by_name["cats/img-00.png"] == 0 and by_name["dogs/img-01.png"] == 2 and by_name["cats/deeper/x.JPG"] == 1
    # pixels are the file's: img-03 at its position in the seeded order
    i = data.names.index("dogs/img-03.png")
    np.testing.assert_allclose(data.images[i].permute(1, 2, 0).numpy(), picture(3) / 255, atol=1e-6)


def test_folder_order_is_a_seeded_permutation(tmp_path):
    root = make_folder(tmp_path / "f", 12, subfolders=())
    a, b, c = (load_data(str(root), seed=s, workers=0).names for s in (1000, 1000, 7))
    assert a == b and a != c and sorted(a) == sorted(c)
    assert load_data(str(root), workers=0).labels is None  # no subfolders, no labels


def test_channels_auto_follows_the_files_and_can_be_forced(tmp_path):
    gray = make_folder(tmp_path / "gray", 4, colour=False, subfolders=())
    assert load_data(str(gray), workers=0).channels == 1
    Image.fromarray(picture(5)).save(gray / "colour.png")  # one colour image makes the folder colour
    data = load_data(str(gray), workers=0)
    assert data.channels == 3
    i = data.names.index("img-00.png")
    assert torch.equal(data.images[i, 0], data.images[i, 1])  # gray copied into R, G, B
    forced = load_data(str(gray), channels=1, workers=0)
    i = forced.names.index("colour.png")
    want = picture(5) / 255 @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma
    np.testing.assert_allclose(forced.images[i, 0].numpy(), want, atol=1e-5)


def test_images_of_several_sizes_need_a_working_size(tmp_path):
    root = make_folder(tmp_path / "f", 2, subfolders=())
    Image.fromarray(picture(3, 40, 30)).save(root / "big.png")
    with pytest.raises(aekit.DataError, match=r"images differ in size .*--size HxW"):
        load_data(str(root), workers=0)
    assert load_data(str(root), size=(16, 16), workers=0).images.shape == (3, 3, 16, 16)


def test_fit_resize_crop_pad():
    x = torch.rand(2, 3, 40, 20)
    assert fit_images(x, (16, 16), "resize").shape == (2, 3, 16, 16)
    crop = fit_images(x, (16, 16), "crop")  # 40x20 -> 32x16, centre 16 rows
    assert crop.shape == (2, 3, 16, 16)
    torch.testing.assert_close(crop, aekit.resize(x, (32, 16))[..., 8:24, :])
    pad = fit_images(x, (16, 16), "pad")  # 40x20 -> 16x8, black columns either side
    assert pad.shape == (2, 3, 16, 16)
    assert float(pad[..., :4].abs().max()) == 0 and float(pad[..., 12:].abs().max()) == 0
    torch.testing.assert_close(pad[..., 4:12], aekit.resize(x, (16, 8)))
    with pytest.raises(aekit.DataError, match=r"faces: 40x20 is smaller than the working size 48x48.*--fit crop"):
        fit_images(x, (48, 48), "crop", name="faces")


def test_crop_refuses_a_file_smaller_than_the_working_size(tmp_path):
    root = make_folder(tmp_path / "f", 3, subfolders=())
    with pytest.raises(aekit.DataError, match=r"img-\d\d\.png: 24x24 is smaller than the working size 32x32"):
        load_data(str(root), size=(32, 32), fit="crop", workers=0)


def test_skip_bad_skips_counts_and_names_unreadable_files(tmp_path):
    root = make_folder(tmp_path / "f", 8)
    truncate(root / "cats" / "img-02.png")
    (root / "dogs" / "fake.jpg").write_text("I am not a JPEG")
    (root / "dogs" / "empty.png").write_bytes(b"")
    with pytest.raises(aekit.DataError, match=r"(fake\.jpg|empty\.png|img-02\.png).*--skip-bad"):
        load_data(str(root), workers=0)
    data = load_data(str(root), skip_bad=True, workers=0)
    assert len(data) == 7 and len(data.skipped) == 3
    assert {s.split(":")[0].rsplit("/", 1)[-1] for s in data.skipped} == {"img-02.png", "fake.jpg", "empty.png"}
    assert "img-02.png" not in " ".join(data.names)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p.mkdir(), r"no image files \(.png"),
        (lambda p: (p.mkdir(), (p / "a.txt").write_text("x")), r"no image files .*\(1 other files ignored\)"),
        (lambda p: (p.mkdir(), (p / "a.png").write_text("x")), r"no usable image: all 1 image files are unreadable"),
        (lambda p: None, r"unknown data source: no such folder or file"),
        (lambda p: p.write_text("x"), r"not a folder, \.npy or \.npz file"),
    ],
)
def test_bad_sources_are_one_line_errors(tmp_path, setup, message):
    path = tmp_path / "src"
    setup(path)
    with pytest.raises(aekit.DataError, match=message) as e:
        load_data(str(path), skip_bad=True, workers=0)
    assert "src" in str(e.value) and "\n" not in str(e.value)


def test_subject_split_holds_out_whole_labels(tmp_path):
    root = make_folder(tmp_path / "f", 20, subfolders=("a", "b", "c", "d", "e"))
    data = load_data(str(root), workers=0)
    tr, te = split_indices(data, split="subject")
    assert {data.label_names[i] for i in data.labels[te]} == {"e"}  # the last 20% of the labels
    assert "e" not in {data.label_names[i] for i in data.labels[tr]}
    one = load_data(str(make_folder(tmp_path / "g", 4, subfolders=("only",))), workers=0)
    with pytest.raises(aekit.DataError, match="has only one"):
        split_indices(one, split="subject")
    flat = load_data(str(make_folder(tmp_path / "h", 4, subfolders=())), workers=0)
    with pytest.raises(aekit.DataError, match="own subfolder"):
        split_indices(flat, split="subject")


# --- arrays ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "shape, layout, want",
    [
        ((5, 8, 6), "auto", (5, 1, 8, 6)),
        ((5, 8, 6, 3), "auto", (5, 3, 8, 6)),
        ((5, 3, 8, 6), "auto", (5, 3, 8, 6)),
        ((5, 1, 8, 6), "auto", (5, 1, 8, 6)),
        ((5, 3, 8, 3), "nhwc", (5, 3, 3, 8)),
        ((5, 3, 8, 3), "nchw", (5, 3, 8, 3)),
    ],
)
def test_array_layouts(tmp_path, shape, layout, want):
    a = np.random.RandomState(0).rand(*shape).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    data = load_array(tmp_path / "a.npy", layout=layout, seed=0)
    assert tuple(data.images.shape) == want
    first = int(data.names[0].split("[")[1].rstrip("]"))  # names give the index in the array
    x = a[first] if len(shape) == 3 else (a[first].transpose(2, 0, 1) if want[1:] != shape[1:] else a[first])
    np.testing.assert_allclose(data.images[0].numpy().reshape(x.shape), x)


def test_array_dtypes_and_npz_labels(tmp_path):
    u8 = np.full((3, 4, 4), 51, np.uint8)
    u16 = np.full((3, 4, 4), 13107, np.uint16)
    np.save(tmp_path / "u8.npy", u8)
    np.savez(tmp_path / "u16.npz", images=u16, labels=np.array([7, 3, 7]))
    assert torch.allclose(load_data(str(tmp_path / "u8.npy")).images, torch.tensor(0.2))
    data = load_data(str(tmp_path / "u16.npz"))
    assert torch.allclose(data.images, torch.tensor(0.2)) and data.label_names == ["3", "7"]
    assert sorted(data.labels.tolist()) == [0, 1, 1]
    rgba = np.zeros((2, 6, 6, 4), np.float32)
    rgba[..., 0], rgba[..., 3] = 1.0, 0.5  # RGBA: composited on black
    np.save(tmp_path / "rgba.npy", rgba)
    assert torch.allclose(load_data(str(tmp_path / "rgba.npy")).images[:, 0], torch.tensor(0.5))
    wide = np.linspace(-3, 5, 2 * 16, dtype=np.float64).reshape(2, 4, 4)
    np.save(tmp_path / "wide.npy", wide)
    x = load_data(str(tmp_path / "wide.npy"), rescale=True).images
    assert float(x.min()) == 0 and float(x.max()) == 1 and x.dtype == torch.float32


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((8, 8), np.float32), r"shape \(8, 8\): expected \(N, H, W\).*add a first axis"),
        (np.zeros((2, 3, 8, 8, 1), np.float32), r"shape \(2, 3, 8, 8, 1\): expected"),
        (np.zeros((5, 3, 8, 3), np.float32), r"ambiguous .*--layout nhwc or --layout nchw"),
        (np.zeros((5, 8, 8, 5), np.float32), "no channel axis of 1, 3 or 4"),
        (np.zeros((0, 8, 8), np.float32), "holds zero images"),
        (np.where(np.arange(4 * 36).reshape(4, 6, 6) == 100, np.nan, 0.5), r"NaN or Inf at index \(2, 4, 4\) \(image 2\)"),
        (np.full((2, 4, 4), np.inf), r"NaN or Inf at index \(0, 0, 0\)"),
        (np.linspace(0, 255, 32).reshape(2, 4, 4), r"float values lie in \[0, 255\], outside \[0, 1\].*--rescale"),
        (np.zeros((2, 4, 4), np.int64), "dtype int64: use uint8"),
        (np.array([["a"]], dtype=object), "not a readable .npy array"),
    ],
)
def test_bad_arrays_are_one_line_errors_naming_the_file(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(aekit.DataError, match=message) as e:
        load_data(str(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_npz_with_several_unnamed_arrays_is_an_error(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 4, 4)), b=np.zeros((2, 4, 4)))
    with pytest.raises(aekit.DataError, match="holds 2 arrays .*name the images 'images'"):
        load_data(str(tmp_path / "two.npz"))
    np.save(tmp_path / "l.npy", np.zeros((2, 4, 4)))
    with pytest.raises(aekit.ConfigError, match="only folders stream"):
        load_data(str(tmp_path / "l.npy"), stream="on")
