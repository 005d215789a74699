"""Using the codes: aekit encode / decode / sample / interpolate / map / score, and their errors."""

import re
import sys

import numpy as np
import pytest
import torch

import aekit
from aekit import latent
from aekit.models import create_model
from helpers import huge_header


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
    """An untrained small VAE saved as a model folder (sampling only needs a decoder and a prior)."""
    torch.manual_seed(0)
    model = create_model("vae", code_length=64, encoder_channels=(4, 4, 4), decoder_channels=(4, 4, 4))
    return aekit.save(model.eval(), tmp_path_factory.mktemp("vae") / "m", preprocess={"size": [32, 32], "channels": 1})


def test_encode_then_decode(tiny_run, faces, tmp_path, cli):
    folder, _ = faces
    assert cli("encode", tiny_run.out, folder, "--out", tmp_path / "codes.npy").code == 0
    codes = np.load(tmp_path / "codes.npy")
    files = (tmp_path / "codes.txt").read_text().splitlines()
    assert codes.shape == (6, tiny_run.model.config.code_length) and len(files) == 6
    assert files == sorted(files) and files[0].endswith("face0.png")
    # the codes are the model's codes of the images as training saw them
    x = torch.stack([aekit.load_image(f, size=(32, 32), channels=1) for f in files])
    with torch.no_grad():
        np.testing.assert_allclose(codes, tiny_run.model.encode(x).numpy(), rtol=1e-5, atol=1e-6)
    assert cli("decode", tiny_run.out, tmp_path / "codes.npy", "--out", tmp_path / "dec").code == 0
    pngs = sorted((tmp_path / "dec").glob("*.png"))
    assert [p.name for p in pngs][:1] == ["0000-face0.png"] and len(pngs) == 6
    pixels, info = aekit.read_image(pngs[0])
    assert pixels.shape == (32, 32, 1)


def test_the_listing_keeps_one_line_per_code_whatever_the_file_names(tiny_run, faces, tmp_path, cli):
    folder, _ = faces
    odd = tmp_path / "odd"
    odd.mkdir()
    names = ["a\nb.png", "c\u2028d.png", "plain.png"]  # a newline, and a line separator to str.splitlines
    for name, face in zip(names, sorted(folder.rglob("*.png"))):
        (odd / name).write_bytes(face.read_bytes())
    assert cli("encode", tiny_run.out, odd, "--out", tmp_path / "codes.npy").code == 0
    lines = (tmp_path / "codes.txt").read_text(encoding="utf-8").split("\n")
    assert len(lines) == 4 and lines[-1] == "" and lines[0].endswith("a\\nb.png") and "\u2028" in lines[1]
    assert cli("decode", tiny_run.out, tmp_path / "codes.npy", "--out", tmp_path / "dec").code == 0
    # a backslash ends a folder's name, as in a listing written on Windows: "a\\nb.png" (its escaped line break) is "nb"
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == ["0000-nb.png", "0001-c\u2028d.png", "0002-plain.png"]


def test_the_listing_is_read_on_any_system(tiny_run, faces, tmp_path, cli, monkeypatch):
    """codes.txt names the files with '/' on every system, and decode takes a name after either separator: a listing
    written on Windows ("faces\\00\\face0.png") named the PNGs 0000-faces\\00\\face0.png on Linux and macOS."""
    from pathlib import PureWindowsPath

    import aekit.latent

    folder, _ = faces
    read = aekit.latent.read_inputs

    def on_windows(*args, **kwargs):
        x, files, skipped = read(*args, **kwargs)
        return x, [PureWindowsPath("C:\\data", "faces", f.name) for f in files], skipped

    monkeypatch.setattr(aekit.latent, "read_inputs", on_windows)
    assert cli("encode", tiny_run.out, folder, "--out", tmp_path / "codes.npy").code == 0
    assert (tmp_path / "codes.txt").read_text().splitlines()[0] == "C:/data/faces/face0.png"
    older = "".join(f"faces\\{i:02d}\\face{i}.png\r\n" for i in range(6))  # as earlier versions wrote it on Windows
    (tmp_path / "codes.txt").write_bytes(older.encode())
    assert cli("decode", tiny_run.out, tmp_path / "codes.npy", "--out", tmp_path / "dec").code == 0
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == [f"{i:04d}-face{i}.png" for i in range(6)]


