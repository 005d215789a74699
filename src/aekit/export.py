"""Export a model (or part of it) to ONNX, torch.export (.pt2) or TorchScript, and check the file.

    result = export("runs/reference", "model.onnx")                     # the whole autoencoder
    result = export(model, "denoiser.pt2", format="pt2")                # torch.export.load(...).module()
    result = export(model, "encoder.pt", format="torchscript", part="encoder")
    print(result.max_abs_diff)                                          # file vs PyTorch, < 1e-4

The exported function maps a batch to a batch, with a dynamic batch axis:

    all      images (B, C, H, W) -> recon (B, C, H, W)
    encoder  images (B, C, H, W) -> code (B, code_length)
    decoder  code (B, code_length) -> recon (B, C, H, W)

For the models that run at any size (``any_size``: unet, fcn), ONNX and .pt2 files keep height and width dynamic
too (named ``height`` and ``width``; each side above the model's ``factor``, 8 for the unet): a denoiser exported
once denoises any size. So does a TorchScript trace (if either of two other sizes differs: the working size alone).

Every export is verified before it is kept: the file is reloaded (onnxruntime for ONNX, ``torch.export.load`` for
.pt2, ``torch.jit.load`` for TorchScript) and run on real inputs, the run's own images when ``model`` is a run folder
whose data can be loaded, else seeded random images; a batch of one checks the dynamic batch axis, the same images
resized to another size (sides not a multiple of the factor) the dynamic height and width. A file whose outputs differ
from PyTorch's by ``TOLERANCE`` or more is not written. ONNX needs the ``export`` extra, imported here only.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .data import take
from .errors import AekitError, DataError
from .files import new_file, write_with
from .pipeline import prepare_data
from .run_folder import RunFolder

Format = Literal["onnx", "pt2", "torchscript"]
Part = Literal["all", "encoder", "decoder"]
FORMATS = ("onnx", "pt2", "torchscript")
PARTS = ("all", "encoder", "decoder")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}
TOLERANCE = 1e-4  # largest accepted absolute difference between the file's outputs and PyTorch's
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts")
CHECK_IMAGES = 8  # images the verification runs on


@dataclass
class ExportResult:
    path: Path  # the file written
    format: str  # onnx | pt2 | torchscript
    part: str  # all | encoder | decoder
    max_abs_diff: float  # largest absolute difference between the file's outputs and PyTorch's
    checked_on: str  # what the check ran on, e.g. "8 held-out images of olivetti, at 32x32 and 37x35"
    any_size: bool = False  # height and width are dynamic axes (else fixed at the checked size)


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

    def drop_unused(self, example: torch.Tensor) -> "ModelPart":
        """Replace the model's top-level modules this part never runs (for a decoder: the encoder) by empty
        ones, so that a .pt2 or TorchScript file holds only its own weights (ONNX drops the others itself). A
        module counts as run when it is called, or when a parameter of it shapes the output on ``example``."""
        called: set[str] = set()
        hooks = [m.register_forward_hook(lambda *_, n=name: called.add(n)) for name, m in self.model.named_children()]
        try:
            with torch.enable_grad():
                params = [p for p in self.parameters() if p.requires_grad]
                grads = torch.autograd.grad(self(example).sum(), params, allow_unused=True) if params else ()
        finally:
            for h in hooks:
                h.remove()
        shaping = {id(p) for p, g in zip(params, grads) if g is not None}
        for name, m in list(self.model.named_children()):
            if name not in called and not any(id(p) in shaping for p in m.parameters()):
                setattr(self.model, name, nn.Module())
        return self


def format_of(out: str | Path | None) -> Format:
    """The format a file name asks for: ``.pt2`` torch.export, ``.pt`` / ``.pth`` / ``.ts`` TorchScript, else ONNX."""
    suffix = Path(out).suffix.lower() if out else ""
    return "pt2" if suffix == ".pt2" else "torchscript" if suffix in TORCHSCRIPT_SUFFIXES else "onnx"


def export(
    model: nn.Module | str | Path,
    out: str | Path,
    format: Format | None = None,
    part: Part = "all",
    overwrite: bool = False,
) -> ExportResult:
    """Write ``model`` (a model, or a run or model folder) to ``out`` and verify the file; an existing
    ``out`` is replaced only with ``overwrite`` (and only once the new file has passed the check).
    ``format`` None: the one ``out``'s suffix asks for (:func:`format_of`)."""
    if format not in FORMATS and format is not None:
        raise AekitError(f"format {format!r}: not one of {', '.join(FORMATS)}", keys="format")
    suffix = Path(out).suffix.lower()
    if format and suffix in (*SUFFIX.values(), *TORCHSCRIPT_SUFFIXES) and format_of(out) != format:
        raise AekitError(f"format {format} does not match the suffix of out {out} ({format_of(out)}); give a name "
                         f"ending in {SUFFIX[format]}, or let the suffix decide alone", keys=("format", "out"))
    format = format or format_of(out)
    if part not in PARTS:
        raise AekitError(f"part {part!r}: not one of {', '.join(PARTS)}", keys="part")
    folder = Path(model) if isinstance(model, (str, Path)) else None
    if folder is not None:
        model = RunFolder(folder).model()
        RunFolder(folder).check_not_own(Path(out))
    out = new_file(out, overwrite=overwrite)
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
    if part != "all":
        module.drop_unused(inputs[:2])
    writer = {"onnx": write_onnx, "pt2": write_pt2, "torchscript": write_torchscript}[format]
    any_size = model.any_size and part != "decoder"
    traced = any_size and format == "torchscript"  # a trace may fix height and width: the other sizes tell
    batches = [inputs, inputs[:1]]  # the whole batch, then one: the batch axis is dynamic
    h, w = inputs.shape[-2:]  # other sizes, with sides that are not multiples of the factor: so are height and width
    others = [(h + 5, w + 3), (h + 2 * model.factor + 2, w + model.factor + 1)][: any_size + traced]
    wide = [F.interpolate(inputs, size=o, mode="bilinear", align_corners=False).clamp(0, 1) for o in others]
    shapes = dynamic_shapes(model.factor if any_size else None)
    diffs: list[float] = []

    def where() -> str:  # what the check ran on, with the sizes
        *at, last = [f"{a}x{b}" for a, b in [(h, w), *others]]
        return f"{checked_on}, at {', '.join(at)} and {last}" if any_size else checked_on

    def write_and_check(tmp: Path) -> None:
        nonlocal any_size
        run = writer(module, torch.cat([inputs, inputs])[:2], tmp, shapes)  # batch 2: export fixes sizes 0 and 1
        with torch.no_grad():
            diffs[:] = [float((run(batch) - module(batch)).abs().max()) for batch in batches]
            try:
                far = [float((run(batch) - module(batch)).abs().max()) for batch in wide]
            except RuntimeError:  # a size the file cannot run (a trace fixed it): never kept as any size
                far = [math.inf]
            if traced:  # kept either way: at any size where every other size agrees, else at the working size
                any_size = max(far) < TOLERANCE
            diffs.extend(far if any_size else [])
        if not max(diffs) < TOLERANCE:  # NaN fails too
            raise AekitError(
                f"{out}: the exported {format} model differs from PyTorch by {max(diffs):.3g} "
                f"(at least {TOLERANCE:g}) on {where()}; the file was not written"
            )

    write_with(out, write_and_check)
    return ExportResult(out, format, part, max(diffs), where(), any_size)


