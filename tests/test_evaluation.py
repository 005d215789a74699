"""`aekit evaluate`: the same seeded noisy images for every method, the table, the files."""

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.baselines import ALL, BASELINES, applicable
from aekit.configs import HERE as CONFIGS  # the shipped configs (not the checkout's link, a file on Windows)
from aekit.evaluation import evaluate_run
from aekit.noise import NoiseConfig
from aekit.pipeline import prepare_data
from helpers import FakeClock


@pytest.fixture(scope="module")
def denoise_run(make_run):
    return make_run(CONFIGS / "reference-denoising.toml", **{
        "train.epochs": 1, "data.test_fraction": 0.2, "train.reference_loop": False,
        "model.encoder_channels": [4, 4], "model.encoder_strides": [2, 1], "model.decoder_channels": [4],
        "model.decoder_strides": [2]}).out


def test_evaluate_with_every_baseline(denoise_run):
    report = evaluate_run(denoise_run, baselines=ALL, limit=3)
    methods = [r["method"] for r in report["results"]]
    assert methods == ["noisy input", "aekit (conv)", *ALL]
    assert report["images"] == 3 and report["split"] == "random" and report["seen_in_training"] == 0
    noisy = report["results"][0]
    for r in report["results"]:
        assert 0 < r["psnr"] < 60 and -1 <= r["ssim"] <= 1
    # a classical denoiser improves on the noisy input it was given
    blur = next(r for r in report["results"] if r["method"] == "blur")
    assert blur["psnr"] > noisy["psnr"] + 3
    assert report["best_baseline"] in ALL
    saved = json.loads((denoise_run / "evaluation.json").read_text())
    assert saved["results"] == report["results"]
    assert (denoise_run / "evaluation.png").stat().st_size > 0


def test_every_method_sees_the_same_noisy_images(denoise_run):
    a = evaluate_run(denoise_run, baselines=("blur",), limit=4, seed=5, write=False)
    b = evaluate_run(denoise_run, baselines=("blur",), limit=4, seed=5, write=False)
    c = evaluate_run(denoise_run, baselines=("blur",), limit=4, seed=6, write=False)
    strip = lambda rep: [{k: v for k, v in r.items() if k != "seconds_per_image"} for r in rep["results"]]
    assert strip(a) == strip(b)
    assert strip(a)[0]["psnr"] != strip(c)[0]["psnr"]
    spec = evaluate_run(denoise_run, limit=4, seed=5, write=False, noise="mask:0.3")  # a SPEC as the CLI takes it
    typed = evaluate_run(denoise_run, limit=4, seed=5, write=False, noise=NoiseConfig(kind="mask", fraction=0.3))
    assert strip(spec) == strip(typed) and spec["noise"] == "mask:0.3"


def test_subject_split_and_seen_images_are_reported(denoise_run):
    report = evaluate_run(denoise_run, split="subject", limit=80, write=False)
    assert report["split"] == "subject" and report["images"] == 80
    # the run trained on the random split's first 320 faces: some of people 32-39 are among them
    assert report["seen_in_training"] > 0


def test_evaluate_cli_prints_a_table_and_errors_are_one_line(denoise_run, tmp_path, cli):
    r = cli("evaluate", denoise_run, "--baselines", "blur,pca", "--limit", "2", "--noise", "mask:0.2")
    assert r.code == 0, r.err
    assert "noisy input" in r.out and "blur" in r.out and "pca" in r.out and "mask:0.2" in r.out
    for args, msg in [((denoise_run, "--baselines", "bm4d"), "--baselines: unknown baseline 'bm4d' (did you mean 'bm3d'?)"),
                      ((tmp_path,), "no config.toml"),
                      ((denoise_run, "--noise", "gaussian:x"), "--noise 'gaussian:x': 'x' is not a number"),
                      ((denoise_run, "--limit", "0"), "--limit must be at least 1"),
                      ((denoise_run, "--seed", "-1"), "--seed must lie in [0, 2147483647], got -1")]:
        assert msg in cli("evaluate", *args).error