def test_sample_draws_from_the_prior(vae_folder, tmp_path, cli):
    assert cli("sample", vae_folder, "-n", "5", "--out", tmp_path / "grid.png").code == 0
    images = np.load(tmp_path / "grid.npy")
    assert images.shape == (5, 1, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert cli("sample", vae_folder, "-n", "5", "--out", tmp_path / "again.png").code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), images)  # seeded


def test_interpolate_strip(vae_folder, faces, tmp_path, cli):
    folder, _ = faces
    out = tmp_path / "strip.png"
    assert cli("interpolate", vae_folder, folder / "face0.png", folder / "face1.png", "--steps", "4",
               "--out", out).code == 0
    strip = np.load(tmp_path / "strip.npy")
    assert strip.shape == (6, 1, 32, 32)  # A, 4 decodings, B
    model = aekit.load(vae_folder)
    ends = latent.decode(model, latent.encode(model, torch.from_numpy(strip[[0, -1]])))
    np.testing.assert_allclose(strip[[1, -2]], ends.numpy(), atol=1e-5)  # t = 0 and 1 decode A and B


def test_data_writes_the_built_in_faces_as_files_to_try_the_commands_on(vae_folder, tmp_path, cli):
    r = cli("data", "olivetti", "--out", tmp_path / "faces")
    assert r.code == 0 and r.out.strip() == f"Wrote 400 images (64x64) in 40 label folders to {tmp_path / 'faces'}"
    a, b = sorted((tmp_path / "faces" / "03").glob("*.png"))[:2]
    faces = aekit.load_data("olivetti")
    pixels, info = aekit.read_image(a)
    assert info.bits == 16 and faces.labels[faces.names.index(a.stem)] == 3
    np.testing.assert_allclose(pixels[..., 0], faces.images[faces.names.index(a.stem), 0].numpy(), atol=1e-5)
    assert cli("interpolate", vae_folder, a, b, "--steps", "2", "--out", tmp_path / "s.png").code == 0
    assert cli("data", "olivetti", "--out", tmp_path / "faces").err.endswith(
        "already exists (add --overwrite to replace it)\n")
    r = cli("data", "lfw-subset", "--size", "32x32", "--fit", "pad", "--out", tmp_path / "lfw")
    assert r.code == 0 and "Wrote 100 images (32x32) to" in r.out
    assert aekit.read_image(tmp_path / "lfw" / "lfw-000.png")[0].shape == (32, 32, 1)
    assert cli("data", "lfw-subset", "--channels", "3", "--out", tmp_path / "lfw3").code == 0  # RGB, 8-bit
    assert aekit.read_image(tmp_path / "lfw3" / "lfw-000.png")[1].mode == "RGB"
    assert cli("data", "lfw-subset", "--size", "big", "--out", tmp_path / "x").err.startswith("aekit: error: --size: ")
    assert cli("data", "lfw-subset", "--size", "0x5", "--out", tmp_path / "x").error == (
        "aekit: error: --size must be positive, got 0x5")
    assert cli("data", "lfw-subset", "--fit", "crop", "--out", tmp_path / "x").err.startswith(
        "aekit: error: --fit: fits the images to --size, which is not given")
    assert cli("data", "nowhere", "--out", tmp_path / "x").err.startswith(  # the positional, as the help names it
        "aekit: error: SOURCE 'nowhere': unknown data source: no such folder or file")
    (tmp_path / "lfw" / "broken.png").write_bytes(b"not a png")  # a folder with a bad file: --skip-bad
    assert cli("data", tmp_path / "lfw", "--out", tmp_path / "again").err.endswith("(--skip-bad skips unreadable files)\n")
    r = cli("data", tmp_path / "lfw", "--out", tmp_path / "again", "--skip-bad")
    assert r.code == 0 and r.out.startswith("skipped ") and "Wrote 100 images (32x32) to" in r.out
    assert r.out.strip().endswith("; skipped 1 unreadable files")


