"""The `aekit` command: help with examples, the registry, and one-line errors for bad input."""

import pytest

from aekit.cli import main
from aekit.configs import HERE as CONFIGS  # the shipped configs (not the checkout's link, a file on Windows)
from aekit.models import list_models
from helpers import aekit_process

@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "hybird"], "error: --model: unknown model 'hybird' (did you mean 'hybrid'?)"),
        (["--epochs", "0"], "error: --epochs must be at least 1"),  # the flag, not a config key or "options:"
        (["--model", "unet", "--code-length", "5"], "error: --code-length of unet is the code's channels"),
        (["--code-length", "0"], "--code-length must be at least 1"),
        (["--config", "missing.toml"], "missing.toml: config file not found"),
        (["--data", "nowhere"], "--data 'nowhere': unknown data source"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--seed", "-1"], "--seed must lie in [0, 2147483647], got -1"),
        (["--lr", "-1"], "--lr must be 0 or more"),
        (["--device", "cuda:0"], "--device cuda:0: CUDA is not available"),
        (["--split", "subjet"], "--split: 'subjet' is not one of 'random', 'subject' (did you mean 'subject'?)"),
        (["--split", "subject", "--test-fraction", "0.5"], "--test-fraction applies to the random split; --split "
                                                           "subject holds out the last 20% of the labels"),
        (["--nproc", "2", "--dist-timeout", "-1"], "--dist-timeout must be a positive number of seconds, got -1.0"),
        (["--nproc", "2", "--dist-timeout", "inf"], "--dist-timeout must be a positive number of seconds, got inf"),
        (["--dist-timeout", "30"], "--dist-timeout bounds the waits of several processes (--nproc, torchrun), and "
                                   "this is one process: drop it"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, cli, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert message in cli("train", "--out", tmp_path / "r", *args).error
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["../evil", "", "a/b"])
def test_a_run_name_that_is_not_a_plain_file_name_is_refused_before_any_work(name, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "so it must be non-empty, without / (give --out to put the run elsewhere)" in cli("train", "--name", name).error
    assert list(tmp_path.iterdir()) == []  # no runs/ folder, nothing outside it


def test_models_lists_every_registered_model(cli):
    r = cli("models")
    listed = [line.split()[0] for line in r.out.splitlines() if line and not line.startswith(" ")]
    assert r.code == 0 and listed == list_models() and len(listed) >= 4


@pytest.mark.parametrize("command", [[], ["train"], ["models"], ["evaluate"], ["sample"]])
def test_help_shows_examples(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0 and "examples:" in capsys.readouterr().out


@pytest.mark.slow
def test_the_command_runs_as_a_module_and_exits_2_on_bad_input():
    r = aekit_process("train", "--help")
    assert r.returncode == 0 and "examples:" in r.stdout
    r = aekit_process("train", "--epochs", "0", "--out", "/nonexistent/r")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, said", [
    (["train", "--eppochs", "2"], "aekit train: error: unrecognized arguments: --eppochs 2 (did you mean '--epochs'?) "
                                  "(see aekit train --help)"),
    (["train", "--epochs", "abc"], "aekit train: error: argument --epochs: invalid int value: 'abc' "
                                   "(see aekit train --help)"),
    (["evaluate"], "aekit evaluate: error: the following arguments are required: RUN (see aekit evaluate --help)"),
    (["--bogus"], "aekit: error: unrecognized arguments: --bogus (see aekit --help)"),
])
def test_a_mistake_argparse_catches_is_one_line_too(args, said, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and capsys.readouterr().err == said + "\n"  # not the usage first


def test_a_reference_config_keeps_its_exact_reshape(cli, tmp_path):
    err = cli("train", "--config", CONFIGS / "reference.toml", "--code-length", "100", "--out", tmp_path / "r").error
    assert "--code-length 100 does not fit the architecture" in err and "multiple of 256" in err


def test_an_error_names_each_plain_parameter_once_so_the_flag_lands_on_it():
    """The CLI shows a plain parameter an error names (``threshold``) as its flag at its first use only:
    a message that uses the word twice would get the flag on the wrong one. Every literal message is checked."""
    import ast
    import re
    from pathlib import Path

    import aekit

    twice = []
    for path in Path(aekit.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args and any(k.arg == "keys" for k in node.keywords)):
                continue
            keys = next(k.value for k in node.keywords if k.arg == "keys")
            names = [e.value for e in (keys.elts if isinstance(keys, ast.Tuple) else [keys]) if isinstance(e, ast.Constant)]
            message = node.args[0]
            parts = message.values if isinstance(message, ast.JoinedStr) else [message]
            text = "".join(p.value if isinstance(p, ast.Constant) and isinstance(p.value, str) else "{}" for p in parts)
            for name in (n for n in names if isinstance(n, str) and "." not in n):
                if len(re.findall(rf"(?<![\w.\-/]){re.escape(name)}(?![\w-]|\.\w)", text)) > 1:
                    twice.append(f"{path.name}:{node.lineno} {name}")
    assert twice == []


def test_output_to_a_reader_that_went_away_stops_quietly():
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # `aekit models | head -0`: nobody reads
    r = subprocess.run([sys.executable, "-m", "aekit", "models"], stdout=write, stderr=subprocess.PIPE, text=True,
                       timeout=120)
    os.close(write)
    assert r.returncode == 141 and r.stderr == "", (r.returncode, r.stderr)


def test_a_name_stdout_cannot_encode_is_escaped_not_an_error(tmp_path, monkeypatch):
    """Windows writes redirected output in its ANSI code page (cp1252): a file name outside it stopped the command
    with a UnicodeEncodeError after the work was done."""
    import io
    import sys

    import numpy as np

    np.save(tmp_path / "two.npy", np.zeros((2, 8, 8), np.float32))
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["data", str(tmp_path / "two.npy"), "--out", str(tmp_path / "写真")]) == 0
    stdout.flush()
    escaped = str(tmp_path / "写真").encode("cp1252", errors="backslashreplace").decode("cp1252")
    assert escaped.endswith("\\u5199\\u771f") and f"to {escaped}" in stdout.buffer.getvalue().decode("cp1252")
    assert stdout.errors == "strict"  # as the caller had it


def test_a_reader_that_went_away_on_windows_stops_quietly_too(monkeypatch, capsys):
    """Windows has no signal.SIGPIPE: the branch for a reader that went away failed with an AttributeError."""
    import signal

    from aekit.cli import artifacts

    def gone(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.delattr(signal, "SIGPIPE")
    monkeypatch.setattr(artifacts, "print", gone, raising=False)
    assert main(["models"]) == 141 and capsys.readouterr().err == ""


@pytest.mark.slow
def test_a_path_that_starts_with_a_tilde_is_in_the_home_folder(tmp_path, monkeypatch, cli):
    """Every path a user gives, where no shell expands ~: after --out= (bash), in quotes, in cmd.exe, in Python. It was
    a folder named ~ in the current one (--out, aekit.train's out) or "not found" (RUN, --config, a noise map)."""
    import numpy as np
    import torch

    import aekit
    from helpers import make_folder

    home, here = tmp_path / "home", tmp_path / "here"
    here.mkdir()
    make_folder(home / "pics", 3, size=(32, 32), subfolders=())
    np.save(home / "faces.npy", np.random.default_rng(0).random((12, 32, 32), dtype=np.float32))
    np.save(home / "sigma.npy", np.full((32, 32), 0.1, np.float32))
    (home / "c.toml").write_text("[model]\nencoder_channels = [4, 4, 4, 4]\ndecoder_channels = [4, 4, 4]\n"
                                 "[train]\nepochs = 1\ncompare = false\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))  # Windows' home
    monkeypatch.chdir(here)
    commands = [["train", "--config", "~/c.toml", "--data", "~/faces.npy", "--noise", "gaussian-map:~/sigma.npy",
                 "--out=~/runs/r"],
                ["train", "--resume", "~/runs/r", "--epochs", "2"],
                ["evaluate", "~/runs/r", "--out=~/ev.json"],
                ["encode", "~/runs/r", "~/pics", "--out=~/codes.npy"],
                ["decode", "~/runs/r", "~/codes.npy", "--out=~/decoded"],
                ["denoise", "~/runs/r", "~/pics", "--out=~/clean"],
                ["score", "~/runs/r", "~/pics", "--out=~/scores.csv"],
                ["export", "~/runs/r", "--out=~/model.pt"],
                ["report", "~/runs/r"],
                ["data", "~/faces.npy", "--out=~/pngs"]]
    for command in commands:
        r = cli(*command, *(["--no-progress"] if command[0] == "train" else []))
        assert r.code == 0, (command, r.err)
    assert list(here.iterdir()) == []  # no folder named ~ here
    assert all((home / name).exists() for name in ("runs/r/report.html", "ev.json", "codes.txt", "decoded/0000-img-00.png",
                                                    "clean/img-00.png", "scores.csv", "model.pt", "pngs"))
    cfg = aekit.load_config("~/c.toml")
    assert aekit.train(cfg, out="~/runs/api", progress=False, log=lambda s: None).out == home / "runs" / "api"
    assert aekit.RunFolder("~/runs/api").is_run() and aekit.load("~/runs/api") is not None
    aekit.inference.denoise_files("~/runs/api", [str(home / "pics")], "~/clean-api")  # new_files
    aekit.latent.write_pngs(torch.zeros(1, 1, 8, 8), "~/pngs-api")
    assert (home / "clean-api" / "img-00.png").is_file() and (home / "pngs-api" / "0000.png").is_file()
    assert list(here.iterdir()) == []