def test_all_baselines_are_those_that_apply_and_a_denoiser_is_no_rival_to_a_code(denoise_run, cli):
    """--baselines (all) with noise: every one; without noise (a reconstruction): PCA, since a denoiser
    handed clean images hands them back (100+ dB); naming one there is an error."""
    noisy = evaluate_run(denoise_run, baselines="all", limit=2, write=False, noise=NoiseConfig(kind="gaussian", sigma=0.2))
    assert [r["method"] for r in noisy["results"]][2:] == list(ALL)
    clean = evaluate_run(denoise_run, baselines="all", limit=2, write=False, noise=NoiseConfig())
    assert [r["method"] for r in clean["results"]] == ["aekit (conv)", "pca"] and clean["best_baseline"] == "pca"
    named = evaluate_run(denoise_run, baselines="pca", limit=2, write=False, noise=NoiseConfig())  # a string, as --baselines
    assert [r["method"] for r in named["results"]] == ["aekit (conv)", "pca"]
    assert applicable("blur, bm3d", denoising=True) == applicable(("blur", "bm3d"), denoising=True) == ("blur", "bm3d")
    r = cli("evaluate", denoise_run, "--noise", "none", "--baselines", "pca,bm3d", "--limit", "2")
    assert r.error == ("aekit: error: --baselines: bm3d is a denoiser, and this evaluation corrupts nothing (a "
                       "reconstruction): compare with pca, or give --noise, e.g. gaussian:0.2")


def test_the_baselines_are_one_table():
    assert ALL == tuple(BASELINES) == ("blur", "tv", "wavelet", "nlmeans", "bm3d", "pca-wiener", "pca")


def test_fcn_denoises_images_larger_than_its_training_size():
    model = aekit.create_model("fcn")
    for shape in [(1, 1, 32, 32), (1, 1, 97, 130), (2, 1, 64, 48)]:
        with torch.no_grad():
            out = model(torch.rand(shape))
        assert out.recon.shape == shape


def test_flip_ensemble_is_scored_under_its_own_name(denoise_run):
    plain = evaluate_run(denoise_run, limit=4, write=False)
    both = evaluate_run(denoise_run, limit=4, write=False, flip_ensemble=True)
    assert [r["method"] for r in both["results"]] == ["noisy input", "aekit (conv, flip ensemble)"]
    assert (both["model"], both["flip_ensemble"], plain["model"], plain["flip_ensemble"]) == (
        "aekit (conv, flip ensemble)", True, "aekit (conv)", False)  # which row is the model, and how it ran
    assert both["results"][0] == plain["results"][0]  # the same noisy images
    assert both["results"][1]["psnr"] != plain["results"][1]["psnr"]


def test_a_denoiser_trained_with_flips_is_scored_and_run_as_its_flip_ensemble(denoise_run, make_run, tmp_path, cli):
    from aekit.inference import flips_by_default

    flipped = make_run(CONFIGS / "reference-denoising.toml", **{
        "train.epochs": 1, "data.test_fraction": 0.2, "train.reference_loop": False, "train.hflip": True,
        "model.encoder_channels": [4, 4], "model.encoder_strides": [2, 1], "model.decoder_channels": [4],
        "model.decoder_strides": [2]}).out
    assert flips_by_default(flipped) and not flips_by_default(denoise_run)
    auto = evaluate_run(flipped, limit=4, write=False)
    assert [r["method"] for r in auto["results"]] == ["noisy input", "aekit (conv, flip ensemble)"]
    off = evaluate_run(flipped, limit=4, write=False, flip_ensemble=False)
    assert off["results"][1]["method"] == "aekit (conv)" and off["results"][1]["psnr"] != auto["results"][1]["psnr"]
    # without noise (a reconstruction: one code per image) the output is the plain model's
    clean = evaluate_run(flipped, limit=4, write=False, noise=NoiseConfig())
    assert [r["method"] for r in clean["results"]] == ["aekit (conv)"]
    r = cli("evaluate", flipped, "--limit", "2", "--no-flip-ensemble")
    assert r.code == 0 and "aekit (conv) " in r.out and "flip ensemble" not in r.out


