"""Runs that survive: checkpoints, exact resume after SIGKILL, stopping rules, and safe loading."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

TINY = """
name = "tiny"
seed = 7
[data]
test_fraction = 0.2
[model]
name = "conv"
encoder_channels = [4, 8]
encoder_strides = [2, 1]
decoder_channels = [8]
decoder_strides = [2]
[train]
epochs = {epochs}
batch_size = 40
eval_every = 2
threads = 1
hflip = true
shift = 1
schedule = "cosine"
checkpoint_seconds = 0
device = "cpu"
[noise]
kind = "gaussian"
sigma = 0.1
"""


def aekit(*args, **kw):
    return subprocess.run([sys.executable, "-m", "aekit", *args], capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(epochs=8))
    return path


def weights(run):
    return load_file(str(run / "model.safetensors"))


def test_sigkill_mid_epoch_then_resume_gives_bit_identical_weights(tiny_config, tmp_path):
    full = tmp_path / "full"
    r = aekit("train", "--config", str(tiny_config), "--out", str(full), "--no-progress")
    assert r.returncode == 0, r.stderr

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "aekit", "train", "--config", str(tiny_config), "--out",
                             str(killed), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    for line in proc.stdout:
        if line.startswith("Epoch 4)"):
            break
    time.sleep(0.15)  # into epoch 5
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (killed / "metrics.json").exists()  # the killed run does not look complete
    last = json.loads((killed / "checkpoints" / "last.json").read_text())
    assert 3 <= last["epoch"] < 8

    r = aekit("train", "--resume", str(killed), "--no-progress")
    assert r.returncode == 0, r.stderr
    a, b = weights(full), weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (full / "history.csv").read_text().count("\n") == (killed / "history.csv").read_text().count("\n")
    def figures(run):  # every epoch's figures, except the seconds
        import csv

        with open(run / "history.csv") as f:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]

    assert figures(full) == figures(killed)


def test_checkpoints_last_best_and_every_n(tiny_config, tmp_path):
    run = tmp_path / "run"
    r = aekit("train", "--config", str(tiny_config), "--out", str(run), "--no-progress", "--checkpoint-every", "4",
              "--epochs", "6")
    assert r.returncode == 0, r.stderr
    ck = run / "checkpoints"
    last = json.loads((ck / "last.json").read_text())
    best = json.loads((ck / "best.json").read_text())
    assert last["epoch"] == 6 and (ck / last["dir"] / "state.pt").is_file()
    import csv

    with open(run / "history.csv") as f:
        held = [float(r["heldout_loss_per_sample"]) for r in csv.DictReader(f) if r["heldout_loss_per_sample"]]
    assert best["heldout_loss_per_sample"] == pytest.approx(min(held))
    kept = sorted(p.name for p in ck.iterdir() if p.is_dir())
    assert "epoch-000004" in kept and last["dir"] in kept and best["dir"] in kept
    assert not any(name.startswith(".") for name in kept)
    import aekit as ae

    model = ae.load(ck / best["dir"])  # a checkpoint is a loadable model folder
    assert model.config.encoder_channels == (4, 8)


def test_max_time_stops_cleanly_and_resume_extends(tiny_config, tmp_path):
    run = tmp_path / "run"
    r = aekit("train", "--config", str(tiny_config), "--out", str(run), "--no-progress", "--max-time", "0.0001")
    assert r.returncode == 0, r.stderr
    assert "time limit" in r.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and "time limit" in metrics["stopped"]
    # the limit applies to each invocation and a resume keeps it: --max-time 0 lifts it
    r = aekit("train", "--resume", str(run), "--epochs", "3", "--max-time", "0", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3


def test_early_stop_on_heldout_loss(tmp_path):
    import aekit as ae
    from aekit.train import fit

    x = torch.rand(40, 1, 32, 32)
    model = ae.create_model("conv", encoder_channels=(4,), encoder_strides=(2,), decoder_channels=(4,),
                            decoder_strides=(2,))
    # a learning rate of ~0 never improves the held-out loss after the first evaluation
    cfg = ae.TrainConfig(epochs=50, batch_size=20, lr=1e-12, eval_every=1, early_stop=3)
    hist = fit(model, x[:30], cfg, test_images=x[30:], progress=False, log=lambda s: None)
    assert len(hist) < 50 and "early stop" in hist.stopped


def test_resume_refuses_a_changed_config(tiny_config, tmp_path):
    run = tmp_path / "run"
    assert aekit("train", "--config", str(tiny_config), "--out", str(run), "--no-progress", "--epochs", "1").returncode == 0
    r = aekit("train", "--resume", str(run), "--lr", "0.5")
    assert r.returncode == 2 and "--lr cannot change it" in r.stderr
    r = aekit("train", "--resume", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "not an aekit run folder" in r.stderr and r.stderr.count("\n") == 1


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['AEKIT_MARKER']}",))


def test_a_planted_pickle_is_never_executed(tiny_config, tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert aekit("train", "--config", str(tiny_config), "--out", str(run), "--no-progress", "--epochs", "2").returncode == 0
    marker = tmp_path / "pwned"
    monkeypatch.setenv("AEKIT_MARKER", str(marker))
    last = json.loads((run / "checkpoints" / "last.json").read_text())
    folder = run / "checkpoints" / last["dir"]
    with open(folder / "state.pt", "wb") as f:  # a malicious pickle where the training state belongs
        pickle.dump({"epoch": 2, "x": _Evil()}, f)
    with open(tmp_path / "check.pkl", "wb") as f:
        pickle.dump(_Evil(), f)
    r = aekit("train", "--resume", str(run), "--epochs", "3", env={**os.environ, "AEKIT_MARKER": str(marker)})
    assert r.returncode == 2 and "refused to load" in r.stderr and r.stderr.count("\n") == 1
    assert not marker.exists()
    # weights are never unpickled either: a pickle in place of model.safetensors is just unreadable
    import aekit as ae

    (folder / "model.safetensors").write_bytes((tmp_path / "check.pkl").read_bytes())
    with pytest.raises(ae.AekitError, match="not a readable safetensors file"):
        ae.load(folder)
    assert not marker.exists()
