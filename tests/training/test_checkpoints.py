"""Runs that survive: checkpoints, exact resume after SIGKILL, the time limit, and safe loading."""

import csv
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import tomllib

import pytest
import tomli_w
import torch
from safetensors.torch import load_file

import aekit
from aekit.resume import check_resume
from aekit.run_folder import RunFolder
from aekit.training import fit
from aekit.training.checkpoints import read_checkpoint
from helpers import aekit_process
from test_devices import _npy_config, _small_model, _images16

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
rotate = 5.0
zoom = 0.1
intensity = 0.1
synthetic = 0.25
ema = 0.9
schedule = "cosine"
checkpoint_seconds = 0
compare = false  # the baselines (BM3D) would take most of each run: not what these tests are about
device = "cpu"
[noise]
kind = "gaussian"
sigma = 0.1
"""


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(epochs=8))
    return path


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory):
    """The tiny run, never killed (one for the module: the clock of 'last' does not change the training)."""
    folder = tmp_path_factory.mktemp("full")
    (folder / "tiny.toml").write_text(TINY.format(epochs=8))
    r = aekit_process("train", "--config", folder / "tiny.toml", "--out", folder / "run", "--no-progress")
    assert r.returncode == 0, r.stderr
    return folder / "run"


def ctrl_c_as_on_a_terminal():
    """In the child: SIGINT does what it does at a terminal, even where the tests run as a background job
    (whose shell started them with SIGINT ignored, and Python keeps an ignored SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def weights(run):
    return load_file(str(run / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("clock", ["0", "3600"])
def test_sigkill_mid_epoch_then_resume_gives_bit_identical_weights(tiny_config, tmp_path, clock, uninterrupted_run):
    """Killed in epoch 5 and resumed, the run ends bit-identical to one never killed; with the clock's
    'last' checkpoint not yet due (3600 s), it resumes from the newest 'best' checkpoint (epoch 4)."""
    tiny_config.write_text(tiny_config.read_text().replace("checkpoint_seconds = 0", f"checkpoint_seconds = {clock}"))
    full = uninterrupted_run
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
    proc.stdout.close()
    assert not (killed / "metrics.json").exists()  # the killed run does not look complete
    last = json.loads((killed / "checkpoints" / "last.json").read_text())
    assert 3 <= last["epoch"] < 8 if clock == "0" else last["epoch"] == 4

    r = aekit_process("train", "--resume", killed, "--no-progress")
    assert r.returncode == 0, r.stderr
    a, b = weights(full), weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (full / "history.csv").read_text().count("\n") == (killed / "history.csv").read_text().count("\n")
    def figures(run):  # every epoch's figures, except the seconds
        with open(run / "history.csv") as f:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]

    assert figures(full) == figures(killed)


@pytest.mark.slow
def test_ctrl_c_says_which_checkpoint_resume_continues_from(tiny_config, tmp_path, uninterrupted_run):
    """SIGINT (Ctrl-C) in epoch 5: exit 130, a line naming the newest checkpoint and the command that
    continues from it; the commands that need a finished run say the same; that command ends
    bit-identical to the run never interrupted."""
    tiny_config.write_text(tiny_config.read_text().replace("checkpoint_seconds = 0", "checkpoint_seconds = 3600"))
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "aekit", "train", "--config", str(tiny_config), "--out",
                             str(stopped), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_as_on_a_terminal)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Epoch 4)"):
            break
    time.sleep(0.15)  # into epoch 5
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().endswith("aekit: interrupted"), err
    last = json.loads((stopped / "checkpoints" / "last.json").read_text())["epoch"]
    assert last >= 4  # the newest 'best' (the clock's 'last' was not due)
    said = [line for line in lines + out.splitlines() if line.startswith("Interrupted")]
    assert said and said[0].strip().endswith(f"the newest checkpoint is epoch {last}: "
                                             f"aekit train --resume {stopped} continues from it"), said
    r = aekit_process("evaluate", stopped)  # the unfinished run: what to do instead, not just "no model.json"
    assert r.returncode == 2 and f"the run has not finished (no model.json); aekit train --resume {stopped} " \
        f"finishes it; meanwhile {stopped / 'checkpoints' / 'best'} (the epoch model selection keeps so far) and " \
        f"{stopped / 'checkpoints' / 'last'} (the newest checkpoint) name models that denoise" in r.stderr, r.stderr
    with pytest.raises(aekit.AekitError, match="the run has not finished"):  # and in Python
        aekit.load(stopped)
    assert aekit.load(stopped / "checkpoints" / f"epoch-{last:06d}").training is False  # meanwhile
    newest = aekit.load(stopped / "checkpoints" / "last")  # the pointer's name, which outlives pruned folders
    assert all(torch.equal(a, b) for a, b in zip(newest.state_dict().values(),
                                                 aekit.load(stopped / "checkpoints" / f"epoch-{last:06d}").state_dict().values()))
    with pytest.raises(aekit.AekitError, match="no such checkpoint"):
        aekit.load(tmp_path / "elsewhere" / "checkpoints" / "best")
    r = aekit_process("train", "--resume", stopped, "--no-progress")
    assert r.returncode == 0, r.stderr
    a, b = weights(uninterrupted_run), weights(stopped)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_last_best_and_every_n(tiny_config, tmp_path, cli):
    run = tmp_path / "run"
    r = cli("train", "--config", tiny_config, "--out", run, "--no-progress", "--checkpoint-every", "4", "--epochs", "6")
    assert r.code == 0, r.err
    ck = run / "checkpoints"
    last = json.loads((ck / "last.json").read_text())
    best = json.loads((ck / "best.json").read_text())
    assert last["epoch"] == 6 and (ck / last["dir"] / "state.pt").is_file()
    with open(run / "history.csv") as f:
        scored = [float(r["val_loss_per_sample"]) for r in csv.DictReader(f) if r["val_loss_per_sample"]]
    assert best["validation_loss_per_sample"] == pytest.approx(min(scored))  # best: the model selection's choice
    kept = sorted(p.name for p in ck.iterdir() if p.is_dir())
    assert "epoch-000004" in kept and last["dir"] in kept and best["dir"] in kept
    assert not any(name.startswith(".") for name in kept)
    model = aekit.load(ck / best["dir"])  # a checkpoint is a loadable model folder
    assert model.config.encoder_channels == (4, 8)
    # 'best' is the epoch selection kept, as validated (with train.ema, the average): the run's final model
    assert best["epoch"] == json.loads((run / "metrics.json").read_text())["selection"]["chosen_epoch"]
    final = aekit.load(run).state_dict()
    assert all(torch.equal(v, final[k]) for k, v in model.state_dict().items())


