"""Folders of images: found recursively, checked up front, labels from subfolders, streamed from disk."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.data import epoch_batches, folders, load_data, save_folder, workers
from aekit.data.folders import ImageFiles, find_images
from aekit.training import evaluate, fit
from helpers import make_folder, picture, truncate


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


def test_subfolders_that_are_links_are_followed(tmp_path):
    people = make_folder(tmp_path / "pets", 12)  # cats/ and dogs/, 6 images each
    train = tmp_path / "train"
    train.mkdir()
    (train / "cats").symlink_to(people / "cats", target_is_directory=True)  # a set made of links
    (train / "cats" / "loop").symlink_to(train, target_is_directory=True)  # a link back up: no endless walk
    (train / "dogs").symlink_to(people / "dogs", target_is_directory=True)
    data = load_data(str(train), workers=0)
    assert len(data) == 12 and data.label_names == ["cats", "dogs"]


def test_an_image_reached_twice_through_links_is_one_image(tmp_path):
    people = make_folder(tmp_path / "pets", 12)
    (people / "felines").symlink_to(people / "cats", target_is_directory=True)  # the same folder again
    (people / "dogs" / "also-00.png").symlink_to(people / "cats" / "img-00.png")  # a file under a second name
    data = load_data(str(people), workers=0)
    assert len(data) == 12 and data.label_names == ["cats", "dogs"]  # never on both sides of a split
    assert "cats/img-00.png" in data.names and "dogs/also-00.png" not in data.names


def test_a_folder_of_hidden_images_says_so(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    Image.fromarray(picture(1)).save(root / ".a.png")
    with pytest.raises(aekit.DataError, match=r"no image files .*\(ignored: 1 hidden images \(names starting with '\.'\)\)"):
        load_data(str(root), workers=0)


def test_a_pipe_named_like_an_image_is_passed_over_not_read(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    Image.fromarray(picture(1)).save(root / "a.png")
    os.mkfifo(root / "b.png")  # opening it would wait for a writer forever
    assert load_data(str(root), workers=0).names == ["a.png"]
    assert find_images([root]) == [(root / "a.png", Path("a.png"))]


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
    with pytest.raises(aekit.DataError, match=r"images differ in size .*data.size HxW; with data.fit tiles a denoiser"):
        load_data(str(root), workers=0)
    assert load_data(str(root), size=(16, 16), workers=0).images.shape == (3, 3, 16, 16)
    windows = load_data(str(root), size=(16, 16), fit="window", workers=0)  # native pixels, the centre of each
    i = windows.names.index("big.png")
    np.testing.assert_allclose(windows.images[i].permute(1, 2, 0).numpy() * 255, picture(3, 40, 30)[12:28, 7:23],
                               atol=1e-3)
    streamed = load_data(str(root), size=(16, 16), fit="window", stream="on", workers=0)
    torch.testing.assert_close(streamed.images[i], windows.images[i])


def test_crop_refuses_a_file_smaller_than_the_working_size(tmp_path):
    root = make_folder(tmp_path / "f", 3, subfolders=())
    with pytest.raises(aekit.DataError, match=r"img-\d\d\.png: 24x24 is smaller than the working size 32x32"):
        load_data(str(root), size=(32, 32), fit="crop", workers=0)


def test_skip_bad_skips_counts_and_names_unreadable_files(tmp_path):
    root = make_folder(tmp_path / "f", 8)
    truncate(root / "cats" / "img-02.png")
    (root / "dogs" / "fake.jpg").write_text("I am not a JPEG")
    (root / "dogs" / "empty.png").write_bytes(b"")
    with pytest.raises(aekit.DataError, match=r"(fake\.jpg|empty\.png|img-02\.png).*data.skip_bad"):
        load_data(str(root), workers=0)
    data = load_data(str(root), skip_bad=True, workers=0)
    assert len(data) == 7 and len(data.skipped) == 3
    assert {s.split(":")[0].rsplit("/", 1)[-1] for s in data.skipped} == {"img-02.png", "fake.jpg", "empty.png"}
    assert "img-02.png" not in " ".join(data.names)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p.mkdir(), r"no image files \(.png"),
        (lambda p: (p.mkdir(), (p / "a.txt").write_text("x")), r"no image files .*\(ignored: 1 other files\)"),
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



# --- streaming ---------------------------------------------------------------------------------

def tiny_model():
    return aekit.create_model("conv", in_channels=3, input_size=(16, 16), code_length=64,
                              encoder_channels=(4,), encoder_strides=(2,), decoder_channels=(4,), decoder_strides=(2,))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data") / "pets", 20, size=(20, 28))


def test_streaming_holds_files_and_decodes_the_same_images(folder):
    memory = load_data(str(folder), size=(16, 16), workers=0)
    stream = load_data(str(folder), size=(16, 16), stream="on", workers=2)
    assert isinstance(stream.images, ImageFiles) and stream.images.shape == (20, 3, 16, 16)
    assert stream.names == memory.names and (stream.labels == memory.labels).all()
    assert torch.equal(torch.stack([stream.images[i] for i in range(20)]), memory.images)


def test_auto_streams_above_the_memory_budget(folder, monkeypatch):
    assert isinstance(load_data(str(folder), size=(16, 16), workers=0).images, torch.Tensor)
    monkeypatch.setattr(folders, "STREAM_ABOVE_BYTES", 20 * 3 * 16 * 16 * 4 - 1)
    assert isinstance(load_data(str(folder), size=(16, 16), workers=0).images, ImageFiles)


def test_batches_follow_the_given_order_through_worker_processes(folder):
    files = load_data(str(folder), size=(16, 16), stream="on", workers=2).images
    order = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    batches = list(epoch_batches(files, [order[s : s + 6] for s in range(0, 20, 6)]))
    assert [len(b) for b in batches] == [6, 6, 6, 2]
    want = torch.stack([files[int(i)] for i in order])
    assert torch.equal(torch.cat(batches), want)


def test_fit_and_evaluate_stream_exactly_like_memory(folder, monkeypatch):
    """The streamed training images, and the validation images carved from them, start their worker processes once,
    not once a pass: under spawn each start imports torch and aekit again. (The held-out images, scored every
    eval_every epochs, start theirs each time rather than keep them waiting.)"""
    started = []
    monkeypatch.setattr(workers, "_loader", lambda *a, _loader=workers._loader, **k: started.append(k) or _loader(*a, **k))
    memory = load_data(str(folder), size=(16, 16), workers=0)
    stream = load_data(str(folder), size=(16, 16), stream="on", workers=2)
    cfg = aekit.TrainConfig(epochs=2, batch_size=6, eval_every=1)

    def run(train, test):
        torch.manual_seed(0)
        model = tiny_model()
        history = fit(model, train, cfg, seed=5, test_images=test, progress=False, log=lambda s: None)
        return model, history

    m1, h1 = run(memory.images[:16], memory.images[16:])
    m2, h2 = run(stream.images.subset(range(16)), stream.images.subset(range(16, 20)))
    assert [h.loss_per_sample for h in h1] == [h.loss_per_sample for h in h2]
    assert [h.validation for h in h1] == [h.validation for h in h2] and h2[-1].validation
    # the folder's check as it loads, the 2 held-out passes; one each for 2 training passes and 3 validation ones
    assert started.count({"persistent": False}) == 3 and started.count({"persistent": True}) == 2
    assert h1[-1].heldout == pytest.approx(h2[-1].heldout, rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert evaluate(m1, memory.images, batch_size=7) == pytest.approx(evaluate(m1, stream.images, batch_size=7), rel=1e-6)


# The growth of this process's peak memory while it loads a folder, per byte of the images it holds.
PEAK = """
import resource, sys
from aekit.data import load_data, load_image
load_image(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
images = load_data(sys.argv[1], workers=0).images
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / (images.numel() * 4))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB, as Linux gives it")
def test_a_folder_held_in_memory_takes_about_its_size_to_load(tmp_path):
    """The decoded batches were kept in a list and joined at the end: twice the images' size at the peak (1 GiB
    held unasked took 2 GiB and more). Now each batch goes straight into one tensor: the size and a batch or two."""
    (tmp_path / "f").mkdir()
    for i in range(1024):  # 64 MiB decoded (1024 x 128 x 128 x 4 bytes), 16 batches of 4 MiB
        Image.new("L", (128, 128), i % 256).save(tmp_path / "f" / f"{i:04d}.png")
    r = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path / "f"), str(tmp_path / "f" / "0000.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) < 1.5, r.stdout  # 2.0 joined at the end, 1.1 as it is


def test_a_file_broken_during_training_is_a_one_line_error(tmp_path):
    root = make_folder(tmp_path / "f", 8, size=(16, 16))
    files = load_data(str(root), stream="on", workers=2).images
    victim = files.files[5]
    with open(victim, "wb") as f:
        f.write(b"overwritten")
    with pytest.raises(aekit.DataError) as e:
        list(epoch_batches(files, [torch.arange(0, 4), torch.arange(4, 8)]))
    assert str(e.value).startswith(victim) and "\n" not in str(e.value)


def test_save_folder_writes_a_folder_that_reads_back_as_the_same_images_and_labels(tmp_path):
    """Gray as 16-bit PNG, one subfolder per label (numbered, or the label's name), names from the images."""
    g = torch.Generator().manual_seed(0)
    gray = aekit.data.ImageData(images=torch.rand(6, 1, 9, 7, generator=g), labels=np.array([0, 1, 0, 11, 1, 0]),
                                names=[f"x.npy[{i}]" for i in range(6)], source="x.npy")
    written = save_folder(gray, tmp_path / "g")
    assert [p.relative_to(tmp_path / "g").as_posix() for p in written][:4] == [
        "00/x.npy-0.png", "01/x.npy-1.png", "00/x.npy-2.png", "11/x.npy-3.png"]
    back = load_data(str(tmp_path / "g"), workers=0)
    assert back.label_names == ["00", "01", "11"] and back.images.shape == (6, 1, 9, 7)
    for name, image, label in zip(back.names, back.images, back.labels):
        i = int(name.split("-")[-1][:-4])
        assert back.label_names[label] == f"{gray.labels[i]:02d}"
        assert float((image - gray.images[i]).abs().max()) <= 0.5 / 65535 + 1e-7
    # a colour folder comes back as itself: 8-bit files, its subfolders, its file names (as .png)
    src = make_folder(tmp_path / "pets", 6, suffix="jpg")
    pets = load_data(str(src), workers=0)
    save_folder(pets, tmp_path / "p")
    again = load_data(str(tmp_path / "p"), workers=0)
    assert sorted(again.names) == sorted(n.replace(".jpg", ".png") for n in pets.names)
    assert again.label_names == pets.label_names
    i, j = pets.names.index("cats/img-00.jpg"), again.names.index("cats/img-00.png")
    assert float((again.images[j] - pets.images[i]).abs().max()) <= 0.5 / 255 + 1e-6


def test_save_folder_keeps_existing_files_unless_told_and_refuses_two_images_on_one_file(tmp_path):
    data = aekit.data.ImageData(images=torch.full((2, 1, 4, 4), 0.5), names=["a.png", "b.png"])
    save_folder(data, tmp_path / "o")
    data.images[:] = 0.25
    with pytest.raises(aekit.errors.DataError) as e:
        save_folder(data, tmp_path / "o")
    assert str(e.value) == f"out {tmp_path / 'o'}: a.png already exists (add overwrite to replace it)"
    assert abs(float(load_data(str(tmp_path / "o"), workers=0).images.max()) - 0.5) < 1e-4  # nothing written
    save_folder(data, tmp_path / "o", overwrite=True)
    assert abs(float(load_data(str(tmp_path / "o"), workers=0).images.max()) - 0.25) < 1e-4
    clash = aekit.data.ImageData(images=torch.zeros(2, 1, 4, 4), names=["a.png", "a.jpg"])
    with pytest.raises(aekit.errors.DataError, match="a.png and a.jpg would both be written as .*a.png: .*rename one"):
        save_folder(clash, tmp_path / "c")
    case = aekit.data.ImageData(images=torch.zeros(2, 1, 4, 4), names=["A.png", "a.png"])  # one file on macOS, Windows
    with pytest.raises(aekit.errors.DataError, match="A.png and a.png would both be written as .*a.png: .*in case"):
        save_folder(case, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_save_folder_keeps_names_readable_and_every_file_inside_out(tmp_path):
    """Spaces and any letters are kept; labels that look like paths ('..', '/abs') stay folders inside out."""
    names = ["name with spaces.png", "ünïcødé_名前.png", "a:b.png", "ok.png"]
    data = aekit.data.ImageData(images=torch.zeros(4, 1, 4, 4), names=names, labels=np.array([0, 1, 2, 3]),
                                label_names=["../escape", "a/b", str(tmp_path / "abs"), "ok"])
    written = save_folder(data, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == [
        "escape/name with spaces.png", "a-b/ünïcødé_名前.png", f"{str(tmp_path)[1:].replace('/', '-')}-abs/a-b.png",
        "ok/ok.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- names and order: the same on every system -------------------------------------------------------------------
def _orl_like(root: Path) -> Path:
    """18 small grayscale PGM files (their bytes fixed) in the classic s1, s2, s10 layout, a subfolder, a name with a
    space and a non-ASCII letter, and files at the top."""
    k = 0
    for sub in ("s1", "s2", "s10", "s1/extra", "Zoë K", "."):
        for name in ("1.pgm", "2.pgm", "10.pgm"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture(k, 8, 8, colour=False)).save(root / sub / name)
            k += 1
    return root


def test_a_folder_of_ordinary_names_keeps_the_names_order_labels_and_digests_it_had(tmp_path):
    # the names, order, labels and data.json of aekit before names were made the same on every system
    from aekit.run_data import data_record

    data = load_data(str(_orl_like(tmp_path / "orl")), workers=0)
    assert data.names == [
        "Zoë K/1.pgm", "s2/2.pgm", "s2/1.pgm", "s10/10.pgm", "s1/1.pgm", "2.pgm", "Zoë K/2.pgm", "s1/extra/10.pgm",
        "Zoë K/10.pgm", "s1/2.pgm", "s1/extra/1.pgm", "s2/10.pgm", "10.pgm", "s10/1.pgm", "s10/2.pgm",
        "s1/extra/2.pgm", "1.pgm", "s1/10.pgm"]
    assert data.label_names == [".", "Zoë K", "s1", "s1/extra", "s10", "s2"]
    assert data.labels.tolist() == [1, 5, 5, 4, 2, 0, 1, 3, 1, 2, 3, 5, 0, 4, 4, 3, 0, 2]
    record = data_record(data)
    assert record["names_sha256"] == "b82c552b413640f7e28d11bf06716f7cf4b25ef711dbbb1a1536b41b7984e014"
    assert record["pixels_sha256"] == "4b4fee66d209251b5f6bf1d76980ad45cbcf5f17fb46176a5881744e6e856d8f"
    assert record["files_sha256"] == "feeabf1a866f0d83c96816ecd1cdd8da4a67db85d0097f5277536f9c922dffac"


def test_names_and_their_order_are_those_of_the_posix_path_on_windows_too():
    import ntpath
    import posixpath

    from aekit.data.folders import by_name, relative_names

    names = ["s1/1.png", "s10/1.png", "s2/1.png", "s1/extra/1.png", "top.png", "Zoë/é.png", "Zoë/f.png"]
    linux = [posixpath.join("data/orl", n) for n in names]
    windows = [ntpath.join("C:\\data\\orl", *n.split("/")) for n in names]  # "s1\\" sorts after "s10\\"
    assert sorted(windows) != [windows[names.index(n)] for n in sorted(names)]
    assert relative_names(by_name(windows, "C:\\data\\orl", ntpath), "C:\\data\\orl", ntpath) == sorted(names)
    assert relative_names(by_name(linux, "data/orl", posixpath), "data/orl", posixpath) == sorted(names)


def test_a_folder_whose_names_are_in_nfd_form_has_the_names_order_and_labels_of_nfc(tmp_path):
    import unicodedata

    from aekit.run_data import names_digest

    loaded = {}
    for form in ("NFC", "NFD"):  # NFD: what macOS's HFS+ keeps, and a copy from it
        for k, person in enumerate(["Zoë", "José", "Ana", "Łukasz", "Eve"]):
            folder = tmp_path / form / unicodedata.normalize(form, person)
            folder.mkdir(parents=True)
            for j, name in enumerate(["é.png", "f.png", "e.png"]):
                Image.fromarray(picture(3 * k + j)).save(folder / unicodedata.normalize(form, name))
        loaded[form] = load_data(str(tmp_path / form), workers=0)
    nfc, nfd = loaded["NFC"], loaded["NFD"]
    assert nfd.names == nfc.names and nfd.label_names == nfc.label_names and (nfd.labels == nfc.labels).all()
    assert torch.equal(nfd.images, nfc.images) and names_digest(nfd) == names_digest(nfc)