def test_evaluate_on_images_the_run_never_saw(denoise_run, tmp_path, cli):
    import numpy as np

    yy, xx = np.mgrid[0:40, 0:40] / 39
    faces = np.stack([0.5 + 0.3 * np.sin(6 * xx * (1 + i % 3) + i) * np.cos(5 * yy) for i in range(12)])
    np.save(tmp_path / "other.npy", faces.astype(np.float32))
    own = (denoise_run / "evaluation.json").read_bytes()
    r = cli("evaluate", denoise_run, "--data", tmp_path / "other.npy", "--baselines", "blur,pca", "--out",
            tmp_path / "other.json")
    assert r.code == 0, r.err
    assert (denoise_run / "evaluation.json").read_bytes() == own  # the run's own evaluation stays
    assert json.loads((tmp_path / "other.json").read_text())["images"] == 12 and (tmp_path / "other.png").is_file()
    assert f"Wrote {tmp_path / 'other.json'} and other.png" in r.out
    again = cli("evaluate", denoise_run, "--data", tmp_path / "other.npy", "--out", tmp_path / "other.json").error
    assert again.endswith("already exists (add --overwrite to replace it)")
    assert "give a name ending in .json" in cli("evaluate", denoise_run, "--out", tmp_path / "o.txt").error
    rep = evaluate_run(denoise_run, data=tmp_path / "other.npy", baselines=("blur",), write=False)
    assert rep["images"] == 12 and rep["images_from"] == str(tmp_path / "other.npy") and rep["seen_in_training"] == 0
    assert rep["working_size"] == [32, 32]  # the conv model's working size: fitted as in training
    assert [x["method"] for x in rep["results"]] == ["noisy input", "aekit (conv)", "blur"]
    assert "12 images (" in r.out
    np.save(tmp_path / "ambiguous.npy", np.random.default_rng(0).random((4, 3, 40, 3)).astype(np.float32) * 2)
    error = cli("evaluate", denoise_run, "--data", tmp_path / "ambiguous.npy").error  # names options evaluate has
    assert "or set --rescale to map" in error
    error = cli("evaluate", denoise_run, "--data", tmp_path / "ambiguous.npy", "--rescale").error
    assert "is ambiguous" in error and error.endswith("give --layout nhwc or nchw")
    r = cli("evaluate", denoise_run, "--data", tmp_path / "ambiguous.npy", "--layout", "nchw", "--rescale")
    assert r.code == 0 and "4 images (" in r.out, r.err
    r = cli("data", tmp_path / "ambiguous.npy", "--layout", "nhwc", "--rescale", "--out", tmp_path / "written")
    assert r.code == 0 and "Wrote 4 images (3x40)" in r.out, r.err
    lfw = evaluate_run(denoise_run, data="lfw-subset", write=False)  # another face collection, built in
    assert lfw["images"] == 100 and lfw["images_from"] == "lfw-subset" and lfw["working_size"] == [32, 32]


def test_a_run_trained_on_its_one_image_scores_other_images(make_run, tmp_path_factory, tmp_path, cli):
    import numpy as np

    folder = tmp_path_factory.mktemp("one")
    faces = aekit.load_data("olivetti").images
    aekit.write_image(folder / "f0.png", faces[0].permute(1, 2, 0).numpy())
    run = make_run(**{"data.source": str(folder), "data.test_fraction": 0.0, "train.epochs": 1,
                      "model.encoder_channels": [4, 4, 4, 4], "model.decoder_channels": [4, 4, 4]}).out
    np.save(tmp_path / "other.npy", faces[10:15, 0].numpy())
    # the default split of a run trained on everything (a fifth held out) cannot divide 1 image: none is needed
    r = cli("evaluate", run, "--data", tmp_path / "other.npy", "--baselines", "pca")
    assert r.code == 0 and "5 images (" in r.out, r.err
    assert "leaves no training images" in cli("evaluate", run).error  # its own held-out images: there are none