def test_without_selection_last_is_written_after_the_first_epoch(tiny_config, tmp_path, cli, monkeypatch):
    """No 'best' without selection (the reference configs): 'last' after epoch 1 all the same, so a run stopped
    in its first minute can resume; then on the clock (an hour here: only the end's)."""
    import aekit.run_record

    written = []
    real = aekit.run_record.write_checkpoint
    monkeypatch.setattr(aekit.run_record, "write_checkpoint", lambda folder, model, st, **kw: (written.append(st["epoch"]),
                                                                                       real(folder, model, st, **kw)))
    tiny_config.write_text(tiny_config.read_text().replace("checkpoint_seconds = 0", "checkpoint_seconds = 3600"))
    r = cli("train", "--config", tiny_config, "--out", tmp_path / "run", "--no-progress", "--no-select",
            "--epochs", "3")
    assert r.code == 0, r.err
    assert written == [1, 3]


def test_max_time_stops_cleanly_and_resume_extends(tiny_config, tmp_path, cli):
    run = tmp_path / "run"
    r = cli("train", "--config", tiny_config, "--out", run, "--no-progress", "--max-time", "0.0001")
    assert r.code == 0, r.err
    assert "time limit" in r.out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and "time limit" in metrics["stopped"]
    # the limit applies to each invocation and a resume keeps it: --max-time 0 lifts it
    r = cli("train", "--resume", run, "--epochs", "3", "--max-time", "0", "--no-progress")
    assert r.code == 0, r.err
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "history.csv") as f:
        trained = sum(float(row["seconds"]) for row in csv.DictReader(f))
    assert metrics["epochs"] == 3 and metrics["seconds"] >= trained  # the whole run's time, not the resume's alone
    # a complete run resumed with no more epochs: refused, the run left as it was
    before = (run / "metrics.json").read_bytes(), (run / "config.toml").read_bytes()
    for more in ([], ["--epochs", "2"]):
        assert cli("train", "--resume", run, *more).error.endswith(
            "the run is complete after 3 epochs, and --epochs " + (more[1] if more else "3") +
            " leaves nothing to do; give more to extend it")
    assert ((run / "metrics.json").read_bytes(), (run / "config.toml").read_bytes()) == before


