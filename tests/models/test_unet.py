"""The residual U-Net denoiser: any image size, a noise-predicting output, the images' own working size."""

import numpy as np
import torch

import aekit
from aekit.config import replace
from aekit.models import create_model


def test_any_size_in_and_out_and_the_output_is_the_input_plus_a_correction():
    model = create_model("unet", channels=4, levels=2, blocks=1, code_length=16).eval()
    for h, w in ((20, 28), (33, 17), (8, 8)):  # not multiples of 2**levels: padded and cropped back
        x = torch.rand(2, 1, h, w)
        assert model(x).recon.shape == x.shape
    torch.nn.init.zeros_(model.tail.weight), torch.nn.init.zeros_(model.tail.bias)
    x = torch.rand(2, 1, 16, 16)
    assert torch.allclose(model(x).recon, x)  # a zero correction: the noisy input itself


def test_without_a_size_a_unet_run_works_at_the_images_own_size(tmp_path):
    g = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", g.random((24, 20, 28)).astype(np.float32))
    cfg = replace(aekit.Config(), **{"data.source": str(tmp_path / "images.npy"), "model.name": "unet",
                                     "model.channels": 4, "model.levels": 2, "model.blocks": 1,
                                     "model.code_length": 16, "train.epochs": 1, "train.device": "cpu",
                                     "train.compare": False, "noise.kind": "gaussian", "noise.sigma": 0.1})
    lines = []
    result = aekit.train(cfg, out=tmp_path / "run", progress=False, log=lines.append)
    assert tuple(result.model.config.input_size) == (20, 28)
    assert any(line.startswith("Working size: 20x28") for line in lines)
