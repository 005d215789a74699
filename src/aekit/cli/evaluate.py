"""``aekit evaluate`` and ``aekit denoise``: a trained model on images, scored or written out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from ..baselines import ALL
from ..config import DataConfig
from ..data import FitMethod, SplitName
from ..evaluation import evaluate_run, format_table
from ..files import new_file, user_path
from ..inference import denoise_files
from ..noise import GRAMMAR, parse_noise
from ..run_folder import RunFolder
from ..training import resolve_device
from .options import add_command, add_config_options, add_no_progress, default_of, size_arg

FLIP_HELP = ("average the model's passes on each image and on its mirror image, mirrored back (two passes; a "
             "little more accurate for models trained with flips); default: on for a run trained with flips "
             "(train.hflip)")


def add_commands(sub) -> None:
    e = add_command(
        sub, "evaluate", "score a trained run on held-out images, beside classical baselines", """
        aekit evaluate runs/denoise                                   # the run's own noise and split
        aekit evaluate runs/denoise --noise gaussian:0.2 --baselines  # beside every baseline
        aekit evaluate runs/denoise --split subject --baselines blur,bm3d --limit 20
        aekit evaluate runs/denoise --data other-faces/ --baselines         # on images the run never saw
        """, cmd_evaluate,
        description="Score a run's model on held-out images: MSE, PSNR (dB, peak 1, mean of per-image PSNR) and "
        "SSIM, for the noisy input, the model and (with --baselines) " + ", ".join(ALL) + ". Every method sees "
        "the same seeded noisy images. Writes evaluation.json and evaluation.png (clean | noisy | aekit | best "
        "baseline) into the run folder, or --out FILE.json and FILE.png.",
    )
    e.add_argument("run", type=user_path, metavar="RUN", help="run folder written by `aekit train`")
    e.add_argument("--data", dest="data.source", metavar="SOURCE", help="score every image of this folder or "
                   ".npy/.npz array instead of the run's held-out split (fitted to the working size as in training; "
                   "a model for any size takes them at their own); the baselines are set up on the run's training images")
    e.add_argument("--size", dest="data.size", metavar="HxW", help="with --data and a model for any "
                   "size: fit the images to HxW first (images of different sizes need it)")
    e.add_argument("--fit", dest="data.fit", choices=get_args(FitMethod), help="with --size: how (default: the run's "
                   "own; window: the centre at the native resolution)")
    e.add_argument("--skip-bad", dest="data.skip_bad", action="store_true", help="with --data: skip unreadable files "
                   "instead of stopping")
    add_config_options(e, {"data.layout", "data.rescale"})  # with --data: how to read an array
    e.add_argument("--noise", metavar="SPEC", help=f"corruption (default: the run's own): {GRAMMAR}")
    e.add_argument("--split", choices=get_args(SplitName), help="random: the last test_fraction of the seeded "
                   f"order (the run's; {DataConfig().test_fraction} for a run trained on everything); subject: whole labels (people) never seen "
                   "(default: the run's split)")
    e.add_argument("--baselines", nargs="?", const="all", metavar="LIST",
                   help=f"also run baselines: all (default when given: every one with noise, pca without) or a "
                   f"comma list of {','.join(ALL)}")
    e.add_argument("--limit", type=int, metavar="N", help="only the first N images scored (of the held-out split, or of --data)")
    e.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the noise (default 0)")
    e.add_argument("--device", default="cpu", metavar="DEV", help="device for the model (default cpu)")
    e.add_argument("--flip-ensemble", action=argparse.BooleanOptionalAction, default=None, help=FLIP_HELP)
    e.add_argument("--out", type=user_path, metavar="FILE.json", help="write the results to FILE.json and the picture "
                   "to FILE.png (default: RUN/evaluation.json and evaluation.png, replaced at each evaluation)")
    e.add_argument("--overwrite", action="store_true", help="with --out: replace an existing FILE.json / FILE.png")
    add_no_progress(e, "s over the baselines' images")

    d = add_command(
        sub, "denoise", "denoise image files with a trained run", """
        aekit denoise runs/fcn photos/ --out denoised/
        aekit denoise runs/fcn scan.png --out out/ --add-noise gaussian:0.1     # demo: noise first, grid.png
        aekit denoise runs/reference-denoising faces/*.png --out clean/ --overwrite
        """, cmd_denoise,
        description="Denoise image files (PNG, JPEG, PGM/PPM, BMP, TIFF, GIF, WebP) or folders of them with a run's "
        "model. Every output keeps its input's file name, size, format, mode, bit depth and colours (a grayscale model "
        "denoises each colour channel on its own). Fixed-size models (conv) work at their training size (each image "
        "is resized in and out); fully convolutional models (unet, fcn) run at the image's own size, in overlapping "
        "tiles when it is large.",
    )
    d.add_argument("run", type=user_path, metavar="RUN", help="run folder (or a model folder saved by aekit.save)")
    d.add_argument("inputs", type=user_path, nargs="+", metavar="INPUT",
                   help="image files or folders (searched recursively)")
    d.add_argument("--out", type=user_path, required=True, metavar="DIR",
                   help="output folder (subfolders of input folders are kept)")
    d.add_argument("--add-noise", metavar="SPEC", help="corrupt the inputs first (for demonstrations) and write "
                   f"DIR/grid.png: clean | noisy | denoised; SPEC: {GRAMMAR}")
    d.add_argument("--seed", type=int, metavar="N", help="seed of --add-noise (default 0)")
    tile, overlap = default_of(denoise_files, "tile"), default_of(denoise_files, "overlap")
    d.add_argument("--tile", type=int, default=tile, metavar="N", help=f"tile size for fully convolutional models (default {tile})")
    d.add_argument("--overlap", type=int, default=overlap, metavar="N", help=f"tile overlap in pixels (default {overlap})")
    d.add_argument("--overwrite", action="store_true", help="replace existing output files")
    d.add_argument("--skip-bad", action="store_true", help="skip unreadable files (listed) instead of stopping")
    d.add_argument("--flip-ensemble", action=argparse.BooleanOptionalAction, default=None, help=FLIP_HELP)
    d.add_argument("--device", default="cpu", metavar="DEV", help="device for the model (default cpu)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.out:
        RunFolder(args.run).check_not_own(Path(args.out))
    out = new_file(args.out, overwrite=args.overwrite, suffix=".json", beside=(".png",)) if args.out else None
    report = evaluate_run(
        args.run,
        data=getattr(args, "data.source"),
        size=size_arg(args),
        fit=getattr(args, "data.fit"),
        skip_bad=getattr(args, "data.skip_bad"),
        layout=getattr(args, "data.layout"),
        rescale=getattr(args, "data.rescale"),
        noise=parse_noise(args.noise) if args.noise is not None else None,
        split=args.split,
        baselines=args.baselines or (),
        limit=args.limit,
        seed=args.seed,
        device=str(resolve_device(args.device)),
        flip_ensemble=args.flip_ensemble,
        out=out,
        progress=False if args.no_progress else None,
        slow_hint="--limit N scores the first N images; a --baselines list without {name} skips it",
    )
    for line in report["skipped"]:
        print(f"skipped {line}")
    print(format_table(report))
    if report["note"]:
        print(report["note"])
    written = out or Path(args.run) / RunFolder.EVALUATION
    print(f"Wrote {written} and {written.with_suffix('.png').name}"
          + (f"; skipped {len(report['skipped'])} unreadable files" if report["skipped"] else ""))
    return 0


def cmd_denoise(args: argparse.Namespace) -> int:
    report = denoise_files(
        args.run,
        args.inputs,
        args.out,
        add_noise=parse_noise(args.add_noise, "add_noise") if args.add_noise else None,
        seed=args.seed,
        overwrite=args.overwrite,
        skip_bad=args.skip_bad,
        tile=args.tile,
        overlap=args.overlap,
        device=str(resolve_device(args.device)),
        flip_ensemble=args.flip_ensemble,
    )
    for line in report["skipped"]:
        print(f"skipped {line}")
    if report["note"]:
        print(report["note"])
    print(f"Wrote {len(report['written'])} denoised images to {args.out}"
          + (f" and {report['grid']}" if report["grid"] else "")
          + (f"; skipped {len(report['skipped'])} unreadable files" if report["skipped"] else ""))
    return 0
