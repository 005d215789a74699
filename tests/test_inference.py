"""`aekit denoise` on files of several sizes and modes; the fully convolutional path, tiles included."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.inference import FlipEnsemble, denoise_files, reconstruct, run_tiled
from helpers import aekit_process, opened


@pytest.fixture(scope="module")
def fcn_run(make_run):
    return make_run(**{"model.name": "fcn", "model.channels": [8, 8], "model.code_length": 8, "model.loss": "mse",
                       "train.epochs": 1, "train.batch_size": 32, "data.resize": "area", "noise.kind": "gaussian",
                       "noise.sigma": 0.1}).out


@pytest.fixture
def images(tmp_path):
    """Files of several sizes, formats and modes."""
    g = np.random.default_rng(0)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray((g.random((40, 56)) * 255).astype(np.uint8), "L").save(folder / "gray.png")
    Image.fromarray((g.random((300, 280, 3)) * 255).astype(np.uint8), "RGB").save(folder / "sub" / "photo.jpg")
    Image.fromarray((g.random((33, 47)) * 65535).astype(np.uint16)).save(folder / "deep16.png")
    Image.fromarray((g.random((20, 30)) * 255).astype(np.uint8), "L").save(folder / "scan.pgm")
    Image.fromarray((g.random((64, 64, 3)) * 255).astype(np.uint8), "RGB").save(folder / "x.bmp")
    Image.fromarray((g.random((25, 25)) * 255).astype(np.uint8), "L").save(folder / "t.tiff")
    return folder


def test_denoise_keeps_name_size_format_mode_and_depth(fcn_run, images, tmp_path, cli):
    out = tmp_path / "out"
    r = cli("denoise", fcn_run, images, "--out", out, "--tile", "128", "--overlap", "16")
    assert r.code == 0, r.err
    for src in images.rglob("*.*"):
        dst = out / src.relative_to(images)
        assert dst.is_file(), dst
        a, b = opened(src), opened(dst)
        assert (b.size, b.mode, b.format) == (a.size, a.mode, a.format), src.name
    red = np.zeros((48, 48, 3), np.uint8)
    red[..., 0] = 230
    Image.fromarray(red).save(tmp_path / "red.png")
    assert cli("denoise", fcn_run, tmp_path / "red.png", "--out", out).code == 0
    red_out = np.asarray(opened(out / "red.png"), dtype=float)  # the gray model took each channel on its own:
    assert abs(red_out[..., 0].mean() - red_out[..., 1].mean()) > 5  # not one gray image (the model is untrained)
    # the 16-bit file stays 16-bit with values spread over the 16-bit range
    assert np.asarray(opened(out / "deep16.png")).max() > 255


def test_add_noise_writes_a_grid_and_refuses_to_overwrite(fcn_run, images, tmp_path, cli):
    out = tmp_path / "out"
    r = cli("denoise", fcn_run, images / "gray.png", "--out", out, "--add-noise", "gaussian:0.2")
    assert r.code == 0, r.err
    assert (out / "grid.png").is_file() and (out / "gray.png").is_file()
    again = denoise_files(fcn_run, [str(images / "gray.png")], tmp_path / "py", add_noise="gaussian:0.2")  # a SPEC
    assert again["written"] and np.array_equal(np.asarray(opened(out / "gray.png")), np.asarray(opened(tmp_path / "py" / "gray.png")))
    assert opened(out / "grid.png").size[1] > 3 * 96  # three rows: clean, noisy, denoised
    err = cli("denoise", fcn_run, images / "gray.png", "--out", out).error
    assert "already exists (add --overwrite" in err and err.startswith(f"aekit: error: --out {out}")
    for args, msg in [((fcn_run, tmp_path / "nope.png"), "no such image file or folder"),
                      ((tmp_path / "norun", images), "no such run or model folder"),
                      ((fcn_run, images, "--add-noise", "pink:1"), "--add-noise 'pink:1': unknown noise kind"),
                      ((fcn_run, images, "--add-noise", "gaussian:25"), "--add-noise 'gaussian:25': noise sigma 25 is "
                                                                        "above 1"),
                      ((fcn_run, images, "--tile", "8"), "--tile must be at least 16 and --overlap 0 or more"),
                      ((fcn_run, images, "--seed", "3"), "--seed seeds the noise of --add-noise, which is not given"),
                      ((fcn_run, images, "--add-noise", "gaussian:0.1", "--seed", "-2"), "--seed must lie in [0,")]:
        assert msg in cli("denoise", *args, "--out", tmp_path / "o2").error


def test_inputs_whose_outputs_would_be_one_file_are_refused(fcn_run, tmp_path, cli):
    """macOS and Windows take A.png and a.png as one file: its second output failed with the wrong message, and with
    --overwrite replaced the first."""
    for folder, name in (("x", "A.png"), ("y", "a.png"), ("z", "A.png")):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((20, 20), np.uint8), "L").save(tmp_path / folder / name)
    err = cli("denoise", fcn_run, tmp_path / "x", tmp_path / "y", "--out", tmp_path / "d", "--overwrite").error
    assert err == ("aekit: error: two inputs would both be written as A.png and a.png (one file where case does not "
                   "count: macOS, Windows): rename one or denoise them separately")
    err = cli("denoise", fcn_run, tmp_path / "x", tmp_path / "z", "--out", tmp_path / "d").error
    assert err == "aekit: error: two inputs would both be written as A.png: rename one or denoise them separately"
    assert not (tmp_path / "d").exists()


def test_fcn_tiles_agree_with_one_pass_away_from_tile_borders():
    torch.manual_seed(0)
    model = aekit.create_model("fcn", channels=(8, 8), code_length=8).eval()
    x = torch.rand(1, 1, 200, 150)
    whole = run_tiled(model, x, tile=512)
    tiled = run_tiled(model, x, tile=96, overlap=24)
    assert tiled.shape == x.shape
    # a fully convolutional net sees the same context inside a tile, so outputs match well inside tiles;
    # near tile borders the zero padding differs, and the blending keeps the error small
    assert float((tiled - whole).abs().mean()) < 0.02


def test_fixed_size_models_resize_in_and_out(tmp_path):
    model = aekit.create_model("conv").eval()
    outs = reconstruct(model, [torch.rand(1, 64, 64), torch.rand(1, 17, 90)])
    assert [tuple(o.shape) for o in outs] == [(1, 64, 64), (1, 17, 90)]


@pytest.mark.parametrize("name", ["conv", "fcn"])
def test_reconstruct_in_batches_equals_one_image_at_a_time(name):
    """Images are grouped by size and run in batches (a batch of 2 here, so groups split across
    batches); every output is what the model gives the image alone, in the input order."""
    torch.manual_seed(0)
    model = aekit.create_model(name, **({"channels": (8, 8), "code_length": 8} if name == "fcn" else {})).eval()
    g = torch.Generator().manual_seed(1)
    shapes = [(1, 40, 40), (1, 24, 36), (1, 40, 40), (1, 40, 40), (1, 24, 36), (1, 300, 40)]  # the last: tiled
    images = [torch.rand(*s, generator=g) for s in shapes]
    batched = reconstruct(model, images, batch_size=2, tile=256)
    alone = [reconstruct(model, [x], batch_size=1, tile=256)[0] for x in images]
    assert [tuple(o.shape) for o in batched] == shapes
    for a, b in zip(batched, alone):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_flip_ensemble_averages_the_image_and_its_mirror(fcn_run, images, tmp_path, cli):
    model = aekit.load(fcn_run).eval()
    x = torch.rand(3, 1, 24, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        both = FlipEnsemble(model)(x).recon
        by_hand = (model(x).recon + model(x.flip(-1)).recon.flip(-1)) / 2
        # the ensemble is mirror-symmetric: mirroring the input mirrors the output
        torch.testing.assert_close(FlipEnsemble(model)(x.flip(-1)).recon, both.flip(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(both, by_hand)
    assert (both - model(x).recon).abs().max() > 1e-4  # a different output from the plain model
    out, plain, default = tmp_path / "ens", tmp_path / "plain", tmp_path / "default"
    for folder, extra in ((out, ["--flip-ensemble"]), (plain, ["--no-flip-ensemble"]), (default, [])):
        r = cli("denoise", fcn_run, images / "gray.png", "--out", folder, *extra)
        assert r.code == 0, r.err
    pixels = np.asarray(opened(images / "gray.png"), dtype=np.float32) / 255
    with torch.no_grad():
        want = FlipEnsemble(model)(torch.from_numpy(pixels)[None, None]).recon[0, 0].numpy()
    got = np.asarray(opened(out / "gray.png"), dtype=np.float32) / 255
    assert np.abs(got - want).max() <= 1 / 255 + 1e-6  # the file holds the ensemble, to 8-bit rounding
    assert not np.array_equal(got, np.asarray(opened(plain / "gray.png"), dtype=np.float32) / 255)
    # the run trained with flips (hflip auto: the Olivetti faces), so its default is the ensemble
    assert np.array_equal(got, np.asarray(opened(default / "gray.png"), dtype=np.float32) / 255)



def test_a_files_added_noise_is_the_same_whichever_files_come_with_it(fcn_run, images, tmp_path):
    """One generator ran across the files: a file's noise (and so its output) depended on the files before it."""
    alone = denoise_files(fcn_run, [str(images / "gray.png")], tmp_path / "alone", add_noise="gaussian:0.1", seed=3)
    among = denoise_files(fcn_run, [images], tmp_path / "among", add_noise="gaussian:0.1", seed=3)
    mine = next(p for p in among["written"] if Path(p).name == "gray.png")
    assert np.array_equal(np.asarray(opened(alone["written"][0])), np.asarray(opened(mine)))
    other = denoise_files(fcn_run, [str(images / "gray.png")], tmp_path / "other", add_noise="gaussian:0.1", seed=4)
    assert not np.array_equal(np.asarray(opened(alone["written"][0])), np.asarray(opened(other["written"][0])))