def test_map_pca_and_tsne(tiny_run, faces, tmp_path, cli):
    assert cli("map", tiny_run.out, "--out", tmp_path / "map.png").code == 0
    assert (tmp_path / "map.png").stat().st_size > 0
    drawn = latent.write_map(tiny_run.out, tmp_path / "t.png", source=str(faces[0]), method="tsne")
    assert drawn["coordinates"].shape == (6, 2) and drawn["images"] == 6


def test_map_skips_unreadable_files_with_skip_bad_as_its_error_says(tiny_run, faces, tmp_path, cli):
    import shutil

    folder = tmp_path / "with-bad"
    shutil.copytree(faces[0], folder)
    (folder / "broken.png").write_bytes(b"not a png")
    assert cli("map", tiny_run.out, "--data", folder, "--out", tmp_path / "m.png").error.endswith(
        "(--skip-bad skips unreadable files)")  # an option map has
    r = cli("map", tiny_run.out, "--data", folder, "--out", tmp_path / "m.png", "--skip-bad")
    assert r.code == 0 and r.out.startswith("skipped ") and "Wrote " in r.out and "(6 images" in r.out, r.err
    two = tmp_path / "two"
    two.mkdir()
    for p in sorted(faces[0].glob("*.png"))[:2]:
        shutil.copy(p, two / p.name)
    assert cli("map", tiny_run.out, "--data", two, "--out", tmp_path / "m2.png").error == (
        f"aekit: error: --data {two}: a map needs at least 3 images, got 2")


@pytest.mark.parametrize("command, out", [("encode", "codes.npy"), ("score", "scores.csv")])
def test_an_unreadable_file_stops_encode_and_score_unless_skipped(tiny_run, faces, tmp_path, cli, command, out):
    import shutil

    folder = tmp_path / "with-bad"
    shutil.copytree(faces[0], folder)
    (folder / "broken.png").write_bytes(b"not a png")
    err = cli(command, tiny_run.out, folder, "--out", tmp_path / out).error
    assert "broken.png: not an image" in err and err.endswith("(--skip-bad skips unreadable files)")
    assert not (tmp_path / out).exists()
    r = cli(command, tiny_run.out, folder, "--out", tmp_path / out, "--skip-bad")
    assert r.code == 0, r.err
    assert r.out.startswith("skipped ") and "broken.png: not an image" in r.out.splitlines()[0]
    listed = (tmp_path / "codes.txt").read_text().splitlines() if command == "encode" else \
        [line.split(",")[0] for line in (tmp_path / out).read_text().splitlines()[1:]]
    assert len(listed) == 6 and not any("broken" in f for f in listed)


@pytest.mark.parametrize("command, out", [("encode", "codes.npy"), ("score", "scores.csv")])
def test_encode_and_score_show_a_bar_over_the_files_they_read_on_a_terminal_only(tiny_run, faces, tmp_path, cli,
                                                                                 monkeypatch, command, out):
    """A large folder was read without a sign: on a terminal a bar over its files; none in a log, none with
    --no-progress."""
    r = cli(command, tiny_run.out, faces[0], "--out", tmp_path / f"log-{out}")
    assert r.code == 0 and "\r" not in r.err and "reading" not in r.err, r.err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    r = cli(command, tiny_run.out, faces[0], "--out", tmp_path / f"tty-{out}")
    assert r.code == 0 and "\r" in r.err and "reading: " in r.err and "/6 [" in r.err, r.err
    r = cli(command, tiny_run.out, faces[0], "--out", tmp_path / f"off-{out}", "--no-progress")
    assert r.code == 0 and r.err == ""


