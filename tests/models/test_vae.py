"""The variational autoencoder and the sparse penalty: loss parts, determinism, reference configs."""

import pytest
import torch

import aekit
from aekit.configs import HERE as CONFIGS  # the shipped configs (not the checkout's link, a file on Windows)
from aekit.models import create_model
from aekit.models.losses import reconstruction_loss


def test_vae_loss_is_reconstruction_plus_beta_kl(tiny_images):
    x = tiny_images[:4]
    model = create_model("vae", beta=2.0).eval()
    with torch.no_grad():
        out = model(x)
    parts = out.parts
    assert set(parts) == {"reconstruction", "kl"}
    assert torch.all(parts["kl"] >= 0)
    assert torch.allclose(out.per_sample, parts["reconstruction"] + 2.0 * parts["kl"])
    # bce from the logits equals the generic bce of the reconstruction
    assert torch.allclose(parts["reconstruction"], reconstruction_loss(out.recon, x, "bce"), rtol=1e-3)
    assert torch.equal(out.code, model.encode(x))  # the code is the mean


def test_vae_samples_in_training_and_is_reproducible_from_the_seed(tiny_images):
    x = tiny_images[:4]
    model = create_model("vae")
    with torch.no_grad():
        torch.manual_seed(3)
        a = model(x).recon
        torch.manual_seed(3)
        b = model(x).recon
        c = model(x).recon
        model.eval()
        d, e = model(x).recon, model(x).recon
    assert torch.equal(a, b) and not torch.equal(b, c)  # training: z = mu + sigma * eps, eps seeded
    assert torch.equal(d, e)  # eval: z = mu


def test_vae_config_checks_the_code_length():
    with pytest.raises(aekit.ConfigError, match="multiple of 64"):
        create_model("vae", code_length=100, decoder_input="reshape")


def test_sparsity_adds_alpha_times_the_l1_norm_of_each_code(tiny_images):
    x = tiny_images[:4]
    for name in ("conv", "fcn"):
        torch.manual_seed(0)
        plain = create_model(name).eval()
        torch.manual_seed(0)
        sparse = create_model(name, sparsity=0.01).eval()
        with torch.no_grad():
            p, s = plain(x), sparse(x)
        assert "sparsity" not in p.parts
        assert torch.allclose(s.parts["sparsity"], 0.01 * s.code.abs().sum(1))
        assert torch.allclose(s.per_sample, p.per_sample + s.parts["sparsity"])


def test_reference_configs_load():
    sparse = aekit.load_config(CONFIGS / "reference-sparse.toml")
    assert sparse.model.sparsity == 0.01 and sparse.noise.sigma == 0.2 and sparse.train.reference_loop
    vae = aekit.load_config(CONFIGS / "reference-vae.toml")
    assert (vae.model.name, vae.model.code_length, vae.model.loss) == ("vae", 1024, "bce")
    assert (vae.train.epochs, vae.train.batch_size) == (800, 100)
    model = create_model(vae.model)
    assert model.start_shape == (16, 8, 8)
    assert [m.conv.out_channels for m in model.decoder if hasattr(m, "conv")] == [128, 128, 32, 1]


def test_negative_sparsity_is_an_error():
    with pytest.raises(aekit.ConfigError, match="model.sparsity"):
        aekit.config.replace(aekit.Config(), **{"model.sparsity": -1.0})


def test_code_statistics_in_the_run_folder(tiny_run):
    import csv
    import json

    rows = list(csv.DictReader((tiny_run.out / "history.csv").read_text().splitlines()))
    assert all(0 <= float(r["code_small"]) <= 1 for r in rows)
    metrics = json.loads((tiny_run.out / "metrics.json").read_text())
    assert 0 <= metrics["train"]["code_small"] <= 1 and 0 <= metrics["heldout"]["code_small"] <= 1
    assert (tiny_run.out / "code_histogram.png").stat().st_size > 0
    assert "code_histogram.png" in (tiny_run.out / "report.html").read_text()


def test_the_default_vae_has_a_small_latent_projected_to_the_decoder():
    model = create_model("vae")
    assert model.config.code_length == 16 and model.to_map.dense is not None and model.start_shape == (16, 8, 8)


def test_the_kl_weight_rises_over_the_warm_up_and_evaluation_uses_the_whole_beta(tiny_images):
    x = tiny_images[:4]
    model = create_model("vae", kl_warmup=4, beta=2.0)
    weights = []
    for _ in range(6):
        torch.manual_seed(0)
        out = model(x)
        weights.append(float(((out.per_sample - out.parts["reconstruction"]).sum() / out.parts["kl"].sum()).detach()))
    assert weights == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0], rel=1e-3)
    assert int(model.steps) == 6 and "steps" in model.state_dict()  # saved: a resumed run keeps the ramp
    model.eval()
    out = model(x)
    assert torch.allclose(out.per_sample, out.parts["reconstruction"] + 2.0 * out.parts["kl"])


def test_a_vae_is_scored_as_a_generative_model(tiny_images):
    model = create_model("vae").eval()
    h = aekit.evaluate(model, tiny_images)
    assert h["nelbo"] == pytest.approx(h["reconstruction"] + h["kl"])
    assert h["bits_per_dim"] == pytest.approx(h["nelbo"] / (32 * 32 * 0.6931471805599453))
    assert 0 <= h["active_units"] <= 32
    assert "nelbo" not in aekit.evaluate(create_model("conv").eval(), tiny_images)


def test_a_vae_run_writes_samples_an_interpolation_and_the_generative_figures(make_run):
    run = make_run(**{"model.name": "vae", "model.encoder_channels": [4, 4, 4], "model.decoder_channels": [4, 4, 4],
                      "train.epochs": 1})
    assert (run.out / "samples.png").is_file() and (run.out / "interpolation.png").is_file()
    h = run.metrics["heldout"]
    assert {"nelbo", "bits_per_dim", "kl", "reconstruction", "active_units"} <= set(h)
    history = (run.out / "history.csv").read_text().splitlines()
    assert "heldout_nelbo" in history[0] and "heldout_active_units" in history[0]
    assert "samples.png" in (run.out / "report.html").read_text()