def test_extending_a_cosine_run_says_that_its_learning_rate_follows_the_longer_cosine(tiny_config, tmp_path, cli):
    """A finished cosine decay rose again when a resume gave more epochs, silently (the unet's default schedule):
    the extended run is not the one a longer run from the start gives (19.90 against 21.71 dB in an audit)."""
    run = tmp_path / "run"
    assert cli("train", "--config", tiny_config, "--out", run, "--no-progress", "--epochs", "1",
               "--schedule", "cosine").code == 0
    r = cli("train", "--resume", run, "--epochs", "2", "--no-progress")
    assert r.code == 0 and ("note: train.schedule cosine decays over train.epochs: from here the learning rate follows "
                            "the cosine of 2 epochs, not of 1 (a finished decay rises again)") in r.out, r.out


def test_resume_refuses_a_changed_config(tiny_config, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("train", "--config", tiny_config, "--out", run, "--no-progress", "--epochs", "1").code == 0
    assert "--lr cannot change it" in cli("train", "--resume", run, "--lr", "0.5").error
    assert "not an aekit run folder" in cli("train", "--resume", tmp_path / "nowhere").error
    with pytest.raises(aekit.AekitError, match="train.lr differs from the run's config.toml"):
        check_resume(RunFolder(run), aekit.config.replace(RunFolder(run).config(), **{"train.lr": 0.5}))
    check_resume(RunFolder(run), aekit.config.replace(RunFolder(run).config(), **{"train.epochs": 9}))



def test_a_model_key_edited_in_config_toml_is_refused_before_the_resume_rewrites_it(tiny_config, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("train", "--config", tiny_config, "--out", run, "--no-progress", "--epochs", "1").code == 0
    toml = run / "config.toml"
    tables = tomllib.loads(toml.read_text())
    trained_with = tables["model"]["code_length"]
    tables["model"]["code_length"] = 7
    edited = tomli_w.dumps(tables)
    toml.write_text(edited)
    r = cli("train", "--resume", run, "--epochs", "2")
    assert r.code == 2
    assert ("model.code_length is 7 by its config.toml (edited, or missing and so its default), "
            f"but checkpoint epoch-000001 was trained with {trained_with}") in r.error, r.error
    assert f"[model] code_length = {trained_with})" in r.error
    assert toml.read_text() == edited  # not rewritten by the failed resume



def test_a_resume_removes_the_temporary_files_of_killed_writes(tiny_config, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("train", "--config", tiny_config, "--out", run, "--no-progress", "--epochs", "1").code == 0
    stale, older, recent = run / ".aekit-abc12345.tmp", run / ".history.csv.abc123.tmp", run / ".aekit-def45678.tmp"
    for path in (stale, older):  # older: the name earlier versions gave a temporary file
        path.write_text("half a file")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    recent.write_text("being written by another command now")
    assert cli("train", "--resume", run, "--epochs", "2", "--no-progress").code == 0
    assert not stale.exists() and not older.exists() and recent.exists()


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['AEKIT_MARKER']}",))


def test_a_planted_pickle_is_never_executed(tiny_config, tmp_path, monkeypatch, cli):
    run = tmp_path / "run"
    assert cli("train", "--config", tiny_config, "--out", run, "--no-progress", "--epochs", "2").code == 0
    marker = tmp_path / "pwned"
    monkeypatch.setenv("AEKIT_MARKER", str(marker))
    last = json.loads((run / "checkpoints" / "last.json").read_text())
    folder = run / "checkpoints" / last["dir"]
    with open(folder / "state.pt", "wb") as f:  # a malicious pickle where the training state belongs
        pickle.dump({"epoch": 2, "x": _Evil()}, f)
    with open(tmp_path / "check.pkl", "wb") as f:
        pickle.dump(_Evil(), f)
    error = cli("train", "--resume", run, "--epochs", "3").error
    assert error.startswith(f"aekit: error: {folder / 'state.pt'}: refused to load (it holds Python objects other "
                            "than tensors and plain values, and loading them could run code")
    assert "weights_only" not in error  # torch's advice to load it anyway, cut before its warning, was the message
    assert not marker.exists()
    # weights are never unpickled either: a pickle in place of model.safetensors is just unreadable
    (folder / "model.safetensors").write_bytes((tmp_path / "check.pkl").read_bytes())
    with pytest.raises(aekit.AekitError, match="not a readable safetensors file"):
        aekit.load(folder)
    assert not marker.exists()


def test_a_pointer_to_anything_but_a_checkpoint_folder_of_the_run_is_refused_by_every_reader(tiny_config, tmp_path, cli):
    """aekit.load(RUN/checkpoints/last) followed last.json to any folder, which --resume refused; and --resume took
    "dir": ".." (the run folder itself) and a linked checkpoint folder."""
    run, other = tmp_path / "run", tmp_path / "other"
    for out in (run, other):
        assert cli("train", "--config", tiny_config, "--out", out, "--no-progress", "--epochs", "2").code == 0
    ck, good = run / "checkpoints", (run / "checkpoints" / "last.json").read_text()
    os.symlink(other / "checkpoints" / "epoch-000002", ck / "epoch-000009")
    for name in (str(other / "checkpoints" / "epoch-000002"), "..", "../../other/checkpoints/epoch-000002",
                 "epoch-000009"):
        (ck / "last.json").write_text(json.dumps({"dir": name, "epoch": 2}))
        assert cli("train", "--resume", run, "--epochs", "3").error.startswith(
            f"aekit: error: {ck / 'last.json'}: names {name!r}, not a checkpoint folder of {ck} (epoch-NNNNNN)")
        with pytest.raises(aekit.AekitError, match="names no checkpoint folder of the run"):
            aekit.load(ck / "last")
    (ck / "last.json").write_text(good)
    assert isinstance(aekit.load(ck / "last"), torch.nn.Module)


def test_fp16_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, cli):
    """The GradScaler's state travels in the checkpoint: without it the resumed run would start again
    at a scale of 2**16, skip steps, and end elsewhere. Old checkpoints without it still load."""
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
    assert "--amp cannot change it" in cli("train", "--resume", part, "--amp", "bf16").error
    check_resume(RunFolder(part), _npy_config(tmp_path, epochs=6, amp="fp16", compile=True))
    with pytest.raises(aekit.AekitError, match="train.amp differs"):
        check_resume(RunFolder(part), _npy_config(tmp_path, epochs=6, amp="bf16"))

    # a checkpoint written before the scaler was saved: resumes with a fresh scaler
    del state["scaler"]
    model = _small_model()
    cfg = _npy_config(tmp_path, epochs=3, amp="fp16").train
    hist = fit(model, _images16(16), cfg, state=state, progress=False, log=lambda s: None)
    assert [h.epoch for h in hist] == [1, 2, 3] and math.isfinite(hist[-1].loss_per_sample)


def test_a_run_whose_last_epoch_is_also_its_best_can_be_resumed(tmp_path):
    """The final 'last' checkpoint is written even when the last epoch was saved as 'best' only."""
    cfg = aekit.config.replace(aekit.Config(), **{"model.encoder_channels": [4, 8], "model.encoder_strides": [2, 1],
                                     "model.decoder_channels": [8], "model.decoder_strides": [2],
                                     "train.epochs": 1, "train.eval_every": 1, "train.device": "cpu"})
    aekit.train(cfg, out=tmp_path / "run", progress=False, log=lambda s: None)
    folder, state = read_checkpoint(tmp_path / "run", "last")
    assert state["epoch"] == 1 and folder == read_checkpoint(tmp_path / "run", "best")[0]


@pytest.mark.parametrize("device", [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda,
                                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]),
])
def test_a_resumed_vae_is_bit_identical_on_every_device(tmp_path, monkeypatch, device):
    """A VAE draws its noise from the device's own random stream (on a GPU, the CUDA generator): a
    resumed run ends on the same weights as an uninterrupted one only if the checkpoint holds it."""
    if device == "cuda":  # bit-identical GPU runs need deterministic kernels
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
        monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    cfg = lambda epochs: aekit.config.replace(_npy_config(tmp_path, epochs=epochs, device=device, amp="off"), **{  # noqa: E731
        "model.name": "vae", "model.code_length": 8, "model.encoder_channels": [4, 4, 4],
        "model.decoder_channels": [4, 4, 4], "train.select": False})
    full, part = tmp_path / "full", tmp_path / "part"
    aekit.train(cfg(4), out=full, progress=False, log=lambda s: None)
    aekit.train(cfg(2), out=part, progress=False, log=lambda s: None)
    _, state = read_checkpoint(part)
    assert (state["cuda_rng"] is not None) == (device == "cuda")
    aekit.train(cfg(4), out=part, resume=True, progress=False, log=lambda s: None)
    a, b = weights(full), weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_progress_bar_is_for_a_terminal_only(tiny_config, tmp_path, cli, monkeypatch):
    """stderr to a file or pipe (a log): no bar redrawn with carriage returns; on a terminal, the bar."""
    r = cli("train", "--config", tiny_config, "--out", tmp_path / "log", "--epochs", "2")
    assert r.code == 0 and "\r" not in r.err and "epoch/s" not in r.err and "Epoch 2)" in r.out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    r = cli("train", "--config", tiny_config, "--out", tmp_path / "tty", "--epochs", "2")
    assert r.code == 0 and "epoch" in r.err and "\r" in r.err
    r = cli("train", "--config", tiny_config, "--out", tmp_path / "off", "--epochs", "2", "--no-progress")
    assert r.code == 0 and r.err == ""


