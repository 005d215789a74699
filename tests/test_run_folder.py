"""The run folder's own files read back (run_folder.py): a damaged one is one line naming it and the fix."""

import json
import shutil
import tomllib

import numpy as np
import pytest
import tomli_w

import aekit
from aekit.config import replace
from aekit.config_file import keys_of
from aekit.run_folder import RunFolder


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished 1-epoch run of a small conv model on 20 synthetic 16x16 images in a .npy file."""
    folder = tmp_path_factory.mktemp("small")
    np.save(folder / "images.npy", np.random.default_rng(0).random((20, 16, 16), dtype=np.float32))
    cfg = replace(aekit.Config(), **{
        "data.source": str(folder / "images.npy"), "model.input_size": [16, 16], "model.code_length": 16,
        "model.encoder_channels": [4], "model.encoder_strides": [2], "model.decoder_channels": [4],
        "model.decoder_strides": [2], "train.epochs": 1, "train.batch_size": 4, "train.threads": 1,
        "train.device": "cpu", "train.compare": False})
    return aekit.train(cfg, out=folder / "run", progress=False, log=lambda s: None).out


@pytest.fixture
def run(small_run, tmp_path):
    """A private copy of the small run."""
    return shutil.copytree(small_run, tmp_path / "run")


def test_a_metrics_or_evaluation_json_holding_no_table_names_the_file_and_the_fix(run, cli):
    """A list in metrics.json was an AttributeError of aekit report; deleting it and resuming writes it again."""
    (run / "metrics.json").write_text("[1, 2]")
    assert cli("report", run).error == (f"aekit: error: {run / 'metrics.json'}: damaged (a JSON list, not the table "
                                        f"aekit writes); delete it, and aekit train --resume {run} writes it again")
    (run / "metrics.json").unlink()
    assert cli("train", "--resume", run, "--no-progress").code == 0
    assert json.loads((run / "metrics.json").read_text())["status"] == "complete"
    (run / "evaluation.json").write_text('"done"')
    assert cli("report", run).error == (f"aekit: error: {run / 'evaluation.json'}: damaged (a JSON str, not the table "
                                        f"aekit writes); delete it, or aekit evaluate {run} again")


@pytest.mark.parametrize("section, why", [
    ({"comparison": 5}, "comparison is 5, not a table"),
    ({"heldout": "x"}, "heldout is 'x', not a table"),
    ({"train": {"images": 16, "recon_spread": "low"}}, "train.recon_spread is 'low', not a number"),
    ({"selection": {"chosen_epoch": 1, "epochs_run": 1, "validation_loss": None, "validation_images": 2}},
     "selection.validation_loss is null"),
    ({"comparison": {"images": 4, "margin_db": 0.5, "aekit": {"psnr": 20.0, "ssim": 0.5}}}, "no comparison.baseline"),
])
def test_a_metrics_json_section_of_another_form_names_the_file_the_key_and_the_fix(run, cli, section, why):
    """A section the report reads, of another type ("comparison": 5 was a TypeError of aekit report, "heldout": "x" an
    AttributeError): one line naming the file and the key; a null section (none computed) is left out."""
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, **section}))
    assert cli("report", run).error == (f"aekit: error: {run / 'metrics.json'}: damaged ({why}); delete it, and aekit "
                                        f"train --resume {run} writes it again")
    (run / "metrics.json").write_text(json.dumps({**metrics, "heldout": None, "selection": None, "comparison": None}))
    assert cli("report", run).code == 0


@pytest.mark.parametrize("content, why", [
    (b"epoch,loss_per_sample\n1,\xb9\xff\n", "damaged (not UTF-8 text (byte 24))"),
    (b"epoch,loss_per_sample\n1,2,3\n", "not a history file of numbers (float() argument"),
    (b"epoch,loss_per_sample\n1,many\n", "not a history file of numbers (could not convert"),
])
def test_a_damaged_history_csv_names_the_file_and_the_fix(run, cli, content, why):
    """Binary bytes were a UnicodeDecodeError of aekit report; without the file the report leaves the curves out."""
    (run / "history.csv").write_bytes(content)
    error = cli("report", run).error
    assert error.startswith(f"aekit: error: {run / 'history.csv'}: {why}")
    assert error.endswith("; delete it, and the report leaves the loss curves out")
    (run / "history.csv").unlink()
    assert cli("report", run).code == 0


def test_a_run_config_without_its_tables_is_refused_naming_the_file(run, cli, tmp_path):
    """An empty config.toml was taken as every default: evaluate blamed the data (Olivetti's 400 images), score
    scored against Olivetti's held-out images."""
    config = run / "config.toml"
    whole = config.read_text()
    config.write_text("")
    refused = f"aekit: error: {config}: no [data] table, which every run's config.toml holds (damaged? restore it)"
    assert cli("evaluate", run, "--limit", "2").error == refused
    aekit.write_image(tmp_path / "other.png", np.zeros((16, 16, 1), np.float32))
    assert cli("score", run, tmp_path / "other.png", "--out", tmp_path / "s.csv").error == refused
    assert cli("train", "--resume", run, "--epochs", "2").error == refused
    config.write_text(whole.split("[noise]")[0])
    assert "config.toml: no [noise] table" in cli("evaluate", run, "--limit", "2").error
    empty = tmp_path / "mine.toml"  # a user's own config file may leave any table out
    empty.write_text("")
    assert aekit.load_config(empty) == aekit.Config()


@pytest.mark.parametrize("line, refused", [
    ("test_fraction = 0.2", "no [data] test_fraction, which every run's config.toml holds (its default, read in its "
     "place, may not be what the run used); put back the line the run wrote in [data] (the default: test_fraction = 0.2)"),
    ('split = "random"', "no [data] split, "),
    ("seed = 1000", "no seed, which every run's config.toml holds (its default, read in its place, may not be what the "
     "run used); put back the line the run wrote above the tables (the default: seed = 1000)"),
    ('kind = "none"', "no [noise] kind, "),
    ("code_length = 16", "no [model] code_length, which every run's config.toml holds (its default, read in its place, "
     "may not be what the run used); put back the line the run wrote in [model] (its value is under \"config\" in "
     "the run's model.json, or a checkpoint's; the default: code_length = 256)"),
])
def test_a_key_deleted_from_a_run_config_is_refused_naming_the_file_the_key_and_the_fix(run, cli, tmp_path, line,
                                                                                         refused):
    """A deleted key read as its default: evaluate rebuilt another split (images the run trained on scored as held
    out) or scored a denoiser without noise, a resume continued with another seed. A user's own config file may
    leave any key out."""
    config = run / "config.toml"
    whole = config.read_text()
    assert f"\n{line}\n" in whole  # the run wrote it
    config.write_text(whole.replace(f"\n{line}\n", "\n", 1))
    aekit.write_image(tmp_path / "other.png", np.zeros((16, 16, 1), np.float32))
    for args in (("evaluate", run, "--limit", "2"), ("score", run, tmp_path / "other.png", "--out", tmp_path / "s.csv"),
                 ("train", "--resume", run, "--epochs", "2")):
        assert cli(*args).error.startswith(f"aekit: error: {config}: {refused}")
    mine = tmp_path / "mine.toml"  # the same lines in a user's own file: the key takes its default
    mine.write_text(config.read_text())
    assert isinstance(aekit.load_config(mine), aekit.Config)
    config.write_text(whole)
    assert cli("evaluate", run, "--limit", "2").code == 0


# The keys aekit added after its first day, and what a run written before each did (their legacy values).
SINCE = {"noise.where": "2026-12-02T00:19", "train.synthetic": "2026-12-03T16:31"}
ADDED_SINCE = {"train.rotate": 0.0, "train.zoom": 0.0, "train.intensity": 0.0, "train.synthetic": 0.0, "train.crop": 0,
               "train.ema": 0.0, "train.select": False, "train.val_fraction": 0.1, "train.compare": False,
               "noise.where": "native", "model.decoder_input": "auto"}


def test_a_run_config_of_an_older_aekit_reads_the_keys_added_since_as_what_the_run_did(run, cli, tmp_path):
    """Every run of the first days was refused by evaluate, score, denoise, export and --resume, one missing key at a
    time, as damaged ("put back the line the run wrote"); the hint's value (the default) turned model selection on in
    a resume and scored a denoiser at another noise level (noise.where working, for a run that added it natively)."""
    config = run / "config.toml"
    whole = config.read_text()
    assert whole.startswith(f"# aekit config: the keys of {keys_of()}\n") and keys_of() == SINCE["train.synthetic"]
    for line, table, key, default in (('where = "working"', "noise", "where", '"working"'),
                                      ("synthetic = 0.0", "train", "synthetic", "0.0")):
        config.write_text(whole.replace(f"\n{line}\n", "\n"))  # deleted from a run of the version that has it: refused
        assert cli("evaluate", run).error == (  # as any key the run wrote (read as "native", it added other noise)
            f"aekit: error: {config}: no [{table}] {key}, which every run's config.toml holds (its default, read in "
            f"its place, may not be what the run used); put back the line the run wrote in [{table}] (the default: "
            f"{key} = {default})")
        config.write_text(whole.split("\n", 1)[1].replace(f"\n{line}\n", "\n"))  # without the first line (written
        assert (cli("evaluate", run).code == 0) == (key == "synthetic")  # since 12-05): the newest key is not told apart
    tables = tomllib.loads(whole)
    for key in ADDED_SINCE:
        table, name = key.split(".")
        del tables[table][name]
    config.write_text(tomli_w.dumps(tables))
    cfg = RunFolder(run).config()
    assert {k: cfg.to_dict()[k.split(".")[0]][k.split(".")[1]] for k in ADDED_SINCE} == ADDED_SINCE
    assert cli("evaluate", run, "--limit", "2").code == 0
    r = cli("train", "--resume", run, "--epochs", "2", "--no-progress")
    assert r.code == 0 and "Validation split" not in r.out, r.err
    del tables["train"]["epochs"], tables["data"]["split"]  # and keys that every run wrote: all of them, in one line
    config.write_text(tomli_w.dumps(tables))
    assert cli("evaluate", run).error == (
        f"aekit: error: {config}: no [data] split, [train] epochs, which every run's config.toml holds (their "
        "defaults, read in their place, may not be what the run used); put back the lines the run wrote (the "
        'defaults: split = "random", epochs = 600)')


def test_a_run_config_of_a_newer_aekit_says_so(run):
    """A key this version does not know, in a run a newer aekit wrote: upgrade, not 'unknown key'."""
    config = run / "config.toml"
    config.write_text(config.read_text().replace("[train]\n", "[train]\nwarp_drive = true\n"))
    with pytest.raises(aekit.ConfigError, match="unknown key 'warp_drive'"):
        RunFolder(run).config()
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "aekit_version": "99.0.0"}))
    with pytest.raises(aekit.AekitError) as e:
        RunFolder(run).config()
    assert str(e.value) == (f"{config}: written by aekit 99.0.0, newer than this aekit {aekit.__version__}: "
                            "upgrade aekit (pip install -U aekit)")