def test_errors_are_one_line(tiny_run, vae_folder, faces, tmp_path, cli):
    folder, _ = faces
    fcn = aekit.save(create_model("fcn").eval(), tmp_path / "fcn")
    cases = [
        (["sample", str(tiny_run.out), "--out", str(tmp_path / "g.png")], "no prior"),
        (["interpolate", str(fcn), str(folder / "face0.png"), str(folder / "face1.png"), "--out",
          str(tmp_path / "s.png")], "cannot decode"),
        (["encode", str(tiny_run.out), str(tmp_path / "missing.png"), "--out", str(tmp_path / "c.npy")],
         "no such image"),
        (["decode", str(tiny_run.out), str(tmp_path / "none.npy"), "--out", str(tmp_path / "d")], "no such codes"),
        (["score", str(vae_folder), str(folder), "--out", str(tmp_path / "s.csv")], "config.toml"),
        (["map", str(tiny_run.out), "--data", str(folder / "face0.png"), "--out", str(tmp_path / "m.png")],
         "--data '"),
    ]
    for argv, message in cases:
        assert message in cli(*argv).error, argv
    np.save(tmp_path / "bad.npy", np.zeros((2, 7), dtype=np.float32))
    error = cli("decode", tiny_run.out, tmp_path / "bad.npy", "--out", tmp_path / "d").error
    assert "bad.npy: codes of shape" in error and "do not fit" in error and "aekit encode" in error
    assert "--steps must be at least 2" in cli("interpolate", vae_folder, folder / "face0.png", folder / "face1.png",
                                               "--steps", "1", "--out", tmp_path / "s.png").error
    assert "-n must be at least 1" in cli("sample", vae_folder, "-n", "0", "--out", tmp_path / "g.png").error


def test_out_is_checked_before_any_work(tiny_run, vae_folder, faces, tmp_path, cli):
    folder, _ = faces
    (tmp_path / "codes.txt").write_text("some notes")
    cases = [  # each names --out and the fix, and nothing is written
        (["sample", vae_folder, "--out", tmp_path / "s.jpg"], "this command writes .png files"),
        (["encode", tiny_run.out, folder, "--out", tmp_path / "codes.txt"], "give a name ending in .npy"),
        (["score", tiny_run.out, folder, "--out", tmp_path / "nodir" / "s.csv"], f"folder {tmp_path / 'nodir'} does"),
        (["map", tiny_run.out, "--out", tmp_path], "is a folder; give a file name ending in .png"),
        (["interpolate", vae_folder, folder / "face0.png", folder / "face1.png", "--out", tmp_path / "no" / "s.png"],
         "does not exist"),
    ]
    for argv, message in cases:
        error = cli(*argv).error
        assert error.startswith("aekit: error: --out ") and message in error, (argv, error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.txt"]
    assert (tmp_path / "codes.txt").read_text() == "some notes"


def test_outputs_are_replaced_only_with_overwrite(tiny_run, vae_folder, faces, tmp_path, cli):
    folder, _ = faces
    codes = tmp_path / "codes.npy"
    commands = [
        (["encode", tiny_run.out, folder, "--out", codes], codes.with_suffix(".txt")),  # codes.npy + codes.txt
        (["decode", tiny_run.out, codes, "--out", tmp_path / "dec"], tmp_path / "dec" / "0000-face0.png"),
        (["sample", vae_folder, "-n", "2", "--out", tmp_path / "s.png"], tmp_path / "s.npy"),
        (["map", tiny_run.out, "--data", folder, "--out", tmp_path / "m.png"], tmp_path / "m.png"),
        (["score", tiny_run.out, folder, "--out", tmp_path / "s.csv"], tmp_path / "s.csv"),
    ]
    for argv, written in commands:
        assert cli(*argv).code == 0
        before = written.read_bytes()
        written.write_bytes(b"kept")  # a file the user has since changed
        error = cli(*argv).error
        assert "already exists (add --overwrite to replace" in error, error
        assert written.read_bytes() == b"kept"
        assert cli(*argv, "--overwrite").code == 0 and written.read_bytes() == before, argv


def test_interpolate_takes_one_image_at_each_end(vae_folder, faces, tmp_path, cli):
    folder, _ = faces
    for a, b in ((folder, folder / "face1.png"), (folder / "face0.png", folder)):
        error = cli("interpolate", vae_folder, a, b, "--out", tmp_path / "s.png").error
        assert error == f"aekit: error: {folder}: a folder of 6 images; interpolate takes one image file at each end"


def test_map_converts_another_sources_channels_to_the_models(tiny_run, tmp_path, cli):
    rgb = np.random.default_rng(0).random((5, 20, 24, 3)).astype(np.float32)  # colour images, a gray model
    np.save(tmp_path / "rgb.npy", rgb)
    r = cli("map", tiny_run.out, "--data", tmp_path / "rgb.npy", "--out", tmp_path / "m.png")
    assert r.code == 0 and "(5 images)" in r.out, r.err


@pytest.mark.parametrize("codes, said", [
    (np.zeros((2, 3), np.complex64), "complex64 (2, 3)"), (np.zeros((2, 3), "m8[s]"), "timedelta64[s] (2, 3)"),
    (np.zeros((0, 3), np.float32), "float32 (0, 3)"), (np.full((2, 3), 1e300), None),
])
def test_codes_that_are_not_real_numbers_in_float32_range_are_refused(tiny_run, tmp_path, cli, codes, said):
    """Complex codes lost their imaginary part, 1e300 gave black images with a numpy warning, an empty file "Wrote 0"."""
    np.save(tmp_path / "codes.npy", codes)
    error = cli("decode", tiny_run.out, tmp_path / "codes.npy", "--out", tmp_path / "d").error
    assert error == (f"aekit: error: {tmp_path / 'codes.npy'}: " + (
        f"expected a (N, code length) array of real numbers, N at least 1, got {said}" if said else
        "codes contain NaN or Inf, or values beyond float32's range")) and not (tmp_path / "d").exists()


def test_a_codes_file_that_holds_python_objects_is_refused_without_numpys_pickle_hint(tiny_run, tmp_path, cli):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "notes.py").write_text("print('not codes')\n")
    for name in ("objects.npy", "notes.py"):
        error = cli("decode", tiny_run.out, tmp_path / name, "--out", tmp_path / "d").error
        assert "not a .npy array of codes (no plain NumPy array in it: numpy would read it as pickled Python " \
               "objects, which could run code; aekit encode" in error, error
        assert "allow_pickle" not in error  # numpy's advice to load it anyway


