"""aekit: image autoencoders with honest held-out metrics.

The Python API mirrors the CLI::

    import aekit

    data = aekit.load_data("olivetti")                 # ImageData: (400, 1, 64, 64) float32 in [0, 1]
    x = aekit.resize(data.images, (32, 32), "legacy-bicubic")
    model = aekit.create_model("conv", code_length=256)
    history = aekit.fit(model, x[:320], aekit.TrainConfig(epochs=5), test_images=x[320:])
    print(aekit.evaluate(model, x[320:]))              # loss per sample, code mean, MSE, PSNR, SSIM
    aekit.save(model, "my-model"); model = aekit.load("my-model")

    cfg = aekit.load_config("reference")  # or run a whole experiment with its run folder
    result = aekit.train(cfg, out="runs/reference")

The package is in layers, every import pointing down (tests/test_architecture.py holds the order):
foundations (errors, files, metrics ...), data/ and noise, models/, config, the pipeline and training/,
the run folder, report/, the features (evaluation, inference, latent, export, sklearn ...), cli/.
"""

import importlib

from .config import Config, DataConfig, TrainConfig, load_from_config
from .config_file import dump_config, load_config
from .data import ImageData, ImageInfo, load_data, load_image, read_image, resize, split_indices, write_image
from .errors import AekitError, ConfigError, DataError
from .metrics import image_metrics, mse, psnr, ssim
from .models import AEOutput, Autoencoder, ModelConfig, create_model, list_models, register, save
from .pipeline import Pipeline
from .run import RunResult, train
from .run_folder import RunFolder, load
from .training import evaluate, fit
from .version import __version__

SUBMODULES = ("anomaly", "baselines", "evaluation", "export", "inference", "latent", "sklearn")  # on first use


def __getattr__(name: str):
    """``aekit.latent``, ``aekit.sklearn`` ...: the submodules the docs name, imported when first used."""
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "__version__",
    "AEOutput",
    "AekitError",
    "Autoencoder",
    "Config",
    "ConfigError",
    "DataConfig",
    "DataError",
    "ImageData",
    "ImageInfo",
    "ModelConfig",
    "Pipeline",
    "RunFolder",
    "RunResult",
    "TrainConfig",
    "create_model",
    "dump_config",
    "evaluate",
    "fit",
    "image_metrics",
    "list_models",
    "load",
    "load_config",
    "load_data",
    "load_from_config",
    "load_image",
    "mse",
    "psnr",
    "read_image",
    "register",
    "resize",
    "save",
    "split_indices",
    "ssim",
    "train",
    "write_image",
]
