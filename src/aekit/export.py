"""Export a model (or part of it) to ONNX or TorchScript, and check the file against PyTorch.

    result = export("runs/reference", "model.onnx")                     # the whole autoencoder
    result = export(model, "encoder.pt", format="torchscript", part="encoder")
    print(result.max_abs_diff)                                          # file vs PyTorch, < 1e-4

The exported function maps a batch to a batch, with a dynamic batch axis:

    all      images (B, C, H, W) -> recon (B, C, H, W)
    encoder  images (B, C, H, W) -> code (B, code_length)
    decoder  code (B, code_length) -> recon (B, C, H, W)

Every export is verified before it is kept: the file is reloaded (onnxruntime for ONNX,
``torch.jit.load`` for TorchScript) and run on real inputs, the run's own images when ``model``
is a run folder whose data can be loaded, else seeded random images; a batch of one checks the
dynamic axis. A file whose outputs differ from PyTorch's by ``TOLERANCE`` or more is not written.
ONNX needs the optional ``export`` extra (onnx, onnxscript, onnxruntime), imported here only.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

import torch
from torch import nn

from .errors import AekitError, DataError
from .files import write_with
from .pipeline import prepare_data
from .run_folder import RunFolder

Format = Literal["onnx", "torchscript"]
Part = Literal["all", "encoder", "decoder"]
FORMATS = ("onnx", "torchscript")
PARTS = ("all", "encoder", "decoder")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
TOLERANCE = 1e-4  # largest accepted absolute difference between the file's outputs and PyTorch's
CHECK_IMAGES = 8  # images the verification runs on


@dataclass
class ExportResult:
    path: Path  # the file written
    format: str  # onnx | torchscript
    part: str  # all | encoder | decoder
    max_abs_diff: float  # largest absolute difference between the file's outputs and PyTorch's
    checked_on: str  # what the check ran on, e.g. "8 held-out images of olivetti"


class ModelPart(nn.Module):
    """One tensor in, one tensor out: the part of an autoencoder that is exported."""

    def __init__(self, model: nn.Module, part: str):
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.part == "encoder":
            return self.model.encode(x)  # (B, code_length)
        if self.part == "decoder":
            return self.model.decode(x)  # (B, C, H, W)
        return self.model(x).recon  # (B, C, H, W)


def export(
    model: nn.Module | str | Path,
    out: str | Path,
    format: Format = "onnx",
    part: Part = "all",
    overwrite: bool = False,
) -> ExportResult:
    """Write ``model`` (a model, or a run or model folder) to ``out`` and verify the file; an existing
    ``out`` is replaced only with ``overwrite`` (and only once the new file has passed the check)."""
    if format not in FORMATS:
        raise AekitError(f"format {format!r}: not one of {', '.join(FORMATS)}", keys="format")
    if part not in PARTS:
        raise AekitError(f"part {part!r}: not one of {', '.join(PARTS)}", keys="part")
    folder = Path(model) if isinstance(model, (str, Path)) else None
    if folder is not None:
        model = RunFolder(folder).model()
    out = Path(out)
    if not out.parent.is_dir():
        raise AekitError(f"out {out}: folder {out.parent} does not exist", keys="out")
    if out.exists() and not overwrite:
        raise AekitError(f"out {out}: already exists (add overwrite to replace it)", keys=("out", "overwrite"))
    if part == "decoder" and not model.decodes_codes:
        raise AekitError(
            f"part decoder: the {model.config.name} model cannot decode a bare code (its decoder also reads the "
            "encoder's skip connections); export the whole model or the encoder", keys="part",
        )
    images, checked_on = random_images(model) if folder is None else run_images(folder, model)  # checks passed
    module = ModelPart(copy.deepcopy(model).cpu(), part).eval()  # the caller's model stays as it was
    inputs = images
    if part == "decoder":
        with torch.no_grad():
            inputs = module.model.encode(images)  # real codes, not random vectors
        checked_on = f"the codes of {checked_on}"
    writer = {"onnx": write_onnx, "torchscript": write_torchscript}[format]
    diffs: list[float] = []

    def write_and_check(tmp: Path) -> None:
        run = writer(module, torch.cat([inputs, inputs])[:2], tmp)  # batch 2: torch.export fixes sizes 0 and 1
        with torch.no_grad():
            for batch in (inputs, inputs[:1]):  # the whole batch, then one: the batch axis is dynamic
                diffs.append(float((run(batch) - module(batch)).abs().max()))
        if not max(diffs) < TOLERANCE:  # NaN fails too
            raise AekitError(
                f"{out}: the exported {format} model differs from PyTorch by {max(diffs):.3g} "
                f"(at least {TOLERANCE:g}) on {checked_on}; the file was not written"
            )

    write_with(out, write_and_check)
    return ExportResult(out, format, part, max(diffs), checked_on)


def run_images(folder: Path, model: nn.Module) -> tuple[torch.Tensor, str]:
    """The first held-out (else training) images of the run in ``folder``, at the model's input size.

    Falls back to random images when the folder has no config.toml (a bare model folder) or its
    data cannot be loaded here.
    """
    run = RunFolder(folder)
    if not run.has_config():
        return random_images(model)
    try:
        prepared = prepare_data(run.config())
    except DataError:
        images, what = random_images(model)
        return images, f"{what} (the run's data could not be loaded here)"
    which = "held-out" if len(prepared.test_x) else "training"
    x = prepared.test_x if len(prepared.test_x) else prepared.train_x
    return x[:CHECK_IMAGES], f"{len(x[:CHECK_IMAGES])} {which} images of {prepared.data.source}"


def random_images(model: nn.Module) -> tuple[torch.Tensor, str]:
    """Seeded uniform images of the model's input shape, for models without data."""
    c = model.config
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(CHECK_IMAGES, c.in_channels, *c.input_size, generator=gen)
    return x, f"{CHECK_IMAGES} random images"


Runner = Callable[[torch.Tensor], torch.Tensor]


def write_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> Runner:
    """Export with torch's dynamo-based exporter; returns a function running the file in onnxruntime.

    We use ``dynamo=True`` (torch.export, the default since torch 2.9): with torch 2.13 it exports
    these models exactly (differences ~1e-7) and reliably. The older TorchScript-based exporter
    (``dynamo=False``) also works but is deprecated. ``external_data=False`` keeps one file.
    """
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise AekitError(f"format onnx needs the {e.name} package: pip install 'aekit[export]'",
                         keys="format") from None
    if _torch_version() < (2, 6):
        raise AekitError(f"format onnx needs torch 2.6 or newer (this is torch {torch.__version__})", keys="format")
    in_name = "code" if module.part == "decoder" else "images"
    out_name = "code" if module.part == "encoder" else "recon"
    with _quiet():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[in_name],
            output_names=[out_name],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {in_name: x.numpy()})[0])


def write_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> Runner:
    """Trace to TorchScript (loadable from LibTorch C++ without Python); returns the reloaded module.

    ``torch.jit.trace`` is deprecated in recent torch in favour of torch.export, but TorchScript is
    still what C++ and mobile runtimes load. Spatial sizes become constants (the model's input size
    is fixed); the batch axis stays dynamic.
    """
    with _quiet():
        torch.jit.save(torch.jit.trace(module, (example,), check_trace=False), str(path))
        return torch.jit.load(str(path), map_location="cpu")


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' warnings and log lines (tracer notes, torchvision absent, deprecations)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
