"""Shared fixtures: the data cache, tiny images, one factory of small trained runs, one CLI runner.

Markers (pyproject.toml): ``slow`` (subprocesses, several processes, real end-to-end runs: a developer
runs ``pytest -m "not slow"`` for a quick check) and ``browser`` (needs headless Chromium: skipped,
with a note, when it is not installed, unless AEKIT_REQUIRE_BROWSER=1, as in CI, makes it a failure).
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.config import replace
from helpers import browser

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "scikit_learn_data"

# The Olivetti cache: CI sets SCIKIT_LEARN_DATA; a local run falls back to ../shared. Tests that
# need the faces fail (never skip) when it is missing. Made absolute, so subprocesses started in
# other folders find it too.
os.environ["SCIKIT_LEARN_DATA"] = str(Path(os.environ.get("SCIKIT_LEARN_DATA", SHARED_DATA)).resolve())

def pytest_collection_modifyitems(config, items):
    if browser() is not None or os.environ.get("AEKIT_REQUIRE_BROWSER") == "1":
        return
    skip = pytest.mark.skip(reason="headless Chromium is not installed: apt-get install chromium, then "
                                   "pytest -m browser (CI installs it and requires these tests)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def tiny_images() -> torch.Tensor:
    """24 smooth synthetic 32x32 grayscale images in [0, 1]."""
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    freq = torch.rand(24, 2, generator=g) * 3 + 0.5
    phase = torch.rand(24, 1, 1, generator=g) * 6.28
    img = 0.5 + 0.4 * torch.sin(freq[:, :1, None] * 6.28 * xx + phase) * torch.cos(freq[:, 1:, None] * 6.28 * yy)
    return img.unsqueeze(1).float()


@pytest.fixture(scope="session")
def faces(tmp_path_factory):
    """Six Olivetti faces as 64x64 PNGs in a folder, and a 32x32 noise image elsewhere."""
    folder = tmp_path_factory.mktemp("faces")
    data = aekit.load_data("olivetti")
    for i in range(6):
        aekit.write_image(folder / f"face{i}.png", data.images[i].permute(1, 2, 0).numpy())
    odd = tmp_path_factory.mktemp("odd")
    aekit.write_image(odd / "noise.png", np.random.default_rng(0).random((32, 32, 1)).astype(np.float32))
    return folder, odd / "noise.png"


# --- runs --------------------------------------------------------------------------------------

SMALL_CONV = {"model.encoder_channels": [4, 4, 4, 4], "model.decoder_channels": [4, 4, 4]}  # fast, same shapes


@pytest.fixture(scope="session")
def make_run(tmp_path_factory):
    """``make_run(config=None, **settings)``: a small run trained on the Olivetti faces (once per set of
    settings in the session) and its RunResult. ``settings`` are dotted config keys over ``config``
    (a TOML file) or the defaults (here without the end-of-run comparison, ``train.compare``, unless
    asked for). Runs are shared: copy the folder before changing it."""
    cache: dict = {}

    def make(config: str | Path | None = None, **settings):
        key = (str(config), repr(sorted(settings.items())))
        if key not in cache:
            cfg = aekit.load_config(config) if config else aekit.Config()
            cfg = replace(cfg, **{"train.device": "cpu", "train.compare": False, **settings})
            out = tmp_path_factory.mktemp("run") / "run"
            cache[key] = aekit.train(cfg, out=out, progress=False, log=lambda s: None)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_run(make_run):
    """A finished 2-epoch run of a small conv model, held-out metrics every epoch, with --tensorboard;
    its name needs HTML escaping."""
    return make_run(**SMALL_CONV, name='tiny <b>"run"</b> & co', **{"train.epochs": 2, "train.batch_size": 100,
                                                                    "train.eval_every": 1, "train.tensorboard": True})


# --- the command line ---------------------------------------------------------------------------

@dataclass
class CLIResult:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one-line error (checked: exit status 2, one line, no traceback)."""
        err = self.err.strip()
        assert self.code == 2, (self.code, self.err)
        assert err.startswith("aekit: error: ") and "\n" not in err and "Traceback" not in err, err
        return err


@pytest.fixture
def cli(capsys):
    """``cli(*args)``: run ``aekit ARGS`` in this process; its exit status, stdout and stderr."""
    def run(*args) -> CLIResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return CLIResult(code, out, err)

    return run