def dynamic_shapes(factor: int | None) -> tuple[dict, ...]:
    """torch.export's dynamic axes of the one input: the batch, and with a ``factor`` height and width from
    factor + 1 pixels (the deepest feature map then has at least 2 rows and columns: export specialises a
    size of 1, which broadcasts). Dim.DYNAMIC, not a named Dim: what the tracer cannot prove for every size
    (e.g. that a reflection's pad is shorter than the side) becomes a check in the file, not a refusal."""
    Dim = torch.export.Dim
    axes = {0: Dim("batch")}
    if factor is not None:
        axes |= {2: Dim.DYNAMIC(min=factor + 1), 3: Dim.DYNAMIC(min=factor + 1)}
    return (axes,)


def _name_axes(model) -> None:
    """Name the ONNX model's (an onnx.ModelProto) dynamic height and width ``height`` and ``width``
    (torch.export calls them s0, s1, ...) wherever they appear in the graph's shapes."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    names = {d.dim_param: n for d, n in zip(dims, ("batch", "", "height", "width")) if d.dim_param and n}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for d in value.type.tensor_type.shape.dim:
            if d.dim_param:
                d.dim_param = pattern.sub(lambda m: names[m.group(1)], d.dim_param)


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
    shown = take(x, range(min(CHECK_IMAGES, len(x))))  # a streaming Dataset too
    return shown, f"{len(shown)} {which} images of {prepared.data.source}"


def random_images(model: nn.Module) -> tuple[torch.Tensor, str]:
    """Seeded uniform images of the model's input shape, for models without data."""
    c = model.config
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(CHECK_IMAGES, c.in_channels, *c.input_size, generator=gen)
    return x, f"{CHECK_IMAGES} random images"