def test_denoise_reads_denoises_and_writes_a_chunk_at_a_time_with_the_same_result(fcn_run, images, tmp_path,
                                                                                  monkeypatch):
    """A folder of photos is never all in memory: the outputs, the seeded noise and the grid are those of one pass."""
    import aekit.inference

    whole = denoise_files(fcn_run, [images], tmp_path / "whole", add_noise="gaussian:0.1", seed=3)
    monkeypatch.setattr(aekit.inference, "CHUNK_VALUES", 1)  # every image a chunk of its own
    reads, writes = [], []
    real_read, real_write = aekit.inference.read_image, aekit.inference.write_image
    monkeypatch.setattr(aekit.inference, "read_image", lambda path: (reads.append(path), real_read(path))[1])
    monkeypatch.setattr(aekit.inference, "write_image", lambda *a, **k: (writes.append(len(reads)), real_write(*a, **k)))
    chunked = denoise_files(fcn_run, [images], tmp_path / "chunked", add_noise="gaussian:0.1", seed=3)
    assert writes == list(range(1, len(reads) + 1))  # each written before the next is read
    assert len(chunked["written"]) == len(whole["written"]) == 6
    for a, b in zip(sorted(whole["written"]), sorted(chunked["written"])):
        assert np.array_equal(np.asarray(opened(a)), np.asarray(opened(b))), b
    assert np.array_equal(np.asarray(opened(whole["grid"])), np.asarray(opened(chunked["grid"])))


