import math

import pytest
import torch

import aekit
from aekit.models.base import reconstruction_loss
from aekit.train import batch_starts, fit


def test_l2_loss_is_half_the_summed_squared_error():
    """tf.nn.l2_loss(output - input) of one sample, by hand."""
    recon = torch.tensor([[[[0.5, 1.0], [0.0, 0.25]]]])
    target = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    # differences 0.5, 0.5, -1, 0 -> squares 0.25 + 0.25 + 1 + 0 = 1.5 -> half = 0.75
    assert float(reconstruction_loss(recon, target, "l2")[0]) == pytest.approx(0.75)
    assert float(reconstruction_loss(recon, target, "mse")[0]) == pytest.approx(1.5 / 4)


def test_psnr_loss_is_minus_each_images_psnr_and_its_batch_mean_minus_the_reported_psnr():
    from aekit.metrics import image_metrics, psnr

    g = torch.Generator().manual_seed(0)
    target = torch.rand(5, 1, 8, 8, generator=g)
    recon = (target + 0.1 * torch.randn(5, 1, 8, 8, generator=g)).clamp(0, 1)
    per_sample = reconstruction_loss(recon, target, "psnr")
    torch.testing.assert_close(per_sample, -psnr(recon, target).float(), atol=1e-4, rtol=0)
    assert float(per_sample.mean()) == pytest.approx(-image_metrics(recon, target)["psnr"], rel=1e-5)
    assert torch.isfinite(reconstruction_loss(target, target, "psnr")).all()  # a perfect reconstruction: -100 dB


def test_model_loss_is_the_batch_sum_in_the_reference_unit(tiny_images):
    model = aekit.create_model("conv")
    x = tiny_images[:5]
    with torch.no_grad():
        out = model(x)
        by_hand = 0.5 * ((out.recon - x) ** 2).sum()
    assert float(out.loss) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(out.per_sample.sum()) == pytest.approx(float(by_hand), rel=1e-5)


def test_reference_loop_quirk_gives_seven_batches_of_fifty():
    assert len(batch_starts(400, 50, reference_loop=True)) == 7
    assert list(batch_starts(400, 50, reference_loop=True))[-1] == 300
    assert len(batch_starts(400, 50, reference_loop=False)) == 8
    assert len(batch_starts(401, 50, reference_loop=False)) == 9  # the last, partial batch is kept


def _count_steps(model):
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    return calls


def test_fit_with_the_quirk_trains_on_350_of_400_and_divides_by_400():
    x = torch.rand(400, 1, 32, 32)
    model = aekit.create_model("conv", encoder_channels=(4,), encoder_strides=(2,),
                               decoder_channels=(4,), decoder_strides=(2,))
    calls = _count_steps(model)
    cfg = aekit.TrainConfig(epochs=1, batch_size=50, reference_loop=True)
    hist = fit(model, x, cfg, progress=False, log=lambda s: None)
    assert calls == [50] * 7
    assert hist[0].loss_per_sample > 0


def test_same_seed_same_run_different_seed_different_run(tiny_images):
    def run(seed):
        torch.manual_seed(seed)
        model = aekit.create_model("conv")
        hist = fit(model, tiny_images, aekit.TrainConfig(epochs=2, batch_size=8), seed=seed,
                   progress=False, log=lambda s: None)
        return [h.loss_per_sample for h in hist], model.state_dict()

    a, wa = run(3)
    b, wb = run(3)
    c, _ = run(4)
    assert a == b
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a != c


def test_heldout_metrics_every_k_epochs_and_at_the_end(tiny_images):
    model = aekit.create_model("conv")
    cfg = aekit.TrainConfig(epochs=5, batch_size=8, eval_every=2)
    hist = fit(model, tiny_images[:16], cfg, test_images=tiny_images[16:], progress=False, log=lambda s: None)
    assert [bool(h.heldout) for h in hist] == [False, True, False, True, True]
    assert set(hist[-1].heldout) == {"loss_per_sample", "code_mean", "code_small", "mse", "psnr", "ssim"}


def test_batch_larger_than_data_is_an_error(tiny_images):
    model = aekit.create_model("conv")
    with pytest.raises(aekit.ConfigError, match="batch_size 50 is larger than the 24 training images"):
        fit(model, tiny_images, aekit.TrainConfig(epochs=1, batch_size=50), progress=False)


def test_a_run_whose_last_epoch_is_also_its_best_can_be_resumed(tmp_path):
    """The final 'last' checkpoint is written even when the last epoch was saved as 'best' only."""
    from aekit.checkpoint import read_checkpoint
    from aekit.config import replace

    cfg = replace(aekit.Config(), **{"model.encoder_channels": [4, 8], "model.encoder_strides": [2, 1],
                                     "model.decoder_channels": [8], "model.decoder_strides": [2],
                                     "train.epochs": 1, "train.eval_every": 1, "train.device": "cpu"})
    aekit.train(cfg, out=tmp_path / "run", progress=False, log=lambda s: None)
    folder, state = read_checkpoint(tmp_path / "run", "last")
    assert state["epoch"] == 1 and folder == read_checkpoint(tmp_path / "run", "best")[0]


