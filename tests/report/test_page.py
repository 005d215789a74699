"""The run report (report.html, `aekit report`), checked in headless Chromium, and --tensorboard."""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from aekit.report import REPORT, loss_figure
from helpers import browser, copy_run

BROWSER_TIMEOUT = 30  # seconds any one answer from Chromium may take


class Chromium:
    """Headless Chromium driven over the DevTools protocol through ``--remote-debugging-pipe``
    (messages are JSON ending in a NUL byte; Chromium reads fd 3 and writes fd 4): no port, no
    websocket library, and every wait has a deadline."""

    def __init__(self):
        exe = browser()
        if exe is None:  # only with AEKIT_REQUIRE_BROWSER=1 (CI): without it the browser tests are skipped
            pytest.fail("headless Chromium is needed (AEKIT_REQUIRE_BROWSER=1): apt-get install chromium")
        fcntl = pytest.importorskip("fcntl", reason="Chromium is driven over pipes on fd 3 and 4 (POSIX only)")
        self.profile = tempfile.mkdtemp(prefix="aekit-chromium-")
        chrome_in, self.write_fd = os.pipe()
        self.read_fd, chrome_out = os.pipe()

        def as_fd_3_and_4():  # in the child, before exec
            r = fcntl.fcntl(chrome_in, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(chrome_out, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=as_fd_3_and_4, start_new_session=True,
        )
        os.close(chrome_in)
        os.close(chrome_out)
        self.buffer, self.last_id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        wanted = self.last_id
        return self.wait(lambda m: m.get("id") == wanted)

    def wait(self, match) -> dict:
        """The first message that ``match``es (events on the way are kept in ``self.events``)."""
        deadline = time.monotonic() + BROWSER_TIMEOUT
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if match(message):
                    if "error" in message:
                        raise RuntimeError(f"Chromium: {message['error']}")
                    return message.get("result", message.get("params", {}))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Chromium gave no answer in {BROWSER_TIMEOUT} s")
            if select.select([self.read_fd], [], [], left)[0]:
                chunk = os.read(self.read_fd, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium exited")
                self.buffer += chunk

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the browser and the renderers it started
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        os.close(self.write_fd)
        os.close(self.read_fd)
        shutil.rmtree(self.profile, ignore_errors=True)


def open_in_chromium(page: Path) -> tuple[list, list]:
    """Load ``page``; returns [alt, naturalWidth] for every image, and the console's errors."""
    browser = Chromium()
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        browser.wait(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session)
        images = browser.send("Runtime.evaluate", {
            "expression": "Array.from(document.images).map(i => [i.alt, i.naturalWidth])",
            "returnByValue": True,
        }, session=session)["result"]["value"]
        errors = [
            m["params"] for m in browser.events
            if m["method"] == "Runtime.exceptionThrown"
            or (m["method"] == "Runtime.consoleAPICalled" and m["params"]["type"] in ("error", "assert"))
            or (m["method"] == "Log.entryAdded" and m["params"]["entry"]["level"] == "error")
        ]
        return images, errors
    finally:
        browser.close()


def test_every_run_writes_a_self_contained_report(tiny_run):
    text = (tiny_run.out / REPORT).read_text(encoding="utf-8")
    assert "&lt;b&gt;&quot;run&quot;&lt;/b&gt; &amp; co" in text and "<b>" not in text  # the name, escaped
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert links and all(link.startswith("data:") for link in links)  # nothing loaded from outside
    assert len(re.findall(r"<img ", text)) == 4  # loss curves, reconstructions, code histogram, code statistics
    for section in ("Metrics", "Loss curves", "Pictures", "Code statistics", "Configuration"):
        assert f"<h2>{section}</h2>" in text
    assert "[train]" in text and "tensorboard = true" in text  # the configuration file
    heldout = tiny_run.metrics["heldout"]
    assert f"{heldout['psnr']:.5g}" in text and f"{heldout['ssim']:.5g}" in text  # the metrics table
    assert f"{tiny_run.history[-1].code_std:.5g}" in text  # code statistics from history.csv


@pytest.mark.browser
def test_report_opens_in_chromium_with_every_image_loaded_and_no_console_error(tiny_run, tmp_path, cli):
    # the check itself sees a broken image, a missing file and a console error
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title></head><body>'
                   '<img alt="broken" src="data:image/png;base64,AAAA"><img alt="missing" src="missing.png">'
                   '<script>console.error("boom")</script></body></html>')
    images, errors = open_in_chromium(bad)
    assert [width for _, width in images] == [0, 0] and len(errors) == 2

    run = copy_run(tiny_run, tmp_path)
    (run / "evaluation.json").write_text(json.dumps({"model": {"psnr": 20.5}, "pca": {"psnr": 18.25}}))
    assert cli("report", run).code == 0
    images, errors = open_in_chromium(run / REPORT)
    assert len(images) == 4
    assert all(width > 0 for _, width in images), images
    assert errors == []


def test_aekit_report_rebuilds_it_with_evaluation_results_and_other_pictures(tiny_run, tmp_path, cli):
    run = copy_run(tiny_run, tmp_path)
    evaluation = {
        "images": 80,
        "results": {"model": {"psnr": 20.5, "ssim": 0.75}, "pca": {"psnr": 18.25, "ssim": 0.625}},
        "by_noise": [{"sigma": 0.1, "psnr": 19.5}, {"sigma": 0.2, "psnr": 17.75}],
        "note": "<script>alert(1)</script>",
    }
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    shutil.copy(run / "reconstructions.png", run / "denoising.png")
    (run / REPORT).unlink()
    r = cli("report", run)
    assert r.code == 0 and str(run / REPORT) in r.out
    text = (run / REPORT).read_text(encoding="utf-8")
    assert "Evaluation (evaluation.json)" in text
    for value in ("20.5", "0.75", "18.25", "0.625", "19.5", "17.75"):
        assert f">{value}<" in text
    assert "<th>model</th><th>pca</th>" in text  # the methods side by side
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert len(re.findall(r"<img ", text)) == 5 and "Denoising" in text


def test_the_page_shows_only_the_runs_own_png_files(tiny_run, tmp_path, cli):
    """A downloaded run folder's ``x.png`` linked to a file of this machine put that file into the page, which is
    made to be shared; one linked to /dev/zero read until memory ran out; a file named ``{oops}.png`` was a format
    string (KeyError)."""
    run = copy_run(tiny_run, tmp_path)
    (tmp_path / "secret.txt").write_text("SECRET-TOKEN")
    os.symlink(tmp_path / "secret.txt", run / "leak.png")
    os.symlink("/dev/zero", run / "zero.png")
    os.symlink(run / "reconstructions.png", run / "linked.png")  # even to a picture: a link is not the run's own
    (run / "fake.png").write_text("not a picture")
    shutil.copy(run / "reconstructions.png", run / "{oops}.png")
    shutil.copy(run / "reconstructions.png", run / "{which:>30000}.png")
    r = cli("report", run)
    assert r.code == 0, r.err
    text = (run / REPORT).read_text(encoding="utf-8")
    for name in ("leak.png", "zero.png", "linked.png", "fake.png"):
        assert f'alt="{name}"' not in text
    assert "<figcaption>{oops}.png</figcaption>" in text and "<figcaption>{which:&gt;30000}.png</figcaption>" in text


def test_report_of_an_unfinished_run_says_so(tiny_run, tmp_path, cli):
    run = copy_run(tiny_run, tmp_path)
    (run / "metrics.json").unlink()
    assert cli("report", run).code == 0
    text = (run / REPORT).read_text(encoding="utf-8")
    assert "not complete: no metrics.json yet (2 epochs in history.csv)" in text
    assert 'alt="loss curves"' in text  # drawn from history.csv


def test_report_shows_a_config_toml_that_is_not_text_as_it_can(tiny_run, tmp_path, cli):
    """Binary bytes in config.toml were a UnicodeDecodeError of aekit report."""
    run = copy_run(tiny_run, tmp_path)
    (run / "config.toml").write_bytes(b"[train]\nepochs = \xb9\xff\n")
    assert cli("report", run).code == 0
    assert "epochs = \ufffd\ufffd" in (run / REPORT).read_text(encoding="utf-8")


def test_report_of_a_folder_that_is_not_a_run_is_a_one_line_error(tmp_path, cli):
    assert cli("report", tmp_path).error == f"aekit: error: {tmp_path}: not an aekit run folder (no config.toml or model.json)"
    assert cli("report", tmp_path / "nothing").error == f"aekit: error: {tmp_path / 'nothing'}: no such run folder"


def test_loss_figure_uses_a_log_scale_only_for_positive_losses():
    positive = [{"epoch": e, "loss_per_sample": 10.0 / e} for e in range(1, 5)]
    negative = [{"epoch": e, "loss_per_sample": -20.0 - e, "heldout_loss_per_sample": -19.0 - e} for e in range(1, 5)]
    assert loss_figure(positive).axes[0].get_yscale() == "log"
    fig = loss_figure(negative)  # loss = "psnr": minus the PSNR in dB
    assert fig.axes[0].get_yscale() == "linear" and len(fig.axes[0].lines) == 2


def test_the_held_out_code_mean_says_its_epoch_where_it_is_not_the_columns():
    from aekit.report.page import code_html

    history = [{"epoch": e, "code_mean": 0.1 * e, "code_std": 0.5, "heldout_code_mean": 0.34 if e == 3 else None}
               for e in (1, 2, 3)]  # held-out figures every eval_every epochs: here only after the last one
    row = re.search(r"<tr><th>held-out code mean</th>(.*?)</tr>", code_html(history)).group(1)
    assert re.findall(r"<td[^>]*>(.*?)</td>", row) == ["0.34 (epoch 3)", "0.34"]


def test_a_collapsed_code_is_called_so_by_one_rule_in_training_and_in_the_report():
    from aekit.metrics import COLLAPSE_FROM_EPOCH, COLLAPSE_STD, collapse_warning, collapsed
    from aekit.report.page import code_html

    assert collapsed(COLLAPSE_FROM_EPOCH, COLLAPSE_STD / 10) and not collapsed(COLLAPSE_FROM_EPOCH, COLLAPSE_STD * 10)
    assert not collapsed(COLLAPSE_FROM_EPOCH - 1, 0.0)  # a code may start narrow
    history = lambda std: [{"epoch": e, "code_mean": 0.2, "code_std": std} for e in range(1, 9)]
    warned = code_html(history(4.8e-8))
    assert 'class="warn">The code has collapsed (epoch 8' in warned and "train.data_init" in warned
    assert collapse_warning(8, 4.8e-8).startswith("the code has collapsed (epoch 8")
    assert 'class="warn"' not in code_html(history(0.3))


def test_the_chosen_weights_are_starred_where_selection_says_the_start_included():
    history = [{"epoch": e, "loss_per_sample": 2.0 / e, "val_loss_per_sample": 1.0 + 0.1 * e} for e in range(1, 4)]
    labels = lambda fig: fig.axes[0].get_legend_handles_labels()[1]
    assert "chosen (epoch 1)" in labels(loss_figure(history))  # no selection given: the lowest validation loss
    start = {"chosen_epoch": 0, "validation_loss": 1.05}  # the start (a PCA start, say) won
    fig = loss_figure(history, selection=start)
    assert "chosen (the start)" in labels(fig) and fig.axes[0].get_ylabel().endswith("(log scale)")
    star = [line for line in fig.axes[0].lines if line.get_label() == "chosen (the start)"][0]
    assert list(star.get_xdata()) == [0] and list(star.get_ydata()) == [1.05]


def test_the_report_says_in_sentences_what_the_run_was():
    from aekit.report.notes import notes

    said = " ".join(notes({"status": "complete", "heldout": None, "selection": None,
                           "train": {"recon_spread": 0.003}}))
    assert "No model selection" in said and "No held-out images (test_fraction 0)" in said
    assert "every reconstruction is nearly the same image (they vary 0.3% as much as the originals)" in said
    said = " ".join(notes({"status": "complete", "heldout": {"recon_spread": 0.8}, "selection": None,
                           "comparison": {"aekit": {"flip_ensemble": True}}}))
    assert "flip ensemble" in said and "nearly the same image" not in said and "No held-out" not in said
    said = " ".join(notes({"status": "complete", "train": {"images": 400}, "noise": "gaussian:0.2",
                           "comparison": {"aekit": {}}}, reference_loop=True))
    assert "The reference loop skips the last batch" in said and "on all 400 training images" in said
    assert "draws its own seeded noise" in said


def test_reconstructions_that_are_all_one_image_are_measured():
    import torch

    import aekit
    from aekit.metrics import COLLAPSED_RECONSTRUCTIONS

    class Made(torch.nn.Module):  # a model whose reconstructions are what ``make`` makes of the images
        def __init__(self, model, make):
            super().__init__()
            self.model, self.make, self.prior = model, make, None
            self.config, self.any_size = model.config, model.any_size

        def forward(self, x, target=None):
            out = self.model(x, target)
            out.recon = self.make(x)
            return out

    model = aekit.create_model("conv", input_size=(16, 16), code_length=8)
    images = torch.rand(12, 1, 16, 16)
    assert aekit.evaluate(Made(model, lambda x: x), images)["recon_spread"] == pytest.approx(1.0)  # perfect
    assert aekit.evaluate(Made(model, lambda x: 0.5 * x + 0.2), images)["recon_spread"] == pytest.approx(0.5)
    mean_image = aekit.evaluate(Made(model, lambda x: x.mean(0, keepdim=True).expand_as(x)), images)
    assert mean_image["recon_spread"] < 1e-6 < COLLAPSED_RECONSTRUCTIONS  # the mean image for every image