def test_a_damaged_newest_checkpoint_names_the_file_and_the_others_a_resume_can_start_from(tmp_path, cli):
    """state.pt without its keys (was KeyError 'optimizer'), weights of another model (was torch's RuntimeError of
    hundreds of characters), a state.pt that does not unpickle: one line naming the file, the other checkpoints
    (which best.json names) and how to resume from one; doing so resumes."""
    run = tmp_path / "run"
    aekit.train(_npy_config(tmp_path, epochs=3, checkpoint_every=1), out=run, progress=False, log=lambda s: None)
    ck = run / "checkpoints"
    newest = ck / "epoch-000003"
    assert json.loads((ck / "last.json").read_text())["dir"] == newest.name
    (ck / "best.json").write_text(json.dumps({"dir": "epoch-000002", "epoch": 2}))
    others = (f"; other checkpoints: epoch-000002 (best.json names it), epoch-000001: to resume from epoch-000002, "
              f'move {newest} away and write {{"dir": "epoch-000002", "epoch": 2}} into {ck / "last.json"}')
    intact = {name: (newest / name).read_bytes() for name in ("state.pt", "model.safetensors")}

    state = torch.load(newest / "state.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "optimizer"}, newest / "state.pt")
    assert cli("train", "--resume", run, "--epochs", "4").error == (
        f"aekit: error: {newest / 'state.pt'}: not an aekit training state (no 'optimizer'){others}")
    torch.save({**state, "history": "epochs"}, newest / "state.pt")
    assert "not an aekit training state ('history' is a str)" in cli("train", "--resume", run, "--epochs", "4").error
    (newest / "state.pt").write_bytes(intact["state.pt"][:100])
    error = cli("train", "--resume", run, "--epochs", "4").error
    assert error.startswith(f"aekit: error: {newest / 'state.pt'}: refused to load (") and error.endswith(others)
    (newest / "state.pt").write_bytes(intact["state.pt"])

    other = aekit.train(aekit.config.replace(_npy_config(tmp_path, epochs=1), **{"model.code_length": 8}),
                        out=tmp_path / "other", progress=False, log=lambda s: None)
    shutil.copy(other.out / "model.safetensors", newest / "model.safetensors")
    assert cli("train", "--resume", run, "--epochs", "4").error == (
        f"aekit: error: {newest / 'model.safetensors'}: the weights are not of the model the run's configuration "
        "describes (code.0.weight has shape (8, 256), the model's (64, 256); 4 differences)" + others)

    shutil.move(newest, tmp_path / "damaged")  # what the message says to do
    (ck / "last.json").write_text(json.dumps({"dir": "epoch-000002", "epoch": 2}))
    r = cli("train", "--resume", run, "--epochs", "4", "--no-progress")
    assert r.code == 0, r.err
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 4


def test_a_foreign_or_damaged_training_state_inside_state_pt_names_the_file_and_the_fix(tmp_path, cli):
    """Weights that fit, but an optimiser state of another model (was torch's ValueError, or a RuntimeError at the
    first step when the counts agree), a scheduler or grad scaler value of another type (was a TypeError mid-epoch),
    a history entry of another form (was a TypeError): one line naming state.pt, the other checkpoints and a new start;
    the intact file resumes."""
    run = tmp_path / "run"
    aekit.train(_npy_config(tmp_path, epochs=2, checkpoint_every=1, amp="fp16"), out=run, progress=False,
                log=lambda s: None)
    ck = run / "checkpoints"
    newest, state = ck / "epoch-000002", torch.load(ck / "epoch-000002" / "state.pt", weights_only=True)
    fix = (f": damaged, or of another run; other checkpoints: epoch-000001 (best.json names it): to resume from "
           f'epoch-000001, move {newest} away and write {{"dir": "epoch-000001", "epoch": 1}} into {ck / "last.json"}; '
           f"or start it afresh in {run} from --config {run / 'config.toml'} with --overwrite")
    optimizer, group = state["optimizer"], state["optimizer"]["param_groups"][0]
    swapped = {**optimizer, "state": {**optimizer["state"], 0: optimizer["state"][1]}}  # as many, of other shapes
    for damaged, why in [
        ({"optimizer": {**optimizer, "param_groups": [{**group, "params": group["params"][:3]}]}},
         "'optimizer' does not fit this training (optimizer['param_groups'][0]['params'] holds 3 values, "
         "this training's 8)"),
        ({"optimizer": swapped}, "'optimizer' does not fit this training (optimizer['state'][0]['exp_avg'] has shape "
                                 "(4,), its parameter's shape (4, 1, 3, 3))"),
        ({"optimizer": {"state": {}}}, "'optimizer' does not fit this training (no 'param_groups')"),
        ({"scheduler": {**state["scheduler"], "last_epoch": "8"}},
         "'scheduler' does not fit this training (scheduler['last_epoch'] is a str, not a number)"),
        ({"scaler": {**state["scaler"], "scale": None}},
         "'scaler' does not fit this training (scaler['scale'] is a NoneType, not a number)"),
        ({"history": [{"epoch": 1}]}, "'history' does not fit this training (history[0]: EpochStats.__init__() missing 4"),
    ]:
        torch.save({**state, **damaged}, newest / "state.pt")
        error = cli("train", "--resume", run, "--epochs", "3").error
        assert error.startswith(f"aekit: error: {newest / 'state.pt'}: {why}") and error.endswith(fix), error
    torch.save(state, newest / "state.pt")
    assert cli("train", "--resume", run, "--epochs", "3", "--no-progress").code == 0


def test_with_train_ema_state_pt_does_not_hold_the_average_again_and_older_checkpoints_still_resume(tmp_path, cli):
    """The average is the checkpoint's model.safetensors: state.pt held a second copy of it. A checkpoint written
    with that copy (by earlier versions) resumes to the same weights as one without."""
    run = tmp_path / "run"
    aekit.train(_npy_config(tmp_path, epochs=2, checkpoint_every=1, ema=0.9), out=run, progress=False,
                log=lambda s: None)
    older = tmp_path / "older"
    shutil.copytree(run, older)
    state_file = older / "checkpoints" / "epoch-000002" / "state.pt"
    state = torch.load(state_file, weights_only=True)
    assert set(state["average"]) == {"steps"} and state["average"]["steps"] == 8
    average = load_file(str(older / "checkpoints" / "epoch-000002" / "model.safetensors"))
    torch.save({**state, "average": {**state["average"], "average": average}}, state_file)
    for folder in (run, older):
        assert cli("train", "--resume", folder, "--epochs", "3", "--no-progress").code == 0
    a, b = weights(run), weights(older)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], average[k]) for k in a if a[k].is_floating_point())  # the resume trained on