def test_sampling_at_a_temperature(vae_folder, tmp_path, cli):
    model = aekit.load(vae_folder)
    hot, cold = latent.sample(model, 8, seed=1), latent.sample(model, 8, seed=1, temperature=0.1)
    mean = latent.decode(model, torch.zeros(1, model.config.code_length))
    assert float((cold - mean).abs().mean()) < float((hot - mean).abs().mean())  # nearer the prior's centre
    assert cli("sample", vae_folder, "--temperature", "0.5", "--out", tmp_path / "t.png").code == 0
    assert "temperature must be positive" in cli("sample", vae_folder, "--temperature", "0", "--out",
                                                 tmp_path / "u.png").error


def test_encode_and_decode_take_a_run_folder_and_check_the_images(tiny_run):
    """aekit.latent.encode / decode take a run folder as the module's other functions do, and images the
    model cannot take are a one-line error, not a matrix-product failure deep in torch."""
    model = tiny_run.model.eval()
    h, w = model.config.input_size
    x = torch.rand(4, 1, h, w)
    codes = latent.encode(tiny_run.out, x)
    assert np.allclose(codes, latent.encode(model, x.numpy()), atol=1e-6)
    assert latent.decode(tiny_run.out, codes).shape == (4, 1, h, w)
    for images, message in [(x[:, 0], "images: got (4, 32, 32) float32; the model takes (N, 1, H, W)"),
                            (aekit.resize(x, (64, 64)), "images: 64x64 images; the conv model takes 32x32"),
                            (x * 255, "outside [0, 1]: scale them")]:
        with pytest.raises(aekit.DataError, match=re.escape(message)):
            latent.encode(model, images)


def test_the_submodules_the_docs_name_are_reached_from_the_package():
    import subprocess
    import sys

    code = "import aekit; print(aekit.latent.encode.__name__, aekit.anomaly.score.__name__, aekit.sklearn.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["encode", "score", "aekit.sklearn"]
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        aekit.nope


