"""aekit: image autoencoders with honest held-out metrics.

The Python API mirrors the CLI::

    import aekit

    data = aekit.load_data("olivetti")                 # ImageData: (400, 1, 64, 64) float32 in [0, 1]
    x = aekit.resize(data.images, (32, 32), "legacy-bicubic")
    model = aekit.create_model("conv", code_length=256)
    history = aekit.fit(model, x[:320], aekit.TrainConfig(epochs=5), test_images=x[320:])
    print(aekit.evaluate(model, x[320:]))              # loss per sample, code mean, MSE, PSNR, SSIM
    aekit.save(model, "my-model"); model = aekit.load("my-model")

    cfg = aekit.load_config("configs/reference.toml")  # or run a whole experiment with its run folder
    result = aekit.train(cfg, out="runs/reference")
"""

__version__ = "0.1.0"

from .config import Config, DataConfig, ModelConfig, TrainConfig, dump_config, load_config  # noqa: E402
from .data import ImageData, load_data, load_from_config, load_image, resize, split_indices  # noqa: E402
from .errors import AekitError, ConfigError, DataError  # noqa: E402
from .images import ImageInfo, read_image, write_image  # noqa: E402
from .io import load, save  # noqa: E402
from .metrics import image_metrics, mse, psnr, ssim  # noqa: E402
from .models import AEOutput, Autoencoder, create_model, list_models, register  # noqa: E402
from .run import RunResult, train  # noqa: E402
from .train import evaluate, fit  # noqa: E402

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