Runner = Callable[[torch.Tensor], torch.Tensor]


def write_onnx(module: nn.Module, example: torch.Tensor, path: Path, shapes: tuple[dict, ...]) -> Runner:
    """Export with torch's dynamo-based exporter; returns a function running the file in onnxruntime.

    We use ``dynamo=True`` (torch.export, the default since torch 2.9): with torch 2.13 it exports
    these models exactly (differences ~1e-7) and reliably. The older TorchScript-based exporter
    (``dynamo=False``) also works but is deprecated. The program is serialised in memory and written
    as one file (weights inside) by Python, like every format here: a full disk is an OSError.
    """
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise AekitError(f"format onnx needs the {e.name} package: pip install 'aekit[export]'",
                         keys="format") from None
    _need_torch("onnx")
    in_name = "code" if module.part == "decoder" else "images"
    out_name = "code" if module.part == "encoder" else "recon"
    with _quiet():
        program = torch.onnx.export(module, (example,), input_names=[in_name], output_names=[out_name],
                                    dynamic_shapes=shapes, dynamo=True, verbose=False)
    proto = program.model_proto
    if len(shapes[0]) > 1:
        _name_axes(proto)
    path.write_bytes(proto.SerializeToString())  # one file, no external data, written by Python
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {in_name: x.numpy()})[0])


def write_pt2(module: nn.Module, example: torch.Tensor, path: Path, shapes: tuple[dict, ...]) -> Runner:
    """torch.export's ExportedProgram (``torch.export.save``); returns the reloaded program's module.

    The format PyTorch now points to in place of TorchScript: ``torch.export.load(path).module()`` runs it
    in Python without aekit, and AOTInductor can compile it for C++.
    """
    _need_torch("pt2")
    buffer = io.BytesIO()  # through memory: torch.export.save wants a name ending in .pt2, not our temporary's
    with _quiet():
        torch.export.save(torch.export.export(module, (example,), dynamic_shapes=shapes), buffer)
        path.write_bytes(buffer.getvalue())
        return torch.export.load(io.BytesIO(path.read_bytes())).module()


def write_torchscript(module: nn.Module, example: torch.Tensor, path: Path, shapes: tuple[dict, ...]) -> Runner:
    """Trace to TorchScript (loadable from LibTorch C++ without Python); returns the reloaded module.

    ``torch.jit`` is deprecated in recent torch (2.13 warns on trace, save and load) in favour of torch.export (pt2),
    but older C++ and mobile runtimes load TorchScript. Sizes are what the trace records (``shapes`` is not used).
    """
    buffer = io.BytesIO()  # through memory: torch.jit.save's own writer aborts the process on a full disk
    with _quiet():
        torch.jit.save(torch.jit.trace(module, (example,), check_trace=False), buffer)
        path.write_bytes(buffer.getvalue())
        return torch.jit.load(io.BytesIO(path.read_bytes()), map_location="cpu")


def _need_torch(format: str) -> None:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    if (int(major), int(minor)) < (2, 6):
        raise AekitError(f"format {format} needs torch 2.6 or newer (this is torch {torch.__version__})", keys="format")


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
