"""Arrays of images: layouts, dtypes, labels, and one-line errors naming the file."""

import io
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

import aekit
from aekit.data import load_array, load_data
from helpers import huge_header


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


def test_an_array_written_as_a_folder_lists_its_files_in_the_arrays_order(tmp_path):
    """Names carry the zero-padded row (``a.npy[07]``), so the files sort as the rows: 2 before 10."""
    a = np.random.RandomState(0).rand(12, 4, 4).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    data = load_array(tmp_path / "a.npy", seed=0)
    assert sorted(data.names) == [f"a.npy[{i:02d}]" for i in range(12)]
    aekit.data.save_folder(data, tmp_path / "out")
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files[:3]] == ["a.npy-00.png", "a.npy-01.png", "a.npy-02.png"]
    for row, f in enumerate(files):
        assert np.abs(aekit.data.read_image(f)[0][..., 0] - a[row]).max() < 1e-4


def test_numpy_arrays_load_and_resize_as_their_files_do(tmp_path):
    a = (np.random.RandomState(0).rand(5, 8, 6, 3) * 255).astype(np.uint8)
    np.save(tmp_path / "a.npy", a)
    data, from_file = load_data(a, seed=3), load_data(str(tmp_path / "a.npy"), seed=3)
    assert torch.equal(data.images, from_file.images) and data.names[0].startswith("array[")
    with pytest.raises(aekit.DataError, match=r"^array: shape \(8, 6\): expected \(N, H, W\)"):
        load_data(a[0, ..., 0])
    x = data.images.numpy()
    small = aekit.resize(x, (4, 3))
    assert isinstance(small, np.ndarray) and small.dtype == np.float32 and small.shape == (5, 3, 4, 3)
    np.testing.assert_array_equal(small, aekit.resize(data.images, (4, 3)).numpy())
    with pytest.raises(aekit.DataError, match=r"resize takes \(N, C, H, W\) images, got shape \(3, 8, 6\)"):
        aekit.resize(x[0], (4, 3))


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
        (np.zeros((5, 3, 8, 3), np.float32), r"ambiguous .*data.layout nhwc or nchw"),
        (np.zeros((5, 8, 8, 5), np.float32), "no channel axis of 1, 3 or 4"),
        (np.zeros((0, 8, 8), np.float32), "holds zero images"),
        (np.where(np.arange(4 * 36).reshape(4, 6, 6) == 100, np.nan, 0.5), r"NaN or Inf at index \(2, 4, 4\) \(image 2\)"),
        (np.full((2, 4, 4), np.inf), r"NaN or Inf at index \(0, 0, 0\)"),
        (np.linspace(0, 255, 32).reshape(2, 4, 4), r"float values lie in \[0, 255\], outside \[0, 1\].*data.rescale"),
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


def test_an_array_header_declaring_more_than_the_file_holds_is_refused_before_any_allocation(tmp_path):
    """A damaged header (a huge shape) was a MemoryError for 36 TiB; a truncated file read in part first."""
    with pytest.raises(aekit.DataError, match=r"huge.npy: not a readable .npy array \(damaged or truncated: its header "
                       r"declares a float32 array of shape \(10000000, 1000, 1000\), 40000000000128 bytes, but the file "
                       r"holds 1128: write it again\)$"):
        load_data(str(huge_header(tmp_path / "huge.npy")))
    np.save(tmp_path / "cut.npy", np.zeros((20, 32, 32), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:5000])
    with pytest.raises(aekit.DataError, match=r"cut.npy: .*shape \(20, 32, 32\), 82048 bytes, but the file holds 5000"):
        load_data(str(tmp_path / "cut.npy"))
    np.savez(tmp_path / "huge.npz", images=np.zeros((2, 4, 4), np.float32))  # the member's header, damaged alike
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("images.npy", huge_header(tmp_path / "member.npy").read_bytes())
    with pytest.raises(aekit.DataError, match=r"huge.npz: not a readable .npz array \(damaged or truncated"):
        load_data(str(tmp_path / "huge.npz"))


def test_an_npz_archive_named_npy_is_a_one_line_error(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 4, 4), np.float32))
    (tmp_path / "a.npz").rename(tmp_path / "a.npy")
    with pytest.raises(aekit.DataError, match=r"a.npy: not a readable .npy array \(a .npz archive of arrays, not one"):
        load_data(str(tmp_path / "a.npy"))


def zip_bomb(path, shape=(16, 1000, 1000)):
    """A .npz whose images.npy, zeros, deflates to a few KB per MB."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z, z.open("images.npy", "w") as f:
        f.write(header.getvalue())
        for _ in range(shape[0]):
            f.write(bytes(int(np.prod(shape[1:]))))
    return path


def test_an_npz_member_that_expands_beyond_memory_is_refused_from_its_header_before_it_is_read(tmp_path, monkeypatch):
    """A 972 KB .npz of 1000 x 1000 x 1000 zeros was a raw MemoryError (after 1.3 GB), or filled memory without a cap."""
    from aekit import memory

    bomb = zip_bomb(tmp_path / "bomb.npz")
    assert bomb.stat().st_size < 200_000
    monkeypatch.setattr(memory, "available", lambda: 40 * 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(aekit.DataError) as e:
            load_data(str(bomb))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(e.value) == (f"{bomb}: member images.npy holds a uint8 array of shape (16, 1000, 1000): it and its float32 "
                            "images take 76.3 MiB, more than the 40.0 MiB of memory available; give fewer images (or "
                            "smaller ones) in a file")
    assert peak < 4 * 2**20  # the header alone was read
    np.save(tmp_path / "big.npy", np.zeros((10, 1000, 1000), np.uint8))  # a .npy too, by the same rule
    with pytest.raises(aekit.DataError, match=r"big.npy: holds a uint8 array of shape \(10, 1000, 1000\): it and its"):
        load_data(str(tmp_path / "big.npy"))
    np.savez_compressed(tmp_path / "faces.npz", images=np.zeros((20, 64, 64), np.uint8))  # compresses 1000-fold: fine
    assert load_data(str(tmp_path / "faces.npz")).images.shape == (20, 1, 64, 64)


def test_memory_running_out_while_the_images_are_made_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """MemoryError: Unable to allocate 3.73 GiB ... came through raw."""
    import aekit.data.arrays

    np.save(tmp_path / "a.npy", np.zeros((2, 4, 4), np.uint8))

    def out_of_memory(*args):
        raise MemoryError("Unable to allocate 3.73 GiB for an array with shape (1000, 1000, 1000)")

    monkeypatch.setattr(aekit.data.arrays, "_unit_range", out_of_memory)
    with pytest.raises(aekit.DataError) as e:
        load_data(str(tmp_path / "a.npy"))
    assert str(e.value) == (f"{tmp_path / 'a.npy'}: its array of shape (2, 4, 4) (uint8) does not fit in memory as "
                            "float32 images (128 bytes): give fewer images (or smaller ones) in a file")