# --- mixed precision (train.amp) and torch.compile (train.compile) ------------------------------

def _small_model():
    return aekit.create_model("conv", input_size=(16, 16), code_length=64, encoder_channels=(4,),
                              encoder_strides=(2,), decoder_channels=(4,), decoder_strides=(2,))


def _images16(n=16):
    g = torch.Generator().manual_seed(2)
    return torch.rand(n, 1, 16, 16, generator=g)


def _quiet_fit(model, x, **train):
    return fit(model, x, aekit.TrainConfig(**{"batch_size": 4, "lr": 1e-2, "threads": 1, **train}),
               progress=False, log=lambda s: None)


def test_bf16_autocast_trains_on_the_cpu_and_keeps_float32_weights():
    model = _small_model()
    hist = _quiet_fit(model, _images16(), epochs=2, amp="bf16")
    losses = [h.loss_per_sample for h in hist]
    assert all(math.isfinite(v) for v in losses) and losses[1] < losses[0]
    assert all(math.isfinite(h.code_mean) and math.isfinite(h.code_std) for h in hist)
    assert {v.dtype for v in model.state_dict().values()} == {torch.float32}


def test_fp16_with_a_grad_scaler_trains_on_the_cpu():
    """The scaler starts at 2**16, skips the first overflowing steps, backs off, then trains."""
    model = _small_model()
    snapshots = []
    cfg = aekit.TrainConfig(epochs=5, batch_size=4, lr=1e-2, threads=1, amp="fp16")
    hist = fit(model, _images16(), cfg, progress=False, log=lambda s: None,
               on_epoch=lambda stats, snapshot: snapshots.append(snapshot()))
    losses = [h.loss_per_sample for h in hist]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert {v.dtype for v in model.state_dict().values()} == {torch.float32}
    assert 0 < snapshots[-1]["scaler"]["scale"] < 2.0**16  # backed off, and saved for resume


def test_amp_off_is_the_exact_fp32_run():
    def run(**amp):
        torch.manual_seed(5)
        model = _small_model()
        hist = _quiet_fit(model, _images16(), epochs=2, **amp)
        return [h.loss_per_sample for h in hist], model.state_dict()

    (a, wa), (b, wb) = run(), run(amp="off")
    assert a == b and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_autocast_keeps_the_loss_in_float32(loss):
    model = aekit.create_model("conv", input_size=(16, 16), code_length=64, encoder_channels=(4,),
                               encoder_strides=(2,), decoder_channels=(4,), decoder_strides=(2,), loss=loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_images16(4))
    assert out.recon.dtype == torch.bfloat16  # the layers ran in bf16 ...
    assert out.per_sample.dtype == torch.float32 and out.loss.dtype == torch.float32  # ... the loss did not


def test_a_bad_amp_value_is_a_one_line_error_naming_train_amp(tmp_path):
    from aekit.config import load_config

    path = tmp_path / "bad.toml"
    path.write_text("[train]\namp = 'fp8'\n")
    with pytest.raises(aekit.ConfigError, match=r"\[train\]\.amp: 'fp8' is not one of 'off', 'bf16', 'fp16'") as e:
        load_config(path)
    assert "\n" not in str(e.value)
    with pytest.raises(aekit.ConfigError, match=r"^train\.amp 'fp8' is not one of 'off', 'bf16', 'fp16'$"):
        _quiet_fit(_small_model(), _images16(), epochs=1, amp="fp8")  # a TrainConfig built in Python


def _npy_config(tmp_path, **train):
    """A run config on 20 synthetic 16x16 images in a .npy file (16 train, 4 held out)."""
    import numpy as np

    from aekit.config import replace

    source = tmp_path / "images.npy"
    if not source.exists():
        np.save(source, _images16(20)[:, 0].numpy())
    return replace(aekit.Config(), **{
        "seed": 3, "data.source": str(source), "model.input_size": [16, 16], "model.code_length": 64,
        "model.encoder_channels": [4], "model.encoder_strides": [2], "model.decoder_channels": [4],
        "model.decoder_strides": [2], "train.batch_size": 4, "train.lr": 0.01, "train.threads": 1,
        "train.device": "cpu", "train.eval_every": 1, "train.checkpoint_seconds": 0,
        **{f"train.{k}": v for k, v in train.items()},
    })


def test_compile_trains_and_saves_the_uncompiled_keys(tmp_path):
    from safetensors.torch import load_file

    from aekit.models import create_model

    cfg = _npy_config(tmp_path, epochs=1, compile=True)
    result = aekit.train(cfg, out=tmp_path / "run", progress=False, log=lambda s: None)
    assert math.isfinite(result.history[-1].loss_per_sample)
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert set(saved) == set(create_model(cfg.model).state_dict())  # no '_orig_mod.' prefix
    assert aekit.load(tmp_path / "run").config.code_length == 64