def test_evaluate_a_folder_of_mixed_sizes_with_a_bad_file(denoise_run, make_run, tmp_path, cli):
    """--data on a folder: an unreadable file stops it with a pointer to --skip-bad; images of different
    sizes need --size for a model that runs at any size (the conv model only takes its own), fitted as
    the run was or as --fit says; a denoiser trains on such a folder's native-resolution windows."""
    from PIL import Image

    from helpers import picture

    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, (h, w) in enumerate([(20, 28)] * 3 + [(24, 24)] * 3):
        Image.fromarray(picture(i, h, w, colour=False)).save(folder / f"img-{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    unet = make_run(**{"model.name": "unet", "model.channels": 4, "model.levels": 2, "model.blocks": 1,
                       "model.code_length": 16, "model.input_size": [16, 16], "data.size": [16, 16], "train.epochs": 1,
                       "noise.kind": "gaussian", "noise.sigma": 0.1}).out
    err = cli("evaluate", unet, "--data", folder).error
    assert "broken.png: not an image" in err and err.endswith("(--skip-bad skips unreadable files)")
    err = cli("evaluate", unet, "--data", folder, "--skip-bad").error
    assert "--data " in err and "images differ in size" in err and err.endswith(
        "give a working size (--size HxW; with --fit tiles a denoiser learns from every window of it at the native "
        "resolution)")
    for size in ("big", "16x"):
        assert cli("evaluate", unet, "--data", folder, "--skip-bad", "--size", size).error == (
            f"aekit: error: --size: '{size}' is not a size HxW (e.g. 64x64, or 64)")
    assert cli("evaluate", unet, "--data", folder, "--skip-bad", "--size", "0x8").error.endswith(
        "--size must be positive, got 0x8")
    r = cli("evaluate", unet, "--data", folder, "--skip-bad", "--size", "24x20", "--baselines", "blur")
    assert r.code == 0, r.err
    rep = json.loads((unet / "evaluation.json").read_text())
    assert rep["images"] == 6 and rep["working_size"] == [24, 20]
    assert len(rep["skipped"]) == 1 and rep["skipped"][0].startswith(str(folder / "broken.png"))
    assert f"skipped {rep['skipped'][0]}" in r.out and r.out.rstrip().endswith("; skipped 1 unreadable files")
    assert [x["method"] for x in rep["results"]] == ["noisy input", "aekit (unet, flip ensemble)", "blur"]
    for option in (["--size", "20x20"], ["--fit", "window"], ["--layout", "nhwc"], ["--rescale"]):  # without --data
        assert cli("evaluate", unet, *option).error == (f"aekit: error: {option[0]}: applies to the images of --data (a "
                                                        "folder or array to score); the run's own held-out images "
                                                        "are scored as it was trained")
    windows = cli("evaluate", unet, "--data", folder, "--skip-bad", "--size", "20x20", "--fit", "window")
    assert windows.code == 0, windows.err  # the centre 20x20 of every image, none resampled
    assert json.loads((unet / "evaluation.json").read_text())["working_size"] == [20, 20]
    err = cli("evaluate", unet, "--data", folder, "--skip-bad", "--size", "24x24", "--fit", "window").error
    assert err.endswith("20x28 is smaller than the working size 24x24, which --fit window cannot fill without "
                        "enlarging (use --fit pad or resize, or a smaller --size)")
    trained = make_run(**{"model.name": "unet", "model.channels": 4, "model.levels": 2, "model.blocks": 1,
                          "model.code_length": 16, "data.source": str(folder), "data.skip_bad": True,
                          "model.input_size": [20, 20], "data.size": [20, 20], "data.fit": "window",
                          "train.crop": 12, "train.epochs": 1, "noise.kind": "gaussian", "noise.sigma": 0.1})
    assert 'fit = "window"' in (trained.out / "config.toml").read_text()  # native-resolution windows
    assert trained.metrics["heldout"]["psnr"] > 0
    err = cli("evaluate", denoise_run, "--data", folder, "--skip-bad", "--size", "24x20").error
    assert err.endswith("the conv model works at its training size, 32x32, only (leave --size out)")


def test_a_run_leads_with_the_comparison(make_run, tmp_path):
    from aekit.report.notes import comparison_line

    run = make_run(**{"model.name": "hybrid", "model.code_length": 16, "train.epochs": 2, "train.compare": True})
    c = run.metrics["comparison"]
    assert c["baseline"]["method"] == "pca" and c["images"] == 80 and c["aekit"]["method"] == "aekit (hybrid)"
    assert comparison_line(c).startswith(f"Held-out (80 images): aekit (hybrid) {c['aekit']['psnr']:.2f} dB, SSIM ")
    assert c["margin_db"] == pytest.approx(c["aekit"]["psnr"] - c["baseline"]["psnr"])
    assert (run.out / "evaluation.json").is_file()
    text = (run.out / "report.html").read_text()
    assert text.index(comparison_line(c).split(":")[0]) < text.index("<h2>Metrics</h2>")  # the first lines
    assert run.metrics["selection"]["chosen_epoch"] in (0, 1, 2)


