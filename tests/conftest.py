import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "scikit_learn_data"

# The Olivetti cache: CI sets SCIKIT_LEARN_DATA; a local run falls back to ../shared. Tests that
# need the faces fail (never skip) when it is missing.
# Made absolute, so subprocesses started in other folders find it too.
os.environ["SCIKIT_LEARN_DATA"] = str(Path(os.environ.get("SCIKIT_LEARN_DATA", SHARED_DATA)).resolve())


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
def tiny_run(tmp_path_factory):
    """A finished 2-epoch run of a small conv model on the Olivetti faces, held-out metrics every
    epoch, with --tensorboard; its name needs HTML escaping. Shared: copy the folder to change it."""
    import aekit
    from aekit.config import replace

    cfg = replace(aekit.Config(), **{
        "name": 'tiny <b>"run"</b> & co',
        "model.encoder_channels": [4, 4, 4, 4],
        "model.decoder_channels": [4, 4, 4],
        "train.epochs": 2,
        "train.batch_size": 100,
        "train.eval_every": 1,
        "train.tensorboard": True,
        "train.device": "cpu",
    })
    return aekit.train(cfg, out=tmp_path_factory.mktemp("tiny") / "run", progress=False, log=lambda s: None)
