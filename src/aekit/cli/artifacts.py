"""``aekit export``, ``aekit report``, ``aekit models`` and ``aekit data``: what a run leaves, what can be
trained, and a data source's images as files."""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from pathlib import Path
from typing import get_args

from ..config import DataConfig
from ..data import FitMethod, fit_images, load_data, save_folder
from ..errors import ConfigError
from ..export import FORMATS, PARTS, SUFFIX, TOLERANCE, export, format_of
from ..files import user_path
from ..models import config_class, list_models, model_class
from ..report import write_report
from .options import add_command, add_config_options, size_arg


def add_commands(sub) -> None:
    e = add_command(
        sub, "export", "export a trained model to ONNX, torch.export (.pt2) or TorchScript, verified", """
        aekit export runs/ref --out ref.onnx                              # images -> reconstructions
        aekit export runs/ref --part encoder --out encoder.onnx           # images -> codes
        aekit export runs/ref --part decoder --out decoder.pt             # TorchScript, by the suffix
        aekit export runs/dn --out denoiser.pt2                           # torch.export; a unet: any height and width
        """, cmd_export,
        description="Export a run's model (or its encoder or decoder) with a dynamic batch axis (and for unet and fcn, "
        "except as TorchScript, dynamic height and width), then reload the file, run it on the run's own images and "
        "print the largest absolute difference from PyTorch (the file is kept only when it is below "
        f"{TOLERANCE:g}). ONNX needs pip install 'aekit[export]'.",
    )
    e.add_argument("run", type=user_path, metavar="RUN", help="run folder (or a folder saved by aekit.save)")
    e.add_argument("--format", choices=FORMATS, help="file format (default: from --out's suffix, .pt2 pt2 "
                   "(torch.export), .pt/.pth/.ts torchscript, else onnx)")
    e.add_argument("--part", choices=PARTS, default="all",
                   help="whole autoencoder (default), encoder (images -> codes) or decoder (codes -> images)")
    e.add_argument("--out", type=user_path, metavar="FILE",
                   help="file to write (default: RUN/model[-PART].onnx, .pt2 or .pt)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing file at --out")

    r = add_command(sub, "report", "rebuild a run's report.html", "aekit report runs/ref\nxdg-open runs/ref/report.html",
                    cmd_report, description="Rebuild RUN/report.html: one self-contained page with the configuration, "
                    "metrics (and evaluation.json when present), loss curves, pictures and code statistics.")
    r.add_argument("run", type=user_path, metavar="RUN", help="run folder")

    add_command(sub, "models", "list the registered architectures", "aekit models\naekit train --model conv --code-length 512",
                cmd_models, description="List the registered architectures and their default settings.")

    d = add_command(
        sub, "data", "write a data source's images as PNG files (the built-in faces, an array, a folder at a size)", """
        aekit data olivetti --out faces/                 # faces/00/olivetti-001.png ...: one folder per person
        aekit data lfw-subset --out lfw/                 # 100 faces from another collection, 25x25
        aekit data photos/ --size 64x64 --fit crop --out small/
        aekit data photos/ --size 64x64 --fit tiles --out tiles/   # every 64x64 window, a folder per photo
        aekit interpolate runs/vae faces/03/olivetti-009.png faces/17/olivetti-030.png --out strip.png
        """, cmd_data,
        description="Write every image of a data source (olivetti, lfw-subset, a folder, a .npy/.npz array) as a PNG "
        "under --out, in one subfolder per label where there are labels (reading the folder back gives the same "
        "labels), else tiles in one subfolder per image cut: files to try aekit encode, denoise, interpolate and "
        "score on, or to train from. Grayscale is written as 16-bit PNG, colour as 8-bit.",
    )
    d.add_argument("data.source", metavar="SOURCE", help="olivetti, lfw-subset, a folder of images or a .npy/.npz array")
    d.add_argument("--out", type=user_path, required=True, metavar="DIR", help="folder to write the PNGs into")
    d.add_argument("--size", dest="data.size", metavar="HxW",
                   help="fit the images to HxW first (default: their own size, which a folder's images must share)")
    d.add_argument("--fit", dest="data.fit", choices=get_args(FitMethod),
                   help="with --size: how (default resize)")
    d.add_argument("--overwrite", action="store_true", help="replace existing files")
    add_config_options(d, {"data.layout", "data.rescale", "data.channels"})  # how to read an array; 1 or 3 channels
    d.add_argument("--skip-bad", dest="data.skip_bad", action="store_true",
                   help="a folder: skip unreadable files (listed) instead of stopping")


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format or format_of(args.out)
    default = "model" + ("" if args.part == "all" else f"-{args.part}") + SUFFIX[fmt]
    out = args.out or Path(args.run) / default
    result = export(args.run, out, format=fmt, part=args.part, overwrite=args.overwrite)
    sizes = "; any height and width" if result.any_size else ""
    print(f"Wrote {result.path} ({result.format}, {result.part}{sizes})")
    print(f"Largest absolute difference from PyTorch: {result.max_abs_diff:.3g} (on {result.checked_on})")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    size, fit = size_arg(args), getattr(args, "data.fit")
    if fit is not None and size is None:
        raise ConfigError("data.fit: fits the images to --size, which is not given (without it they are written "
                          "at their own size)", keys="data.fit")
    fit, method = fit or DataConfig().fit, DataConfig().resize
    data = load_data(getattr(args, "data.source"), size=size, fit=fit, method=method,
                     skip_bad=getattr(args, "data.skip_bad"), layout=getattr(args, "data.layout") or "auto",
                     channels=getattr(args, "data.channels") or "auto",
                     rescale=bool(getattr(args, "data.rescale")))
    if size is not None:  # folders arrive fitted (fit_images leaves them as they are), the other sources natively
        data.images = fit_images(data.images, size, fit, method, name=data.source)
    written = save_folder(data, args.out, overwrite=args.overwrite)
    for line in data.skipped:
        print(f"skipped {line}")
    shape = "x".join(map(str, data.images.shape[-2:]))
    folders, labels = len(set(p.parent for p in written)), ""
    if data.labels is not None:
        labels = f" in {folders} label folders"
    elif data.groups is not None:
        labels = f" in {folders} folders, one per image cut (train on it with --split subject to hold out whole images)"
    print(f"Wrote {len(written)} images ({shape}){labels} to {args.out}"
          + (f"; skipped {len(data.skipped)} unreadable files" if data.skipped else ""))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    print(f"Wrote {write_report(args.run)}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    for name in list_models():
        doc = (model_class(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:12s} {doc}")
        defaults = dataclasses.asdict(config_class(name)())
        shown = ", ".join(f"{k}={v}" for k, v in defaults.items() if k != "name")
        print(textwrap.indent(textwrap.fill(shown, 88), " " * 13))
    return 0
