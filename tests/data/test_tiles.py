"""Tiles (data.fit tiles): every window of the working size an image holds, and splits that keep an image's
tiles together."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.data import cut_tiles, load_data, split_indices, tile_data, validation_split
from aekit.data.tiles import cut_from, tile_name, tile_origins
from helpers import make_folder, picture, truncate


def photos(root, sizes=((40, 30), (16, 50), (33, 33), (20, 20), (48, 16))):
    """Gray photos of different sizes, photo-0.png ... at the top of ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(picture(i, h, w, colour=False)).save(root / f"photo-{i}.png")
    return root


def test_the_grid_is_every_whole_window_centred():
    assert tile_origins((40, 30), (16, 16)) == [(4, 7), (20, 7)]  # 2 x 1, margins split: 8 rows, 14 columns
    assert tile_origins((33, 33), (16, 16)) == [(0, 0), (0, 16), (16, 0), (16, 16)]
    x = torch.arange(2 * 40 * 30, dtype=torch.float32).view(2, 40, 30)
    tiles = cut_tiles(x, (16, 16))
    assert tiles.shape == (2, 2, 16, 16)
    torch.testing.assert_close(tiles[1], x[:, 20:36, 7:23])  # native pixels, not resampled
    with pytest.raises(aekit.DataError, match=r"small\.png: 40x30 is smaller than the working size 48x16.*data.fit tiles"):
        cut_tiles(x, (48, 16), name="small.png")


@pytest.mark.parametrize("name", ["photo.png", "sub/a-r1c1.JPG", "foo-r1c2.npy-3", "olivetti-001"])
def test_a_tiles_name_gives_back_the_name_of_the_image_it_was_cut_from(name):
    names = [tile_name(name, k, (48, 32), (16, 16)) for k in range(6)]
    assert len(set(names)) == 6 and [cut_from(n) for n in names] == [name] * 6


def test_a_folder_of_photos_of_any_size_gives_all_its_tiles_with_names_and_groups(tmp_path, monkeypatch):
    root = photos(tmp_path / "p")
    data = load_data(str(root), size=(16, 16), fit="tiles", workers=0)
    per = {f"photo-{i}.png": len(tile_origins(s, (16, 16)))
           for i, s in enumerate(((40, 30), (16, 50), (33, 33), (20, 20), (48, 16)))}
    assert data.images.shape == (sum(per.values()), 1, 16, 16) == (2 + 3 + 4 + 1 + 3, 1, 16, 16)
    assert len(np.unique(data.groups)) == 5 and np.all(np.diff(data.groups) >= 0)  # an image's tiles in a row
    first = data.names.index("photo-1-r0c2.png")  # the third tile of the 16x50 photo: columns 33-48
    np.testing.assert_allclose(data.images[first, 0].numpy() * 255, picture(1, 16, 50, colour=False)[:, 33:49],
                               atol=1e-3)
    windows = load_data(str(root), size=(16, 16), fit="window", workers=0)
    assert len(windows) == 5  # the window keeps one of each
    with pytest.raises(aekit.DataError, match=r"photo-\d\.png: \d+x\d+ is smaller than the working size 24x24, which data.fit tiles"):
        load_data(str(root), size=(24, 24), fit="tiles", workers=0)
    with pytest.raises(aekit.DataError, match=r"data.fit tiles keeps the tiles in memory, cannot stream them"):
        load_data(str(root), size=(16, 16), fit="tiles", stream="on", workers=0)
    monkeypatch.setattr("aekit.data.folders.STREAM_ABOVE_BYTES", 1000)  # what 1 GiB is to a folder of photos
    with pytest.raises(aekit.DataError, match=r"and its 13 tiles take 0.0 GiB, more than the 9.31323e-07 GiB it "
                                              r"holds unasked: data.stream off holds them all the same"):
        load_data(str(root), size=(16, 16), fit="tiles", workers=0)
    assert len(load_data(str(root), size=(16, 16), fit="tiles", stream="off", workers=0)) == 13


def test_labels_follow_the_tiles_and_an_unreadable_photo_is_skipped(tmp_path):
    root = make_folder(tmp_path / "f", 6, size=(32, 48))
    truncate(root / "cats" / "img-02.png")
    data = load_data(str(root), size=(16, 16), fit="tiles", skip_bad=True, workers=0)
    assert len(data.skipped) == 1 and "img-02.png" in data.skipped[0]
    assert len(data) == 5 * 6 and data.label_names == ["cats", "dogs"]
    for name, label in zip(data.names, data.labels):
        assert data.label_names[label] == name.split("/")[0]


