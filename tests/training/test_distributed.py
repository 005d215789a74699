"""Data-parallel training on several processes (torch.distributed, gloo over loopback).

Processes are started the two ways a user starts them: ``aekit train --nproc 2`` (torchrun's
standalone launcher) and by hand with the env:// variables torchrun sets (RANK, WORLD_SIZE, ...).
"""

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from aekit.cli import main
from aekit.training.distributed import without_nproc
from helpers import aekit_process

pytestmark = pytest.mark.slow  # several real processes

SMALL = """\
name = "small"
seed = 3
[data]
source = "{data}"
[model]
name = "conv"
encoder_channels = [4, 8]
encoder_strides = [2, 1]
decoder_channels = [8]
decoder_strides = [2]
[train]
batch_size = 50
eval_every = 1
device = "cpu"
"""  # 200 images: 160 to train on, in batches of 50, 50, 50 and 10 (each process: 25, 25, 25 and 5)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """The small model's config, on 200 smooth synthetic 32x32 images (no scikit-learn to import)."""
    tmp = tmp_path_factory.mktemp("data")
    g = torch.Generator().manual_seed(5)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    freq, phase = torch.rand(200, 2, 1, 1, generator=g) * 3 + 0.5, torch.rand(200, 1, 1, generator=g) * 6.28
    images = 0.5 + 0.4 * torch.sin(freq[:, 0] * 6.28 * xx + phase) * torch.cos(freq[:, 1] * 6.28 * yy)
    np.save(tmp / "images.npy", images.numpy().astype(np.float32))
    (tmp / "small.toml").write_text(SMALL.format(data=tmp / "images.npy"))
    return tmp / "small.toml"


def _aekit(*args, cwd=None, env=None):
    return aekit_process(*args, cwd=cwd, env=env, timeout=240)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _by_hand(args_per_rank, cwds):
    """Start one `python -m aekit` per rank with torchrun's environment variables; their results."""
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aekit", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(len(cwds)),
                            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"},
        )
        for rank, (args, cwd) in enumerate(zip(args_per_rank, cwds))
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        results.append((p.returncode, out, err))
    return results


def _history(run: Path) -> list[dict]:
    with open(run / "history.csv") as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, config):
    """The same run on 1 process (batch 50, 3 epochs) and on 2 (25 each): 2 epochs, then --resume to 3."""
    tmp = tmp_path_factory.mktemp("ddp")
    common = ["train", "--config", str(config), "--no-progress"]
    assert main([*common, "--epochs", "3", "--out", str(tmp / "one")]) == 0
    two = _aekit(*common, "--epochs", "2", "--out", str(tmp / "two"), "--nproc", "2")
    assert two.returncode == 0, two.stderr
    resumed = _aekit("train", "--resume", str(tmp / "two"), "--epochs", "3", "--no-progress", "--nproc", "2")
    assert resumed.returncode == 0, resumed.stderr
    return tmp, two, resumed


