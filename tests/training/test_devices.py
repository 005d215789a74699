"""Mixed precision (train.amp) and torch.compile (train.compile) on the CPU."""

import math

import pytest
import torch

import aekit
from aekit.training import devices, fit


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
               on_epoch=lambda ctx: snapshots.append(ctx.snapshot()))
    losses = [h.loss_per_sample for h in hist]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert {v.dtype for v in model.state_dict().values()} == {torch.float32}
    assert 0 < snapshots[-1]["scaler"]["scale"] < 2.0**16  # backed off, and saved for resume


def test_amp_off_is_the_exact_fp32_run(monkeypatch):
    """On a CPU without native bf16 the default (auto) is float32: bit for bit the run of amp off.
    (Pretended here: on a CPU with AVX512-BF16 auto is bf16, test_precision.py.)"""
    monkeypatch.setattr(devices, "native_bf16", lambda device: (False, "pretend: no native bf16"))

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


def test_a_bad_amp_value_is_a_one_line_error_naming_train_amp():
    with pytest.raises(aekit.ConfigError, match=r"^train\.amp: 'fp8' is not one of 'auto', 'off', 'bf16', 'fp16'$"):
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