@pytest.mark.slow
def test_denoise_as_a_real_process(fcn_run, images, tmp_path):
    r = aekit_process("denoise", fcn_run, images / "gray.png", "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert "Wrote 1 denoised images" in r.stdout


@pytest.mark.parametrize("model_channels, image_channels", [(1, 3), (3, 1), (1, 1), (3, 3)])
def test_denoise_keeps_the_files_colours_whatever_the_models_channels(model_channels, image_channels):
    """A grayscale model denoises each colour channel as an image of its own (the colours stay); a
    colour model takes a gray image as three equal channels and gives back their mean."""
    from aekit.inference import reconstruct_channels
    torch.manual_seed(0)
    model = aekit.create_model("fcn", in_channels=model_channels, channels=[4, 4], code_length=4).eval()
    x = torch.rand(image_channels, 24, 40)
    (y,) = reconstruct_channels(model, [x])
    assert y.shape == x.shape
    if model_channels == 1:
        for c in range(image_channels):  # channel c alone, through the model
            torch.testing.assert_close(y[c:c + 1], reconstruct(model, [x[c:c + 1]])[0])
    elif image_channels == 1:
        torch.testing.assert_close(y, reconstruct(model, [x.expand(3, -1, -1)])[0].mean(0, keepdim=True))


def test_a_note_when_the_images_are_far_from_the_size_the_model_learnt(fcn_run, images, tmp_path, cli):
    """The fcn learnt whole faces at 64x64: images more than 1.5x off that size are likely at
    another scale, and denoise says so once; a model that learnt windows at the images' own scale does not."""
    from aekit.inference import scale_note

    r = cli("denoise", fcn_run, images, "--out", tmp_path / "out")
    assert r.code == 0, r.err
    note = next(line for line in r.out.splitlines() if line.startswith("note: "))
    assert "learnt whole images at 64x64; 5 of these 6 images are of quite another size (e.g. " in note
    assert "train a model at their size (aekit train ... --size " in note
    r = cli("denoise", fcn_run, images / "x.bmp", "--out", tmp_path / "out2")
    assert r.code == 0 and "note:" not in r.out  # 64x64
    model = aekit.create_model("unet")
    big = [torch.rand(1, 64, 64)]
    for pre, noted in [({"size": [32, 32], "fit": "resize"}, True), ({"size": [32, 32], "fit": "tiles"}, False),
                       ({"size": [32, 32], "fit": "resize", "crop": 16}, False), ({}, False)]:
        model.preprocess = pre
        assert (scale_note(model, big, None, "run") is not None) == noted, pre
    model.preprocess = {"size": [32, 32], "fit": "resize"}
    assert "(e.g. image 0, 64x64)" in scale_note(model, big, None, "run")
    tiny = scale_note(model, [torch.rand(1, 6, 5)], None, "run")  # too small to train a unet at: resize only
    assert "this image is of quite another size (e.g. image 0, 6x5)" in tiny and tiny.endswith(": resize them to 32x32")
    conv = aekit.create_model("conv")  # a fixed-size model resizes every image to its size: no scale to lose
    conv.preprocess = {"size": [32, 32], "fit": "resize"}
    assert scale_note(conv, big, None, "run") is None


def test_an_out_folder_inside_the_inputs_is_not_read_back_and_inputs_are_never_written_over(fcn_run, images, cli):
    """denoise IN --out IN/clean twice: the second run denoises the 6 inputs again, not the first run's outputs;
    --out IN (the inputs' own folder) is refused before anything is written, even with --overwrite."""
    for extra in ([], ["--overwrite"]):
        r = cli("denoise", fcn_run, images, "--out", images / "clean", *extra)
        assert r.code == 0 and "Wrote 6 denoised images" in r.out, r.err
    assert not (images / "clean" / "clean").exists()
    before = (images / "gray.png").read_bytes()
    err = cli("denoise", fcn_run, images, "--out", images, "--overwrite").error
    assert err.startswith(f"aekit: error: --out {images}: would write over the input {images}/") and "another folder" in err
    assert (images / "gray.png").read_bytes() == before


def test_denoise_keeps_colour_profiles_and_lossless_webp_and_says_when_pages_are_left_out(fcn_run, tmp_path, cli):
    from PIL import ImageCms

    g = np.random.default_rng(0)
    rgb = Image.fromarray((g.random((40, 48, 3)) * 255).astype(np.uint8))
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    folder = tmp_path / "in"
    folder.mkdir()
    rgb.save(folder / "p.png", icc_profile=profile, dpi=(300, 300))
    rgb.save(folder / "l.webp", lossless=True)
    rgb.save(folder / "pages.tif", save_all=True, append_images=[rgb.rotate(90)])
    r = cli("denoise", fcn_run, folder, "--out", tmp_path / "out")
    assert r.code == 0, r.err
    assert "note: 1 file(s) hold several pages or frames (e.g. pages.tif, 2); only the first of each" in r.out
    out = tmp_path / "out"
    assert opened(out / "p.png").info["icc_profile"] == profile and round(opened(out / "p.png").info["dpi"][0]) == 300
    assert (out / "l.webp").read_bytes()[12:16] == b"VP8L"  # lossless, as the original


def test_memory_running_out_while_denoising_is_one_line_naming_the_runs_model_json(fcn_run, images, tmp_path, cli,
                                                                                   monkeypatch):
    """A preprocess.size of 100000x100000 was torch's 'RuntimeError: [enforce fail at alloc_cpu.cpp:127] ...'."""
    import aekit.inference

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: not enough memory: you tried "
                           "to allocate 400000000000 bytes.")

    monkeypatch.setattr(aekit.inference, "reconstruct_channels", out_of_memory)
    size = "x".join(map(str, aekit.load(fcn_run).preprocess["size"]))
    assert cli("denoise", fcn_run, images / "gray.png", "--out", tmp_path / "o").error == (
        f"aekit: error: {fcn_run / 'model.json'}: out of memory running its model (working size preprocess.size {size}) "
        f"on 1 image(s) from {images / 'gray.png'}: free memory, or restore a damaged or hand-edited model.json")