def test_the_summary_says_the_held_out_line_is_the_one_pass_when_the_comparison_scored_the_ensemble(tmp_path, cli):
    (tmp_path / "dn.toml").write_text('[model]\nname = "fcn"\nchannels = [4, 8]\ncode_length = 4\n')
    r = cli("train", "--config", tmp_path / "dn.toml", "--noise", "gaussian:0.2", "--size", "16x16", "--epochs", "1",
            "--no-select", "--test-fraction", "0.05", "--out", tmp_path / "run", "--no-progress")
    assert r.code == 0, r.err  # the Olivetti faces: trained with flips (hflip auto), so scored as the ensemble
    assert "Held-out (20 images): aekit (fcn, flip ensemble)" in r.out
    assert "Held-out (20 images, the model's one pass): loss per sample" in r.out
    compared = json.loads((tmp_path / "run" / "metrics.json").read_text())["comparison"]
    assert compared["aekit"]["flip_ensemble"] is True and compared["images"] == 20


def test_a_failed_comparison_warns_and_keeps_the_run(tmp_path, monkeypatch):
    """The comparison runs after the training: if it fails, the run still ends complete, and says why."""
    import aekit.run

    def broken(*a, **k):
        raise MemoryError("out of memory")
    monkeypatch.setattr(aekit.run, "evaluate_run", broken)
    said = []
    cfg = aekit.Config()
    cfg = aekit.config.replace(cfg, **{"model.name": "hybrid", "model.code_length": 8, "train.epochs": 1,
                                       "train.device": "cpu"})
    run = aekit.train(cfg, out=tmp_path / "run", progress=False, log=said.append)
    assert run.metrics["comparison_error"] == "MemoryError: out of memory" and "comparison" not in run.metrics
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["comparison_error"] == run.metrics["comparison_error"]
    assert (tmp_path / "run" / "report.html").is_file()
    assert any(s.startswith("warning: the end-of-run comparison failed (MemoryError: out of memory); ") for s in said)


def test_ctrl_c_in_the_comparison_completes_the_run_without_it(tmp_path, monkeypatch):
    """The comparison can take minutes (BM3D): Ctrl-C there skips it and still completes the run, then stops
    (it left a run with a model but no metrics.json, so read as unfinished)."""
    import aekit.run

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(aekit.run, "evaluate_run", interrupted)
    said = []
    cfg = aekit.config.replace(aekit.Config(), **{"model.name": "hybrid", "model.code_length": 8, "train.epochs": 1,
                                                  "train.device": "cpu"})
    with pytest.raises(KeyboardInterrupt):
        aekit.train(cfg, out=tmp_path / "run", progress=False, log=said.append)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["comparison_error"] == "interrupted" and "comparison" not in metrics
    assert (tmp_path / "run" / "report.html").is_file() and aekit.RunFolder(tmp_path / "run").metrics() == metrics
    assert f"Interrupted in the end-of-run comparison: the run is completed without it (`aekit evaluate " \
           f"{tmp_path / 'run'} --baselines` runs it)" in said


def test_the_end_of_run_comparison_reads_no_image_again_and_scores_as_evaluate_does(tmp_path, monkeypatch):
    """The training holds its data: the comparison used to read the whole source again (20 s and 1.6 GB more for
    20,000 small images). Its figures are those of `aekit evaluate RUN` with the same baselines."""
    import numpy as np

    import aekit.evaluation
    import aekit.run

    np.save(tmp_path / "images.npy", np.random.default_rng(0).random((40, 16, 16), dtype=np.float32))
    read = []
    for module in (aekit.evaluation, aekit.run_folder):  # evaluate's reading, the run's own data (RunFolder.own_data)
        monkeypatch.setattr(module, "prepare_data", lambda cfg, **how: read.append(cfg) or prepare_data(cfg, **how))
    cfg = aekit.config.replace(aekit.Config(), **{"data.source": str(tmp_path / "images.npy"), "train.epochs": 1,
                                                  "train.device": "cpu", "noise.kind": "gaussian", "noise.sigma": 0.2,
                                                  "model.name": "unet"})
    run = aekit.train(cfg, out=tmp_path / "run", progress=False, log=lambda s: None)
    assert read == [] and run.metrics["comparison"]["baseline"]["method"]
    again = evaluate_run(tmp_path / "run", baselines=aekit.run.rivals(True), write=False, progress=False,
                         log=lambda s: None)
    assert len(read) == 1 and aekit.evaluation.comparison(again) == {
        k: v for k, v in run.metrics["comparison"].items() if k != "heldout_images"}


