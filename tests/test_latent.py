"""Using the codes: aekit encode / decode / sample / interpolate / map / score, and their errors."""

import csv

import numpy as np
import pytest
import torch

import aekit
from aekit import latent
from aekit.cli import main
from aekit.images import write_image
from aekit.models import create_model


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Six Olivetti faces as 64x64 PNGs in a folder, and a 32x32 noise image elsewhere."""
    folder = tmp_path_factory.mktemp("faces")
    data = aekit.load_data("olivetti")
    for i in range(6):
        write_image(folder / f"face{i}.png", data.images[i].permute(1, 2, 0).numpy())
    odd = tmp_path_factory.mktemp("odd")
    write_image(odd / "noise.png", np.random.default_rng(0).random((32, 32, 1)).astype(np.float32))
    return folder, odd / "noise.png"


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
    """An untrained small VAE saved as a model folder (sampling only needs a decoder and a prior)."""
    torch.manual_seed(0)
    model = create_model("vae", code_length=64, encoder_channels=(4, 4, 4), decoder_channels=(4, 4, 4))
    return aekit.save(model.eval(), tmp_path_factory.mktemp("vae") / "m", preprocess={"size": [32, 32], "channels": 1})


def test_encode_then_decode(tiny_run, faces, tmp_path, capsys):
    folder, _ = faces
    assert main(["encode", str(tiny_run.out), str(folder), "--out", str(tmp_path / "codes.npy")]) == 0
    codes = np.load(tmp_path / "codes.npy")
    files = (tmp_path / "codes.txt").read_text().splitlines()
    assert codes.shape == (6, tiny_run.model.config.code_length) and len(files) == 6
    assert files == sorted(files) and files[0].endswith("face0.png")
    # the codes are the model's codes of the images as training saw them
    x = torch.stack([aekit.load_image(f, size=(32, 32), channels=1) for f in files])
    with torch.no_grad():
        np.testing.assert_allclose(codes, tiny_run.model.encode(x).numpy(), rtol=1e-5, atol=1e-6)
    assert main(["decode", str(tiny_run.out), str(tmp_path / "codes.npy"), "--out", str(tmp_path / "dec")]) == 0
    pngs = sorted((tmp_path / "dec").glob("*.png"))
    assert [p.name for p in pngs][:1] == ["0000-face0.png"] and len(pngs) == 6
    pixels, info = aekit.read_image(pngs[0])
    assert pixels.shape == (32, 32, 1)


def test_sample_draws_from_the_prior(vae_folder, tmp_path):
    assert main(["sample", str(vae_folder), "-n", "5", "--out", str(tmp_path / "grid.png")]) == 0
    images = np.load(tmp_path / "grid.npy")
    assert images.shape == (5, 1, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert main(["sample", str(vae_folder), "-n", "5", "--out", str(tmp_path / "again.png")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), images)  # seeded


def test_interpolate_strip(vae_folder, faces, tmp_path):
    folder, _ = faces
    out = tmp_path / "strip.png"
    assert main(["interpolate", str(vae_folder), str(folder / "face0.png"), str(folder / "face1.png"),
                 "--steps", "4", "--out", str(out)]) == 0
    strip = np.load(tmp_path / "strip.npy")
    assert strip.shape == (6, 1, 32, 32)  # A, 4 decodings, B
    model = aekit.load(vae_folder)
    ends = latent.decode(model, latent.encode(model, torch.from_numpy(strip[[0, -1]])))
    np.testing.assert_allclose(strip[[1, -2]], ends.numpy(), atol=1e-5)  # t = 0 and 1 decode A and B


def test_map_pca_and_tsne(tiny_run, faces, tmp_path):
    assert main(["map", str(tiny_run.out), "--out", str(tmp_path / "map.png")]) == 0
    assert (tmp_path / "map.png").stat().st_size > 0
    drawn = latent.write_map(tiny_run.out, tmp_path / "t.png", source=str(faces[0]), method="tsne")
    assert drawn["coordinates"].shape == (6, 2) and drawn["images"] == 6


def test_score_flags_what_the_model_cannot_reconstruct(tiny_run, faces, tmp_path):
    folder, noise = faces
    out = tmp_path / "scores.csv"
    assert main(["score", str(tiny_run.out), str(folder), str(noise), "--quantile", "0.99", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["file"].endswith("noise.png") for r in rows] == [False] * 6 + [True]
    errors = [float(r["mse"]) for r in rows]
    assert errors[-1] > max(errors[:-1])
    assert rows[-1]["flag"] == "1"
    scores = latent.score(tiny_run.out, [folder], quantile=0.5)
    assert scores.heldout_images == tiny_run.metrics["heldout"]["images"] and scores.quantile == 0.5


def test_errors_are_one_line(tiny_run, vae_folder, faces, tmp_path, capsys):
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
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    np.save(tmp_path / "bad.npy", np.zeros((2, 7), dtype=np.float32))
    assert main(["decode", str(tiny_run.out), str(tmp_path / "bad.npy"), "--out", str(tmp_path / "d")]) == 2
    assert "do not fit" in capsys.readouterr().err
