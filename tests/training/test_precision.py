"""train.amp auto: bf16 only where the device runs it natively, float32 elsewhere; printed, recorded, kept."""

import pytest
import torch

import aekit
from aekit.config import replace
from aekit.run_folder import RunFolder
from aekit.training import devices, fit


def pretend_cpu(monkeypatch, avx512_bf16: bool, amx_bf16: bool) -> dict:
    """This machine's CPU description with both bf16 flags set as given (never the machine's own)."""
    features = {**devices.cpu_features(), "avx512_bf16": avx512_bf16, "amx_bf16": amx_bf16}
    monkeypatch.setattr(devices, "cpu_features", lambda: features)
    return features


def test_auto_is_float32_on_a_cpu_without_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    pretend_cpu(monkeypatch, avx512_bf16=False, amx_bf16=False)
    assert devices.resolve_amp("auto", cpu)[0] == "off"
    assert "no native bf16" in devices.resolve_amp("auto", cpu)[1]
    assert "several times slower" in devices.amp_warning("bf16", cpu)


@pytest.mark.parametrize("avx512_bf16, amx_bf16, native", [
    (True, False, "AVX512-BF16"), (False, True, "AMX-BF16"), (True, True, "AVX512-BF16 and AMX-BF16")])
def test_auto_is_bf16_where_the_cpu_runs_it_natively(monkeypatch, avx512_bf16, amx_bf16, native):
    cpu = torch.device("cpu")
    features = pretend_cpu(monkeypatch, avx512_bf16, amx_bf16)
    assert devices.resolve_amp("auto", cpu) == ("bf16", f"amp auto: the CPU, {features['model']}, has {native}")
    assert devices.amp_warning("bf16", cpu) is None
    assert devices.resolve_amp("fp16", cpu)[0] == "fp16"  # an explicit choice stays


def test_auto_is_float32_on_a_gpu():
    amp, why = devices.resolve_amp("auto", torch.device("cuda"))  # no GPU needed: decided before asking one
    assert amp == "off" and "float32 on a GPU" in why and "--amp bf16" in why
    assert devices.resolve_amp("bf16", torch.device("cuda"))[0] == "bf16"  # an explicit choice stays


def test_the_machine_is_described_with_the_flags_that_matter():
    info = devices.machine("cpu")
    assert {"model", "avx2", "avx512_f", "avx512_bf16", "amx_bf16", "cores"} <= set(info["cpu"])
    assert info["torch"] == torch.__version__ and info["device"] == "cpu"
    line = devices.describe_machine(info)
    assert info["cpu"]["model"] in line and "cores" in line and "torch" in line


def test_a_run_prints_its_choice_writes_it_down_and_a_resume_keeps_it(tmp_path, monkeypatch, tiny_images):
    import numpy as np

    monkeypatch.setattr(devices, "native_bf16", lambda device: (True, "pretend: native bf16"))
    np.save(tmp_path / "x.npy", tiny_images[:, 0].numpy())
    cfg = replace(aekit.Config(), **{"data.source": str(tmp_path / "x.npy"), "model.encoder_channels": [4],
                                      "model.encoder_strides": [2], "model.decoder_channels": [4],
                                      "model.decoder_strides": [2], "train.epochs": 1, "train.batch_size": 8,
                                      "train.checkpoint_seconds": 0, "train.device": "cpu"})
    assert cfg.train.amp == "auto"
    said = []
    result = aekit.train(cfg, out=tmp_path / "run", progress=False, log=said.append)
    assert "Precision: bf16 (amp auto: pretend: native bf16)" in said
    assert RunFolder(tmp_path / "run").config().train.amp == "bf16"  # recorded: a resume keeps it
    assert result.metrics["precision"] == "bf16" and "cpu" in result.metrics["machine"]
    monkeypatch.setattr(devices, "native_bf16", lambda device: (False, "pretend: no native bf16"))
    resumed = aekit.train(replace(RunFolder(tmp_path / "run").config(), **{"train.epochs": 2}), out=tmp_path / "run",
                          resume=True, progress=False, log=said.append)
    assert resumed.metrics["precision"] == "bf16"  # the run's own choice, not this machine's


def test_a_direct_fit_with_auto_says_what_it_chose(tiny_images, monkeypatch):
    monkeypatch.setattr(devices, "native_bf16", lambda device: (False, "pretend: no native bf16"))
    said = []
    fit(aekit.create_model("conv"), tiny_images, aekit.TrainConfig(epochs=1, batch_size=8), progress=False,
        log=said.append)
    assert said[0] == "Precision: float32 (amp auto: pretend: no native bf16)"


def test_auto_keeps_the_hybrid_in_float32_even_where_bf16_is_native(tiny_images, monkeypatch):
    """bf16 rounded away the hybrid's refinements of its PCA start (on an AVX512-BF16 CPU, held-out people at
    64 values: 25.31 dB, the start, against 25.48 in float32): auto keeps it, and only it, in float32."""
    monkeypatch.setattr(devices, "native_bf16", lambda device: (True, "pretend: native bf16"))
    reason = aekit.models.model_class("hybrid").float32_because
    assert reason and devices.resolve_amp("auto", torch.device("cpu"), reason)[0] == "off"
    assert devices.resolve_amp("bf16", torch.device("cpu"), reason)[0] == "bf16"  # an explicit choice stays
    for name, said_first in [("hybrid", f"Precision: float32 (amp auto: float32 for this model: {reason})"),
                             ("conv", "Precision: bf16 (amp auto: pretend: native bf16)")]:
        said = []
        fit(aekit.create_model(name), tiny_images, aekit.TrainConfig(epochs=1, batch_size=8), progress=False,
            log=said.append)
        assert said[0] == said_first