def test_a_mean_loss_is_not_scaled_by_the_number_of_processes(tmp_path, config):
    """psnr (and mse) losses are batch means: on two processes they must give the one-process numbers,
    as the summed l2 loss does (the trainer scales only summed losses by the number of processes)."""
    common = ["train", "--config", str(config), "--no-progress", "--epochs", "2", "--loss", "psnr"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    two = _aekit(*common, "--out", str(tmp_path / "two"), "--nproc", "2")
    assert two.returncode == 0, two.stderr
    for a, b in zip(_history(tmp_path / "one"), _history(tmp_path / "two")):
        for key in ("loss_per_sample", "heldout_loss_per_sample"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), (a["epoch"], key)
    assert _history(tmp_path / "one")[0]["loss_per_sample"] < 0  # minus a PSNR in dB


def test_two_processes_of_25_match_one_process_of_50(runs):
    tmp, two, resumed = runs
    one, both = _history(tmp / "one"), _history(tmp / "two")
    assert [h["epoch"] for h in both] == [1, 2, 3]  # 2 epochs, then one more after --resume
    for a, b in zip(one, both):
        for key in ("loss_per_sample", "code_mean", "heldout_loss_per_sample"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), (a["epoch"], key)
    assert both[0]["loss_per_sample"] != both[2]["loss_per_sample"]  # it did train
    # The weights agree as tensors, not element by element: two half-batches sum their gradients in
    # another order, and Adam turns a rounding-level gradient (a parameter the loss barely touches)
    # into a step of full size lr whose sign is the rounding's (seen: 0.3% of one layer's entries
    # off by 1e-3 on an AVX-512 CPU, every tensor within 1% in norm).
    w1, w2 = load_file(tmp / "one" / "model.safetensors"), load_file(tmp / "two" / "model.safetensors")
    for k in w1:
        assert float((w1[k] - w2[k]).norm() / w1[k].norm()) < 0.02, k


def test_rank_0_alone_prints_and_the_resumed_run_is_complete(runs):
    tmp, two, resumed = runs
    assert two.stdout.count("Epoch 1)") == 1 and two.stdout.count("Run folder:") == 1
    assert resumed.stdout.count("Epoch 3)") == 1 and "Epoch 2)" not in resumed.stdout
    metrics = json.loads((tmp / "two" / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["processes"] == 2  # what a resume needs
    state = torch.load(next((tmp / "two" / "checkpoints").glob("epoch-000003")) / "state.pt", weights_only=True)
    assert len(state["noise_rng"]) == 2  # one noise stream per process


def test_resuming_on_another_number_of_processes_is_an_error(runs, tmp_path, capsys):
    tmp, _, _ = runs
    assert main(["train", "--resume", str(tmp / "two"), "--epochs", "4", "--no-progress"]) == 2
    assert "written by 2 process(es); resume it with as many (--nproc), not 1" in capsys.readouterr().err


def test_an_epoch_longer_than_the_time_limit_is_cut_on_every_process(tmp_path, config):
    """Two processes agree where a long epoch stops (they stopped between epochs: a 2-minute limit took 5)."""
    r = _aekit("train", "--config", str(config), "--no-progress", "--no-compare", "--epochs", "5", "--batch-size", "10",
               "--max-time", "1e-6", "--out", str(tmp_path / "cut"), "--nproc", "2")
    assert r.returncode == 0, r.stderr
    assert "reached after epoch 1 (its first 1 of 15 batches: the epoch was longer than the limit)" in r.stdout, r.stdout
    assert len(_history(tmp_path / "cut")) == 1


def test_processes_whose_images_have_other_labels_stop_with_one_line(tmp_path, config):
    """The same pixels with other labels would split other people out by subject on each process."""
    cwds = [tmp_path / "a", tmp_path / "b"]
    images = np.load(config.parent / "images.npy")
    for c, labels in zip(cwds, [np.arange(200) // 10, np.arange(200) // 20]):
        c.mkdir()
        np.savez(c / "faces.npz", images=images, labels=labels)
    args = ["train", "--config", str(config), "--data", "faces.npz", "--split", "subject", "--epochs", "1", "--out",
            "run", "--no-progress", "--dist-timeout", "60"]
    results = _by_hand([args, args], cwds)
    assert [rc for rc, _, _ in results] == [2, 2], results
    assert results[0][2].startswith("aekit: error: rank 1 of 2 read other images than rank 0 from "), results[0][2]


def test_only_rank_0_writes_files(tmp_path, config):
    cwds = [tmp_path / "rank0", tmp_path / "rank1"]
    for c in cwds:
        c.mkdir()
    args = ["train", "--config", str(config), "--epochs", "1", "--out", "run", "--no-progress"]
    (rc0, out0, err0), (rc1, out1, err1) = _by_hand([args, args], cwds)
    assert (rc0, rc1) == (0, 0), err0 + err1
    assert (cwds[0] / "run" / "metrics.json").is_file() and (cwds[0] / "run" / "checkpoints").is_dir()
    assert list(cwds[1].iterdir()) == []  # rank 1 wrote nothing (its --out is relative to its own folder)
    assert "Epoch 1)" in out0 and out1 == ""


def test_processes_with_different_configs_stop_with_one_line(tmp_path, config):
    args = ["train", "--config", str(config), "--epochs", "1", "--out", str(tmp_path / "r")]
    results = _by_hand([args + ["--lr", "0.001"], args + ["--lr", "0.002"]], [tmp_path, tmp_path])
    assert [rc for rc, _, _ in results] == [2, 2]
    assert [err.strip() for _, _, err in results] == [  # rank 0 says it for the job
        "aekit: error: the processes run different configurations: train.lr is 0.001 on rank 0 but 0.002 on rank 1 "
        "(start every process with the same command)", ""]


def test_processes_that_read_other_files_stop_with_one_line_before_training(tmp_path, config):
    """The same command on every process, but the files differ (machines without a shared file system): other
    images, or another copy of the run folder to resume; one line from rank 0, exit 2 everywhere, nothing trained."""
    cwds = [tmp_path / "a", tmp_path / "b"]
    images = np.load(config.parent / "images.npy")
    for c, x in zip(cwds, [images, images[::-1].copy()]):  # the same shape and name, other pixels
        c.mkdir()
        np.save(c / "images.npy", x)
    args = ["train", "--config", str(config), "--data", "images.npy", "--epochs", "1", "--out", "run", "--no-progress",
            "--dist-timeout", "60"]
    results = _by_hand([args, args], cwds)
    assert [rc for rc, _, _ in results] == [2, 2] and results[1][2] == "", results
    assert results[0][2].startswith("aekit: error: rank 1 of 2 read other images than rank 0 from ") and results[0][2].strip(
        ).endswith("every process must train on the same images (on several machines: the same files, e.g. on a "
                   "shared file system)")
    assert not (cwds[0] / "run").exists()

    np.save(cwds[1] / "images.npy", images)  # the same images now; rank 1's run folder a copy one epoch behind
    assert [rc for rc, _, _ in _by_hand([args, args], cwds)] == [0, 0]
    shutil.copytree(cwds[0] / "run", cwds[1] / "run")
    resume = ["train", "--resume", "run", "--no-progress", "--dist-timeout", "60"]
    assert [rc for rc, _, _ in _by_hand([resume + ["--epochs", "2"]] * 2, [cwds[0], cwds[0]])] == [0, 0]
    (rc0, _, err0), (rc1, _, err1) = _by_hand([resume + ["--epochs", "3"]] * 2, cwds)
    assert (rc0, rc1, err1) == (2, 2, "") and err0.strip() == (
        "aekit: error: rank 1 of 2 resumes from another checkpoint than rank 0 (epoch 1 there, epoch 2 on rank 0): "
        "every process must read the same run folder (on several machines: the same files, e.g. on a shared file "
        "system)")
    assert _history(cwds[0] / "run")[-1]["epoch"] == 2  # untouched

    shutil.rmtree(cwds[1] / "run")  # rank 1 has no run folder at all: it says so, and rank 0 that it has gone
    (rc0, _, err0), (rc1, _, err1) = _by_hand([resume + ["--epochs", "3"]] * 2, cwds)
    assert (rc0, rc1) == (2, 2) and "run: no config.toml" in err1
    assert err0.strip() == "aekit: error: rank 0 of 2: another process stopped before training began (its own output says why)"


def test_a_process_that_dies_stops_the_others_with_one_line_naming_the_checkpoint(tmp_path, config):
    cwds = [tmp_path / "a", tmp_path / "b"]
    for c in cwds:
        c.mkdir()
    args = ["train", "--config", str(config), "--epochs", "300", "--out", "run", "--no-progress", "--dist-timeout", "60"]
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-m", "aekit", *args], cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"})
             for rank, cwd in enumerate(cwds)]
    for line in procs[0].stdout:
        if line.startswith("Epoch 2)"):
            break
    procs[1].kill()  # SIGKILL: no word from it
    out, err = procs[0].communicate(timeout=120)
    procs[1].communicate(timeout=10)
    assert procs[0].returncode == 2, err
    assert re.fullmatch(r"aekit: error: rank 0 of 2: another process stopped or cannot be reached \(its own output "
                        r"says why\); the newest checkpoint is epoch \d+: aekit train --resume run continues from it\n",
                        err), err


def test_an_unreachable_rendezvous_times_out_naming_the_endpoint(tmp_path):
    port = _free_port()  # nothing listens there
    r = _aekit("train", "--epochs", "1", "--out", str(tmp_path / "r"), "--dist-timeout", "2",
               env={"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(port)})
    assert r.returncode == 2
    assert r.stderr.strip() == (f"aekit: error: rank 1 of 2: nothing answered at 127.0.0.1:{port} within 2 s "
                                "(is rank 0 running there, and reachable from here? --dist-timeout sets the wait)")
    assert not (tmp_path / "r").exists()


def test_a_backend_that_torch_does_not_have_is_named(tmp_path):
    r = _aekit("train", "--epochs", "1", "--out", str(tmp_path / "r"),
               env={"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(_free_port()), "AEKIT_DIST_BACKEND": "bogus"})
    assert r.returncode == 2 and r.stderr.strip() == ("aekit: error: AEKIT_DIST_BACKEND=bogus: not a torch.distributed "
                                                      "backend (gloo, nccl, mpi, ucc); unset it for torch's own choice")


def test_more_processes_than_samples_in_a_batch_is_an_error(tmp_path, config):
    r = _aekit("train", "--config", str(config), "--batch-size", "1", "--epochs", "1",
               "--out", str(tmp_path / "r"), "--nproc", "2")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines and set(lines) == {"aekit: error: --batch-size 1 is smaller than the 2 processes: every "
                                    "process needs at least one sample of each batch"}


@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "aekit: interrupted"),
                                             (signal.SIGTERM, 143, "aekit: stopped by SIGTERM, and its 2 processes with it")])
def test_a_signal_to_the_launcher_stops_every_process_with_one_line(tmp_path, config, sig, code, said):
    """Ctrl-C (or a kill) of ``aekit train --nproc 2``: the shell's exit status, one line, no traceback or
    torch warning; after Ctrl-C rank 0 says which checkpoint to resume from, as one process does."""
    proc = subprocess.Popen([sys.executable, "-m", "aekit", "train", "--config", str(config), "--epochs", "200",
                             "--out", str(tmp_path / "r"), "--no-progress", "--nproc", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:
        if line.startswith("Epoch 2)"):
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code and err.strip().splitlines() == [said], err
    assert (sig != signal.SIGINT) or "Interrupted after epoch" in out


def test_nproc_under_torchrun_is_an_error(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--nproc", "2"]) == 2
    assert "--nproc 2: this process is already one of 2 started by a launcher (torchrun); drop the option" in (
        capsys.readouterr().err)


@pytest.mark.parametrize("argv, expected", [
    (["train", "--nproc", "2", "--epochs", "3"], ["train", "--epochs", "3"]),
    (["--debug", "train", "--nproc=2"], ["--debug", "train"]),
    (["train", "--npro", "4", "--name", "x"], ["train", "--name", "x"]),
    (["train", "--name", "x", "--no-progress"], ["train", "--name", "x", "--no-progress"]),
])
def test_the_launcher_drops_nproc_in_any_spelling(argv, expected):
    assert without_nproc(argv) == expected


@pytest.mark.parametrize("platform, libuv", [("win32", "0"), ("linux", None)])
def test_the_launcher_asks_for_no_libuv_on_windows(monkeypatch, platform, libuv):
    """torch's Windows wheels (2.4 and later) have no libuv, and torchrun's store asks for it unless USE_LIBUV=0."""
    from aekit.training import distributed

    seen = {}
    monkeypatch.delenv("USE_LIBUV", raising=False)
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(distributed, "run", lambda args: seen.update(os.environ, nproc=args.nproc_per_node))
    assert distributed.launch(2, ["train", "--nproc", "2"]) == 0
    assert (seen.get("USE_LIBUV"), seen["nproc"]) == (libuv, "2") and "USE_LIBUV" not in os.environ