def test_fp16_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, capsys):
    """The GradScaler's state travels in the checkpoint: without it the resumed run would start again
    at a scale of 2**16, skip steps, and end elsewhere. Old checkpoints without it still load."""
    from aekit.checkpoint import read_checkpoint
    from aekit.cli import main
    from test_checkpoint import weights

    full, part = tmp_path / "full", tmp_path / "part"
    aekit.train(_npy_config(tmp_path, epochs=4, amp="fp16"), out=full, progress=False, log=lambda s: None)
    aekit.train(_npy_config(tmp_path, epochs=2, amp="fp16"), out=part, progress=False, log=lambda s: None)
    _, state = read_checkpoint(part)
    assert state["epoch"] == 2 and state["scaler"]["scale"] < 2.0**16
    aekit.train(_npy_config(tmp_path, epochs=4, amp="fp16"), out=part, resume=True, progress=False,
                log=lambda s: None)
    a, b = weights(full), weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert {v.dtype for v in b.values()} == {torch.float32}

    # a resume may turn compile on or off (same math) but not change the precision
    assert main(["train", "--resume", str(part), "--amp", "bf16"]) == 2
    assert "--amp cannot change it" in capsys.readouterr().err
    from aekit.errors import AekitError
    from aekit.run import _check_resumable

    _check_resumable(part, _npy_config(tmp_path, epochs=6, amp="fp16", compile=True))
    with pytest.raises(AekitError, match="train.amp differs"):
        _check_resumable(part, _npy_config(tmp_path, epochs=6, amp="bf16"))

    # a checkpoint written before the scaler was saved: resumes with a fresh scaler
    del state["scaler"]
    model = _small_model()
    cfg = _npy_config(tmp_path, epochs=3, amp="fp16").train
    hist = fit(model, _images16(16), cfg, state=state, progress=False, log=lambda s: None)
    assert [h.epoch for h in hist] == [1, 2, 3] and math.isfinite(hist[-1].loss_per_sample)


def test_amp_and_compile_options_map_to_the_train_config():
    from aekit.cli import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["train", "--amp", "bf16", "--compile"]))
    assert (cfg.train.amp, cfg.train.compile) == ("bf16", True)
    cfg = config_from_args(build_parser().parse_args(["train"]))
    assert (cfg.train.amp, cfg.train.compile) == ("off", False)  # fp32 and eager unless asked


def test_data_init_calibrates_only_the_code_layer_on_training_images():
    """train.data_init: on the images it looks at, every code unit's pre-activation has mean 0 and
    spread 1 across images; every other weight is the seeded initialisation, unchanged."""
    from aekit.train import DATA_INIT_IMAGES, data_init

    x = _images16(20)
    model = _small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data_init(model, x, seed=5)
    assert len(x) < DATA_INIT_IMAGES  # so every image was used: the calibration is exact on x
    with torch.no_grad():
        z = model.code[0](model.encoder(x).flatten(1))
    torch.testing.assert_close(z.mean(0), torch.zeros(64), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(64), atol=1e-4, rtol=0)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"code.0.weight", "code.0.bias"}


def test_data_init_is_part_of_the_seeded_run_and_leaves_other_models_alone(tiny_images):
    def run(model_name, data_init):
        torch.manual_seed(0)
        model = aekit.create_model(model_name, input_size=(32, 32))
        history = _quiet_fit(model, tiny_images, epochs=2, data_init=data_init)
        return [h.loss_per_sample for h in history], model

    a, _ = run("conv", True)
    b, _ = run("conv", True)
    plain, _ = run("conv", False)
    assert a == b  # reproducible
    assert a != plain  # and it did something
    fcn_init, m1 = run("fcn", True)  # no data-dependent init for the fully convolutional model: the same run
    fcn_plain, m2 = run("fcn", False)
    assert fcn_init == fcn_plain


def test_data_init_option_maps_to_the_train_config():
    from aekit.cli import build_parser, config_from_args

    assert config_from_args(build_parser().parse_args(["train", "--data-init"])).train.data_init is True
    assert config_from_args(build_parser().parse_args(["train"])).train.data_init is False  # the reference's init


def test_random_shift_moves_each_image_by_whole_pixels_and_repeats_the_edges():
    from aekit.train import random_shift

    x = torch.rand(64, 2, 6, 7)
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    seen = set()
    for a, b in zip(x, y):  # find each image's offset: b[r, c] = a[clamp(r - dy), clamp(c - dx)]
        match = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(b, a[:, (torch.arange(6) - dy).clamp(0, 5)][:, :, (torch.arange(7) - dx).clamp(0, 6)])]
        assert match, "not a whole-pixel shift of the image"
        seen.add(match[0])
    assert len(seen) > 10  # offsets drawn per image, over the whole range
    assert torch.equal(y, random_shift(x, 2, torch.Generator().manual_seed(0)))  # seeded
    assert not torch.equal(y, random_shift(x, 2, torch.Generator().manual_seed(1)))
