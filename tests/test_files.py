"""Atomic writes: a failed write is one line naming the file, and files that belong together change together."""

import errno
import os
import stat

import numpy as np
import pytest

import aekit
from aekit.files import WriteError, atomic_paths, lock_file, new_file, read_json, write_json, write_text, writing
from helpers import aekit_process, make_folder, one_line_error

try:
    import resource
except ImportError:  # Windows: no file size limit, and the test of it is skipped
    resource = None


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_json(target, {"old": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pathlib.Path.write_bytes", full)
    with pytest.raises(WriteError) as e:
        write_json(target, {"new": 2})
    assert str(e.value) == f"cannot write {target}: No space left on device (free some space or write elsewhere)"
    assert target.read_text() == '{\n  "old": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left


def test_files_that_belong_together_change_together(tmp_path):
    a, b = tmp_path / "codes.npy", tmp_path / "codes.txt"
    a.write_text("old a")
    b.write_text("old b")
    with pytest.raises(RuntimeError):
        with atomic_paths(a, b) as (ta, tb):
            ta.write_text("new a")
            raise RuntimeError("the second file could not be made")
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    with atomic_paths(a, b) as (ta, tb):
        ta.write_text("new a")
        tb.write_text("new b")
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.npy", "codes.txt"]


def test_an_error_about_another_file_is_not_called_a_write_failure(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_paths(tmp_path / "out.json"):
            open(tmp_path / "missing.json").close()


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real(p, mode))
    with pytest.raises(WriteError, match="out .*: the folder is not writable") as e:
        new_file(tmp_path / "codes.npy", overwrite=False)
    assert e.value.keys == ("out",)


def limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # Python ignores SIGXFSZ: writes fail (EFBIG)


@pytest.mark.skipif(resource is None, reason="no file size limit (ulimit -f) on this system")
def test_training_past_the_file_size_limit_is_one_line_naming_the_checkpoint(tmp_path):
    import subprocess
    import sys

    source = tmp_path / "images.npy"
    np.save(source, np.random.default_rng(0).random((20, 16, 16), dtype=np.float32))
    r = subprocess.run([sys.executable, "-m", "aekit", "train", "--data", str(source), "--epochs", "1", "--no-compare",
                        "--out", str(tmp_path / "run"), "--no-progress"], capture_output=True, text=True,
                       preexec_fn=limit_file_size, timeout=600)
    err = one_line_error(r)
    assert f"cannot write {tmp_path / 'run'}" in err and "File too large (the file size limit (ulimit -f)" in err, err
    assert ".tmp" not in err and not list((tmp_path / "run").rglob("*.tmp")), err


def test_file_names_that_are_not_utf8_are_listed_as_their_bytes(tmp_path, cli):
    run = tmp_path / "run"
    aekit.save(aekit.create_model("conv", input_size=[16, 16], code_length=8), run)
    folder = make_folder(tmp_path / "faces", 2, size=(16, 16), subfolders=())
    odd = os.fsencode(folder) + b"/caf\xe9.png"  # Latin-1, not UTF-8
    os.rename(next(folder.iterdir()), odd)
    assert cli("encode", run, folder, "--out", tmp_path / "codes.npy").code == 0
    assert b"caf\xe9.png\n" in (tmp_path / "codes.txt").read_bytes()
    assert cli("decode", run, tmp_path / "codes.npy", "--out", tmp_path / "decoded").code == 0
    assert sorted(os.listdir(os.fsencode(tmp_path / "decoded")))[0] == b"0000-caf\xe9.png"
    assert cli("score", run, folder, "--threshold", "0.1", "--out", tmp_path / "scores.csv").code == 0
    assert b"caf\xe9.png," in (tmp_path / "scores.csv").read_bytes()


def test_a_checkpoint_is_as_readable_as_the_other_files_of_the_run(tmp_path):
    source = tmp_path / "images.npy"
    np.save(source, np.random.default_rng(0).random((20, 16, 16), dtype=np.float32))
    r = aekit_process("train", "--data", source, "--epochs", "1", "--no-compare", "--out", tmp_path / "run",
                      "--no-progress")
    assert r.returncode == 0, r.stderr
    (checkpoint,) = [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.is_dir()]
    mode = stat.S_IMODE(checkpoint.stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "run").stat().st_mode), oct(mode)


def test_text_is_written_as_utf8(tmp_path):
    write_text(tmp_path / "a.txt", "é\n")
    assert (tmp_path / "a.txt").read_bytes() == "é\n".encode()


def test_an_output_another_command_wrote_meanwhile_is_kept_without_overwrite(tmp_path):
    codes, names = tmp_path / "codes.npy", tmp_path / "codes.txt"
    new_file(codes, overwrite=False, suffix=".npy", beside=(".txt",))  # free when the command starts
    names.write_text("another command's names\n")  # ... and written by another before this one ends
    with pytest.raises(aekit.AekitError, match="out .*codes.txt: another command wrote it while this one ran") as e:
        with atomic_paths(codes, names) as (tc, tn):
            tc.write_text("codes")
            tn.write_text("names")
    assert e.value.keys == ("out", "overwrite")
    assert not codes.exists() and names.read_text() == "another command's names\n"  # neither half of this one
    new_file(codes, overwrite=True, suffix=".npy", beside=(".txt",))  # with overwrite: replaced at the write
    names.write_text("theirs")
    with atomic_paths(codes, names) as (tc, tn):
        tc.write_text("codes")
        tn.write_text("names")
    assert names.read_text() == "names"


def test_the_aekit_commands_write_the_outputs_they_checked(tmp_path, cli):
    run = tmp_path / "run"
    aekit.save(aekit.create_model("conv", input_size=[16, 16], code_length=8), run)
    folder = make_folder(tmp_path / "faces", 2, size=(16, 16), subfolders=())
    assert cli("encode", run, folder, "--out", tmp_path / "codes.npy").code == 0
    assert cli("encode", run, folder, "--out", tmp_path / "codes.npy", "--overwrite").code == 0
    assert cli("denoise", run, folder, "--out", tmp_path / "clean").code == 0
    assert len(list((tmp_path / "clean").iterdir())) == 2


def flock_failing(code: int):
    def flock(fd, operation):
        raise OSError(code, os.strerror(code))

    return flock


@pytest.mark.parametrize("code", [errno.ENOTSUP, errno.ENOLCK, errno.ENOSYS])
def test_a_file_system_without_locks_locks_nothing(tmp_path, monkeypatch, code):
    """flock on an SMB share (macOS) or a virtual machine's shared folder: not supported there, as without fcntl."""
    fcntl = pytest.importorskip("fcntl")
    monkeypatch.setattr(fcntl, "flock", flock_failing(code))
    for shared in (True, False):
        with lock_file(tmp_path / ".run.lock", shared=shared, busy="busy"):
            (tmp_path / "run").mkdir(exist_ok=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no lock file left
    monkeypatch.setattr(fcntl, "flock", flock_failing(errno.EIO))  # another failure is not taken for "no locks"
    with pytest.raises(OSError), lock_file(tmp_path / ".run.lock", shared=True, busy="busy"):
        pass


def test_a_lock_file_planted_as_a_link_creates_nothing_where_it_points(tmp_path):
    """A downloaded run unpacked beside ``.run.lock -> somewhere``: opening the lock created an empty file there."""
    pytest.importorskip("fcntl")
    os.symlink(tmp_path / "made-by-the-lock", tmp_path / ".run.lock")
    with lock_file(tmp_path / ".run.lock", shared=True, busy="busy"):
        pass
    assert not (tmp_path / "made-by-the-lock").exists()


@pytest.mark.parametrize("name, text", [("metrics.json", "[" * 100000 + "]" * 100000),
                                        ("model.json", '{"a":' * 100000 + "1" + "}" * 100000)])
def test_json_nested_too_deeply_is_one_line_naming_the_file(tmp_path, name, text):
    (tmp_path / "config.toml").write_text("")
    (tmp_path / name).write_text(text)
    read = (lambda: read_json(tmp_path / name)) if name == "metrics.json" else (lambda: aekit.load(tmp_path))
    with pytest.raises(aekit.AekitError, match=f"{tmp_path / name}: cannot read .*recursion"):
        read()


def test_a_toml_file_nested_too_deeply_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "deep.toml").write_text("[data]\nsize = " + "[" * 100000 + "]" * 100000 + "\n")
    with pytest.raises(aekit.ConfigError, match=f"{tmp_path / 'deep.toml'}: not a config file .*nested too deeply"):
        aekit.load_config(tmp_path / "deep.toml")


def test_a_name_close_to_the_file_system_limit_is_written(tmp_path):
    """The temporary file beside a target once added 14 characters to its name: a 242-255 byte name failed."""
    target = tmp_path / ("x" * 250 + ".txt")  # 254 bytes: the limit of most file systems is 255
    write_text(target, "fits")
    assert target.read_text() == "fits" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_file_another_program_holds_open_is_named_as_such(tmp_path, monkeypatch):
    """Windows: os.replace onto a file another program holds open (Excel showing history.csv) is refused with
    EACCES, in a folder that can be written: not "the folder is not writable"."""
    history = tmp_path / "history.csv"
    write_text(history, "epoch\n1\n")

    def held_open(src, dst):
        raise PermissionError(errno.EACCES, "Access is denied", str(dst))

    monkeypatch.setattr(os, "replace", held_open)
    with pytest.raises(WriteError) as e:
        write_text(history, "epoch\n1\n2\n")
    assert str(e.value) == (f"cannot write {history}: Access is denied (another program holds it open, or it is "
                            "read-only: close it, or make it writable)")
    with pytest.raises(WriteError, match=r"Access is denied \(another program holds a file in it open, or a shell is "
                                         r"in it: close them\)$"), writing(tmp_path):
        raise PermissionError(errno.EACCES, "Access is denied")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real(p, mode))
    with pytest.raises(WriteError, match=r"the folder is not writable"):
        write_text(history, "epoch\n")
