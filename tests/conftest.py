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