@pytest.mark.parametrize("names, accepted", [
    (["Zoë/a.png", "José/b.png", "Ana/c.png"], True),  # the same order in either form: the same splits
    (["é.png", "f.png", "a.png"], False),  # "é" sorts after "f", its NFD form ("e" and an accent) before
])
def test_a_run_trained_on_nfd_names_by_an_older_aekit_is_accepted_where_its_order_is_the_same(tmp_path, names, accepted):
    import hashlib
    import unicodedata

    from aekit.data import ImageData
    from aekit.run_data import check_record

    nfd = sorted(unicodedata.normalize("NFD", n) for n in names)  # what data.json holds: the names macOS gave
    (tmp_path / "data.json").write_text(json.dumps({"source": "photos", "images": len(names),
                                                    "names_sha256": hashlib.sha256("\n".join(nfd).encode()).hexdigest()}))
    data = ImageData(images=np.zeros((3, 1, 2, 2), np.float32), names=names, source="photos")  # names now: NFC
    if accepted:
        check_record(tmp_path / "data.json", tmp_path, data, "evaluate")
    else:
        with pytest.raises(aekit.AekitError, match="the data changed since the run was trained"):
            check_record(tmp_path / "data.json", tmp_path, data, "evaluate")


def test_links_planted_in_a_downloaded_run_folder_are_not_followed_to_write(run, tmp_path, cli):
    """``RUN/tensorboard -> elsewhere`` (with tensorboard = true in its config.toml): a resume wrote its events there;
    ``.RUN.replaced -> elsewhere``: a training that stopped before its first checkpoint put the link in the run's place;
    ``RUN/checkpoints -> elsewhere``: a resume wrote there, and pruned folders of the link's target."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = run / "config.toml"
    config.write_text(config.read_text().replace("tensorboard = false", "tensorboard = true"))
    (run / "tensorboard").symlink_to(elsewhere)
    assert cli("train", "--resume", run, "--epochs", "2").error == (
        f"aekit: error: {run / 'tensorboard'}: is a link to {elsewhere}, not the run's own folder for its TensorBoard "
        "events; remove the link")
    assert list(elsewhere.iterdir()) == []
    (tmp_path / ".run.replaced").symlink_to(elsewhere)
    assert RunFolder(run).put_back() is False and run.is_dir() and not run.is_symlink()
    (run / "tensorboard").unlink()
    (run / "checkpoints").rename(tmp_path / "checkpoints")  # a resume would write and prune in the folder it names
    (run / "checkpoints").symlink_to(tmp_path / "checkpoints")
    assert cli("train", "--resume", run, "--epochs", "2").error == (
        f"aekit: error: {run / 'checkpoints'}: is a link to {tmp_path / 'checkpoints'}, not the run's own checkpoints "
        "folder; move the folder it names in its place")
