"""Several aekit commands on one run at once: a training holds the run alone, an evaluation never writes the
figures of a model that was replaced meanwhile, and a plain kill stops a training as Ctrl-C does."""

import os
import signal
import subprocess
import sys
import time

import pytest

import aekit
from aekit.evaluation import evaluate_run
from aekit.run_folder import RunFolder
from helpers import aekit_process, make_folder, one_line_error


@pytest.fixture
def photos(tmp_path):
    return make_folder(tmp_path / "photos", 12, size=(16, 16), subfolders=())


def _train(photos, out, *more):
    return ["train", "--data", photos, "--size", "16x16", "--no-compare", "--no-progress", "--out", out, *more]


def test_a_run_being_trained_is_neither_trained_nor_evaluated_by_another_command(tmp_path, photos):
    run = tmp_path / "run"
    assert aekit_process(*_train(photos, run, "--epochs", "1")).returncode == 0
    busy = subprocess.Popen([sys.executable, "-m", "aekit", *map(str, _train(photos, run, "--epochs", "100000", "--no-select",
                            "--overwrite"))], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = tmp_path / ".run.lock"
        deadline = time.monotonic() + 120
        while not (lock.exists() and (run / "checkpoints").is_dir()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lock.exists(), busy.stderr.read() if busy.poll() is not None else "no lock"
        for command in (_train(photos, run, "--epochs", "1", "--overwrite"), ["train", "--resume", run],
                        ["evaluate", run]):
            err = one_line_error(aekit_process(*command))
            assert err == (f"aekit: error: {run}: another aekit command is training or evaluating this run now; "
                           "run this one again when it has finished"), err
        busy.send_signal(signal.SIGTERM)  # a plain kill: stopped as Ctrl-C stops it, with what it keeps
        out, err = busy.communicate(timeout=120)
    finally:
        busy.kill()
    assert busy.returncode == 128 + signal.SIGTERM, err
    assert err.strip().endswith("aekit: stopped by SIGTERM") and "Traceback" not in err, err
    assert f"aekit train --resume {run} continues from it (the run it replaces waits in {tmp_path / '.run.replaced'}" in out
    assert not lock.exists()
    assert aekit_process(*_train(photos, run, "--epochs", "1", "--overwrite")).returncode == 0  # free again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "run"]


def test_a_kill_before_the_first_checkpoint_gives_the_folder_back_to_the_run_it_replaced(tmp_path, photos, cli,
                                                                                         monkeypatch):
    run = tmp_path / "run"
    assert cli(*_train(photos, run, "--epochs", "1")).code == 0
    old = (run / "model.safetensors").read_bytes()

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # this process, in its first epoch
        time.sleep(5)

    monkeypatch.setattr(aekit.run, "fit", killed)
    r = cli(*_train(photos, run, "--epochs", "3", "--overwrite"))
    assert r.code == 128 + signal.SIGTERM and r.err.strip() == "aekit: stopped by SIGTERM", r
    assert f"before the first checkpoint: {run} holds the run it replaced again" in r.out
    assert (run / "model.safetensors").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "run"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the command's handler is gone with it


def test_an_evaluation_of_a_model_replaced_meanwhile_writes_nothing(tmp_path, photos, monkeypatch):
    run = tmp_path / "run"
    assert aekit_process(*_train(photos, run, "--epochs", "1")).returncode == 0
    stamps = iter([(1, 1, 1), (2, 2, 2)])  # the model file another training wrote while this one scored the old
    monkeypatch.setattr(RunFolder, "weights_stamp", lambda self: next(stamps))
    with pytest.raises(aekit.AekitError, match="its model changed while it was evaluated .*nothing was written"):
        evaluate_run(run)
    assert not (run / "evaluation.json").exists() and not (run / "evaluation.png").exists()


def test_a_resume_drops_the_evaluation_of_the_model_it_replaces(tmp_path, photos):
    run = tmp_path / "run"
    assert aekit_process(*_train(photos, run, "--epochs", "1")).returncode == 0
    assert aekit_process("evaluate", run).returncode == 0
    assert aekit_process("train", "--resume", run, "--epochs", "2", "--no-progress").returncode == 0
    assert not (run / "evaluation.json").exists() and "evaluation.json" not in (run / "report.html").read_text()


def test_a_run_whose_replacement_was_killed_says_where_it_is(tmp_path, photos):
    run = tmp_path / "run"
    assert aekit_process(*_train(photos, run, "--epochs", "1")).returncode == 0
    run.rename(tmp_path / ".run.replaced")  # as a kill -9 of an --overwrite before its first checkpoint leaves it
    run.mkdir()
    (run / "config.toml").write_text((tmp_path / ".run.replaced" / "config.toml").read_text())
    err = one_line_error(aekit_process("evaluate", run))
    assert err.endswith(f"the run it replaces is in {tmp_path / '.run.replaced'}: move it back in place of {run}"), err


def test_a_run_in_the_current_folder_locks_beside_it(tmp_path, photos, cli, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert cli(*_train(photos, ".", "--epochs", "1")).code == 0  # its lock is not a file in the (empty) folder
    assert (tmp_path / "here" / "model.json").is_file() and not list(tmp_path.glob(".*"))