def test_the_comparison_on_a_sample_of_the_heldout_images_says_so(tmp_path, monkeypatch, cli):
    import numpy as np

    import aekit.run

    np.save(tmp_path / "images.npy", np.random.default_rng(0).random((40, 16, 16), dtype=np.float32))
    monkeypatch.setattr(aekit.run, "COMPARE_IMAGES", 4)  # what 500 is to a large held-out split
    r = cli("train", "--data", tmp_path / "images.npy", "--epochs", "1", "--out", tmp_path / "run", "--no-progress")
    assert r.code == 0, r.err
    c = json.loads((tmp_path / "run" / "metrics.json").read_text())["comparison"]
    assert (c["images"], c["heldout_images"]) == (4, 8)
    assert "Held-out (the first 4 of 8 images): aekit (conv)" in r.out, r.out


def test_a_slow_baseline_shows_its_progress_and_says_how_long_it_will_take(denoise_run, tmp_path, cli, monkeypatch):
    """bm3d takes about 0.9 s a 32x32 colour image: 4000 held-out images were an hour without a sign. On a terminal a
    bar over each baseline's images (none in a log); after the first images, one note with the estimate and what
    shortens it, before the table."""
    clock = FakeClock(monkeypatch)
    clock.slow_baseline(monkeypatch, seconds=5.0)
    r = cli("evaluate", denoise_run, "--baselines", "slow,blur", "--limit", "20", "--out", tmp_path / "a.json")
    assert r.code == 0, r.err
    note = ("note: slow takes about 5 s an image: about 100 seconds for 20 images (--limit N scores the first N "
            "images; a --baselines list without slow skips it)")
    assert r.out.count("note: ") == 1 and r.out.index(note) < r.out.index("method")  # blur: quick, nothing to say
    assert "\r" not in r.err and "image/s" not in r.err and "s/image" not in r.err  # a log: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    r = cli("evaluate", denoise_run, "--baselines", "slow,blur", "--limit", "20", "--out", tmp_path / "b.json")
    assert r.code == 0 and "\r" in r.err and "slow: " in r.err and "/20 [" in r.err and "blur: " in r.err
    assert "model: " in r.err  # the model's own pass too (photos of any size can take long)
    r = cli("evaluate", denoise_run, "--baselines", "slow", "--limit", "20", "--out", tmp_path / "c.json", "--no-progress")
    assert r.code == 0 and r.err == "" and note.split(" (")[0] in r.out
    said = []  # in Python: through log, the advice in the library's terms
    evaluate_run(denoise_run, baselines="slow", limit=2, write=False, progress=False, log=said.append)  # all in the first part
    evaluate_run(denoise_run, baselines="slow", limit=13, write=False, progress=False, log=said.append)
    assert said == ["note: slow takes about 5 s an image: about 65 seconds for 13 images (limit N scores the first N "
                    "images; baselines without slow skips it)"]


def test_a_slow_baseline_of_the_end_of_run_comparison_says_how_long_and_how_to_skip_it(tmp_path, monkeypatch, cli):
    import numpy as np

    import aekit.run

    np.save(tmp_path / "images.npy", np.random.default_rng(0).random((40, 16, 16), dtype=np.float32))
    clock = FakeClock(monkeypatch)
    clock.slow_baseline(monkeypatch, seconds=10.0)
    monkeypatch.setattr(aekit.run, "rivals", lambda denoising: ("slow",))
    r = cli("train", "--data", tmp_path / "images.npy", "--epochs", "1", "--out", tmp_path / "run", "--no-progress")
    assert r.code == 0 and r.err == "", r.err
    assert ("note: slow takes about 10 s an image: about 80 seconds for 8 images (in the end-of-run comparison; "
            "train.compare = false skips it)") in r.out