def test_codes_whose_header_declares_more_than_the_file_holds_are_refused_before_any_allocation(tmp_path):
    """A damaged header (a huge shape) was a MemoryError for 36 TiB."""
    with pytest.raises(aekit.AekitError, match=r"codes.npy: not a .npy array of codes \(damaged or truncated: its "
                       r"header declares a float32 array of shape \(10000000, 1000, 1000\)"):
        latent.read_codes(huge_header(tmp_path / "codes.npy"))


@pytest.mark.slow
def test_encode_and_score_decode_many_files_in_worker_processes_with_the_same_outputs(tiny_run, tmp_path, cli,
                                                                                    monkeypatch):
    """encode and score read every file in this process, one after another, where training reads a folder with
    --workers processes; now they do too, with the same codes, scores, order and errors."""
    import os

    from aekit.data.decoding import BATCH
    from helpers import truncate

    folder = tmp_path / "faces"
    folder.mkdir()
    data = aekit.load_data("olivetti")
    for i in range(BATCH + 6):  # two batches of files
        aekit.write_image(folder / f"face{i:02d}.png", data.images[i].permute(1, 2, 0).numpy())
    pids = tmp_path / "pids"
    read = latent.load_image

    def load_image(*args, **kwargs):  # which process decodes each file
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        return read(*args, **kwargs)

    monkeypatch.setattr(latent, "load_image", load_image)
    x, files, _ = latent.read_inputs(tiny_run.model, [folder], workers=2)
    assert os.getpid() not in {int(p) for p in pids.read_text().split()} and len(pids.read_text().split()) == BATCH + 6
    y, same, _ = latent.read_inputs(tiny_run.model, [folder], workers=0)
    assert torch.equal(x, y) and files == same == sorted(folder.glob("*.png"))
    outputs = {}
    for workers in ("0", "2"):
        for command, out in (("encode", "codes.npy"), ("score", "scores.csv")):
            args = (command, tiny_run.out, folder, "--out", tmp_path / workers / out, "--workers", workers)
            (tmp_path / workers).mkdir(exist_ok=True)
            assert cli(*args, *(["--threshold", "0.01"] if command == "score" else [])).code == 0
        outputs[workers] = [(tmp_path / workers / name).read_bytes() for name in ("codes.npy", "codes.txt", "scores.csv")]
    assert outputs["0"] == outputs["2"]
    truncate(folder / f"face{BATCH + 2:02d}.png")  # in the second batch
    errors = {w: cli("encode", tiny_run.out, folder, "--out", tmp_path / "bad.npy", "--workers", w).error for w in "02"}
    assert errors["0"] == errors["2"] and errors["2"].endswith("(--skip-bad skips unreadable files)"), errors
    skipped = {w: cli("encode", tiny_run.out, folder, "--out", tmp_path / w / "skip.npy", "--workers", w, "--skip-bad")
               for w in "02"}
    assert skipped["0"].out.replace("/0/", "/2/") == skipped["2"].out and "skipped 1 unreadable" in skipped["2"].out
    assert cli("encode", tiny_run.out, folder, "--out", tmp_path / "w.npy", "--workers", "-1").error == (
        "aekit: error: --workers must be 0 or more, got -1")


def test_images_at_the_working_size_that_would_not_fit_in_memory_are_refused_before_they_are_read(tiny_run, faces,
                                                                                                  tmp_path, cli,
                                                                                                  monkeypatch):
    """encode read every image at model.json's preprocess.size into one tensor, whatever its size."""
    folder, _ = faces
    monkeypatch.setattr(latent, "too_much", lambda need: f" ({need} bytes), more than the 1.0 KiB of memory available")
    assert cli("encode", tiny_run.out, folder, "--out", tmp_path / "codes.npy").error == (
        "aekit: error: preprocess.size 32x32: 6 images at the model's working size take 24.0 KiB (24576 bytes), more "
        "than the 1.0 KiB of memory available; give fewer at a time")
    assert not (tmp_path / "codes.npy").exists()