def test_a_source_in_memory_is_tiled_too():
    x = torch.rand(6, 1, 20, 36)
    data = tile_data(aekit.ImageData(x, labels=np.arange(6) % 2, names=[f"a[{i}]" for i in range(6)]), (10, 12))
    assert data.images.shape == (36, 1, 10, 12) and list(data.groups[:7]) == [0] * 6 + [1]
    torch.testing.assert_close(data.images[7], x[1, :, 0:10, 12:24])
    assert data.names[7] == "a[1]-r0c1" and list(data.labels[:7]) == [0] * 6 + [1]
    olivetti = load_data("olivetti", size=(32, 32), fit="tiles")
    assert olivetti.images.shape == (1600, 1, 32, 32) and olivetti.names[1] == f"{load_data('olivetti').names[0]}-r0c1"


def test_splits_keep_an_images_tiles_together(tmp_path):
    data = load_data(str(photos(tmp_path / "p")), size=(16, 16), fit="tiles", workers=0)
    tr, te = split_indices(data, split="random", test_fraction=0.2)
    assert len(tr) + len(te) == len(data) and len(te) > 0
    assert not set(data.groups[tr]) & set(data.groups[te])  # no photo on both sides
    fit_index, val_index, how = validation_split(data, tr, fraction=0.3, seed=3)
    assert len(val_index) and not set(data.groups[fit_index]) & set(data.groups[val_index])
    assert how.startswith("the tiles of a random 1 of")
    one = load_data(str(photos(tmp_path / "one", sizes=((32, 32),))), size=(16, 16), fit="tiles", workers=0)
    with pytest.raises(aekit.DataError, match=r"one image's tiles, which a split cannot divide"):
        split_indices(one, split="random", test_fraction=0.2)
    assert validation_split(one, np.arange(4))[2] == "none"  # nothing to spare: no validation split


def test_a_denoiser_trains_on_tiles_and_is_scored_on_photos_it_never_saw(tmp_path, cli):
    root = photos(tmp_path / "p", sizes=[(48, 40), (40, 48), (32, 64), (64, 32), (40, 40), (48, 48)])
    out = tmp_path / "run"
    r = cli("train", "--model", "unet", "--noise", "gaussian:0.1", "--data", root, "--size", "16x16", "--fit", "tiles",
            "--epochs", "2", "--no-compare", "--out", out)
    assert r.code == 0, r.err
    m = json.loads((out / "metrics.json").read_text())
    data = load_data(str(root), size=(16, 16), fit="tiles", workers=0)
    tr, te = split_indices(data)
    assert m["heldout"]["images"] == len(te) and len(tr) + len(te) == 6 + 6 + 8 + 8 + 4 + 9
    assert m["selection"]["how"] == "the tiles of a random 1 of 5 training images"  # the sixth photo is held out
    assert cli("train", "--fit", "tiles", "--out", tmp_path / "x").err.startswith(
        "aekit: error: --fit tiles cuts windows of the working size: give --size")
    assert cli("evaluate", out, "--data", root, "--fit", "tiles").err.startswith(
        "aekit: error: --fit tiles cuts windows of --size: give it")
    assert cli("evaluate", out, "--data", root, "--size", "16x16", "--fit", "tiles").code == 0
    assert json.loads((out / "evaluation.json").read_text())["images"] == 41  # every tile of every photo
    written = cli("data", root, "--size", "16x16", "--fit", "tiles", "--out", tmp_path / "tiles")
    assert written.code == 0 and "Wrote 41 images (16x16) in 6 folders, one per image cut" in written.out
    assert (tmp_path / "tiles" / "photo-2" / "photo-2-r1c3.png").is_file()
    # read back, a photo's tiles share a label: --split subject and the validation split keep them together
    back = load_data(str(tmp_path / "tiles"), workers=0)
    folders = [n.split("/")[0] for n in back.names]
    assert [f == back.label_names[label] for f, label in zip(folders, back.labels)] == [True] * 41
    tr, te = split_indices(back, split="subject")
    assert not set(back.labels[tr]) & set(back.labels[te]) and len(set(back.labels[te])) == 1
    fit_index, val_index, how = validation_split(back, tr, seed=3)
    assert how.startswith("whole labels: photo-") and not set(back.labels[fit_index]) & set(back.labels[val_index])