def test_evaluate_and_score_decode_only_the_heldout_files_of_an_unchanged_folder(tmp_path, cli, monkeypatch):
    """evaluate RUN and score RUN decoded the run's whole folder again to split it (20 s and 1.6 GB for 20,000 small
    images) and scored its held-out fifth. Now they decode only those, where data.json shows the folder unchanged
    (its names; held in memory, its files' bytes): the figures of decoding every file, as a run from before the
    files' digest still does, the same streamed; a file changed since is refused as before."""
    import os

    import aekit.data.folders
    from aekit.anomaly import heldout_threshold
    from helpers import make_folder

    root = make_folder(tmp_path / "pets", 20, size=(16, 16))
    runs = {s: tmp_path / s for s in ("off", "on")}
    for stream, run in runs.items():  # a streamed run is the run in memory, bit for bit
        aekit.train({"data": {"source": str(root), "size": [16, 16], "stream": stream, "workers": 0},
                     "model": {"encoder_channels": [4, 4], "encoder_strides": [2, 1], "decoder_channels": [4],
                               "decoder_strides": [2]}, "noise": {"kind": "gaussian", "sigma": 0.2},
                     "train": {"epochs": 1, "compare": False, "device": "cpu"}}, out=run, progress=False,
                    log=lambda s: None)
    own = prepare_data(aekit.RunFolder(runs["off"]).config())
    held_out = sorted(own.data.names[i] for i in own.test_index)
    decoded, load = [], aekit.data.folders.load_image
    monkeypatch.setattr(aekit.data.folders, "load_image",
                        lambda f, **how: decoded.append(os.path.relpath(f, root)) or load(f, **how))

    def evaluated(run, **how):
        decoded.clear()
        report = evaluate_run(run, write=False, **how)
        return [{k: v for k, v in r.items() if k not in ("seconds_per_image", "setting")} for r in report["results"]], \
            sorted(decoded)

    lazy, lazy_on = evaluated(runs["off"]), evaluated(runs["on"])
    assert lazy[1] == lazy_on[1] == held_out and len(held_out) == 4
    decoded.clear()
    assert heldout_threshold(runs["off"], aekit.load(runs["off"]), 0.9)[1] == 4 and sorted(decoded) == held_out
    subject = evaluated(runs["off"], split="subject")
    record = json.loads((runs["off"] / "data.json").read_text())
    (runs["off"] / "data.json").write_text(json.dumps({k: v for k, v in record.items() if k != "files_sha256"}))
    full = evaluated(runs["off"])
    assert full[1] == sorted(own.data.names) and lazy[0] == full[0] == lazy_on[0]
    assert subject[0] == evaluated(runs["off"], split="subject")[0] and len(subject[1]) < 20
    (runs["off"] / "data.json").write_text(json.dumps(record))
    trained_on = root / own.data.names[own.train_index[0]]
    Image.open(trained_on).save(trained_on, compress_level=0)  # other bytes, the same pixels: decoded, and passed
    assert evaluated(runs["off"]) == full
    Image.fromarray(255 - np.asarray(Image.open(trained_on))).save(trained_on)  # other pixels
    assert "other pixels, labels or order" in cli("evaluate", runs["off"]).error


def test_a_run_whose_data_is_not_here_scores_other_images_without_it(tiny_run, faces, tmp_path, cli):
    import shutil

    run = tmp_path / "moved"  # a run moved from another machine: its data is not here
    shutil.copytree(tiny_run.out, run)
    config = run / "config.toml"
    config.write_text(config.read_text().replace('source = "olivetti"', 'source = "C:\\\\Users\\\\ana\\\\faces"'))
    assert cli("evaluate", run).error.endswith("to score other images: aekit evaluate RUN --data PATH")
    r = cli("evaluate", run, "--data", faces[0])
    assert r.code == 0, r.err
    assert "6 images (" in r.out and "whether the model saw any of them in training is unknown" in r.out
    assert json.loads((run / "evaluation.json").read_text())["seen_in_training"] is None
    assert cli("evaluate", run, "--data", faces[0], "--baselines", "blur").error.endswith(
        "the baselines are set up on it")  # their training images are the run's
