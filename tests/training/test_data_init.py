"""The data-dependent start (train.data_init): what it changes, and that it is part of the seeded run."""

import torch

import aekit
from aekit.training import data_init
from test_devices import _images16, _quiet_fit, _small_model


def test_data_init_calibrates_only_the_code_layer_on_training_images():
    """train.data_init: on the images it looks at, every code unit's pre-activation has mean 0 and
    spread 1 across images; every other weight is the seeded initialisation, unchanged."""
    x = _images16(20)
    model = _small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data_init(model, x, seed=5)
    assert len(x) < model.data_init_images  # so every image was used: the calibration is exact on x
    with torch.no_grad():
        z = model.code[0](model.encoder(x).flatten(1))
    torch.testing.assert_close(z.mean(0), torch.zeros(64), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(64), atol=1e-4, rtol=0)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"code.0.weight", "code.0.bias"}


def test_data_init_is_part_of_the_seeded_run_and_leaves_other_models_alone(tiny_images):
    def run(model_name, data_init):
        torch.manual_seed(0)
        model = aekit.create_model(model_name, input_size=(32, 32))
        history = _quiet_fit(model, tiny_images, epochs=2, data_init=data_init)
        return [h.loss_per_sample for h in history], model

    a, _ = run("conv", True)
    b, _ = run("conv", True)
    plain, _ = run("conv", False)
    assert a == b  # reproducible
    assert a != plain  # and it did something
    fcn_init, m1 = run("fcn", True)  # no data-dependent init for the fully convolutional model: the same run
    fcn_plain, m2 = run("fcn", False)
    assert fcn_init == fcn_plain
