"""The ``aekit`` command: a thin typed layer over the library.

One place (:func:`main`) turns known errors into a one-line message and a non-zero exit status;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from . import __version__
from .distributed import distributed_command
from .errors import AekitError

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def _examples(text: str) -> str:
    return "examples:\n" + textwrap.indent(textwrap.dedent(text).strip(), "  ")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aekit",
        description="Image autoencoders: train, evaluate and reuse them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            """
            aekit train --config configs/reference.toml            # the reference experiment (600 epochs)
            aekit train --config configs/reference.toml --epochs 20 --out runs/ref20
            aekit export runs/ref20 --format onnx --out ref20.onnx # verified against PyTorch
            aekit report runs/ref20                                # rebuild runs/ref20/report.html
            aekit models                                           # registered architectures
            aekit train --help                                     # every training option
            """
        ),
    )
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train an autoencoder and write a run folder",
        description="Train an autoencoder and write a run folder (config.toml, model.json, "
        "model.safetensors, history.csv, metrics.json, reconstructions.png, loss.png, report.html). "
        "Options override the config file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            """
            aekit train --config configs/reference.toml                       # experiment A, exactly
            aekit train --config configs/reference.toml --epochs 20 --out runs/ref20
            aekit train --epochs 100 --code-length 128 --seed 3               # 80/20 split, held-out metrics
            aekit train --config configs/reference.toml --device cuda --overwrite --out runs/ref
            aekit train --config configs/reference.toml --device cuda --amp bf16 --compile   # mixed precision
            aekit train --config configs/reference-denoising.toml --epochs 50     # experiment B
            aekit train --model fcn --noise gaussian:0.05-0.4 --epochs 100        # a denoiser for any size
            aekit train --config configs/reference-sparse.toml --epochs 50        # sparse code (L1, alpha 0.01)
            aekit train --config configs/reference-vae.toml --epochs 50           # the book's VAE; then aekit sample
            aekit train --model vae --loss bce --beta 4 --code-length 256         # a beta-VAE
            aekit train --config configs/reference.toml --max-time 10 --out runs/ref   # stops with a checkpoint
            aekit train --resume runs/ref                                         # ... and continues exactly
            aekit train --epochs 50 --tensorboard --out runs/tb               # then: tensorboard --logdir runs/tb/tensorboard
            aekit train --data photos/ --size 64x64 --code-length 1024      # your folder (RGB works)
            aekit train --data faces.npz --fit pad --skip-bad --epochs 50     # arrays; --split subject needs labels
            aekit train --nproc 2 --epochs 50                                 # 2 processes, each half of every batch
            torchrun --nproc-per-node 4 -m aekit train --device cuda --epochs 50    # 4 GPUs (see README for nodes)
            """
        ),
    )
    t.add_argument("--config", metavar="FILE", help="TOML config file (default: built-in defaults)")
    t.add_argument("--model", metavar="NAME", help="architecture (see `aekit models`)")
    t.add_argument("--epochs", type=int, metavar="N", help="number of epochs")
    t.add_argument("--batch-size", type=int, metavar="N", help="samples per step")
    t.add_argument("--lr", type=float, metavar="LR", help="Adam learning rate")
    t.add_argument("--code-length", type=int, metavar="N", help="code (latent) length")
    t.add_argument("--seed", type=int, metavar="N", help="seed for initialisation, shuffling and noise")
    t.add_argument("--data", metavar="SOURCE", help="data source: olivetti, a folder of images, or a .npy/.npz file")
    t.add_argument("--data-home", metavar="DIR", help="scikit-learn data folder (default: $SCIKIT_LEARN_DATA)")
    add_image_options(t)
    t.add_argument("--test-fraction", type=float, metavar="F", help="held-out fraction (0 trains on all)")
    t.add_argument("--split", choices=["random", "subject"], help="held-out split: random or subject (unseen people)")
    t.add_argument(
        "--noise",
        metavar="SPEC",
        help="corrupt the model's input, compare with the clean image (denoising): none, gaussian:0.2, "
        "gaussian:0.05-0.4 (per-pixel sigma), gaussian-map:SIGMA.npy, mask:0.3, saltpepper:0.1",
    )
    t.add_argument("--loss", choices=["l2", "mse", "bce", "psnr"],
                   help="reconstruction loss: l2 (half the summed squared error, the reference's), mse, bce, or psnr "
                   "(minus each image's PSNR: trains for the mean of per-image PSNR)")
    t.add_argument("--sparsity", type=float, metavar="ALPHA",
                   help="sparse code: add ALPHA x each sample's L1 norm of the code to the loss (the book: 0.01)")
    t.add_argument("--beta", type=float, metavar="B", help="vae: weight of the KL divergence (default 1)")
    t.add_argument("--eval-every", type=int, metavar="K", help="held-out metrics every K epochs (0: at the end)")
    t.add_argument("--device", metavar="DEV", help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    t.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (0: torch's default)")
    t.add_argument("--amp", choices=["off", "bf16", "fp16"],
                   help="mixed precision on CUDA (bf16 recommended on Ampere or newer); also works on CPU with bf16")
    t.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model for training; first epoch slower")
    t.add_argument("--data-init", action=argparse.BooleanOptionalAction, default=None,
                   help="calibrate the code layer on training images before the first step (conv: each code "
                        "unit starts with zero mean and unit spread across images; avoids the collapsed code)")
    t.add_argument("--name", metavar="NAME", help="run name (default folder: runs/NAME-TIMESTAMP)")
    t.add_argument("--out", metavar="DIR", help="run folder to write (default: runs/<name>-<timestamp>)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder at --out")
    t.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint (may change --epochs, "
                   "--max-time, --device, --threads, --compile)")
    t.add_argument("--checkpoint-every", type=int, metavar="N", help="keep a checkpoint every N epochs "
                   "(besides 'last' and 'best', which are always kept)")
    t.add_argument("--early-stop", type=int, metavar="PATIENCE", help="stop when the held-out loss has not "
                   "improved for PATIENCE evaluations")
    t.add_argument("--max-time", type=float, metavar="MINUTES", help="stop cleanly, with a checkpoint, after "
                   "MINUTES of training")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (epoch lines still print)")
    t.add_argument("--tensorboard", action="store_true",
                   help="also log scalars and image grids to RUN/tensorboard/ (pip install 'aekit[tensorboard]')")
    t.add_argument("--nproc", type=int, metavar="N", help="data-parallel training on N processes of this machine "
                   "(torchrun --standalone; one CPU thread each unless --threads); see also torchrun")
    t.add_argument("--dist-timeout", type=float, metavar="SECONDS", help="several processes: longest wait to join "
                   "the group or for another process (default 300)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate",
        help="score a trained run on held-out images, beside classical baselines",
        description="Score a run's model on held-out images: MSE, PSNR (dB, peak 1, mean of per-image "
        "PSNR) and SSIM, for the noisy input, the model and (with --baselines) Gaussian blur, total "
        "variation, wavelet, non-local means, BM3D and PCA. Every method sees the same seeded noisy "
        "images. Writes evaluation.json and evaluation.png (clean | noisy | aekit | best baseline) "
        "into the run folder.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            """
            aekit evaluate runs/denoise                                   # the run's own noise and split
            aekit evaluate runs/denoise --noise gaussian:0.2 --baselines  # beside every baseline
            aekit evaluate runs/denoise --split subject --baselines blur,bm3d --limit 20
            """
        ),
    )
    e.add_argument("run", metavar="RUN", help="run folder written by `aekit train`")
    e.add_argument("--noise", metavar="SPEC", help="corruption (default: the run's own); see `aekit train --help`")
    e.add_argument("--split", choices=["random", "subject"], help="random: last 20%% of the seeded order; "
                   "subject: people 32-39, never seen (default: the run's split)")
    e.add_argument("--baselines", nargs="?", const="all", metavar="LIST",
                   help="also run baselines: all (default when given) or a comma list of blur,tv,wavelet,nlmeans,bm3d,pca")
    e.add_argument("--limit", type=int, metavar="N", help="only the first N held-out images")
    e.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the noise (default 0)")
    e.add_argument("--device", default="cpu", metavar="DEV", help="device for the model (default cpu)")
    e.add_argument("--flip-ensemble", action="store_true", help="average the model's passes on each image and on "
                   "its mirror image, mirrored back (two passes; a little more accurate for models trained with flips)")
    e.set_defaults(func=cmd_evaluate)

    e = sub.add_parser(
        "export",
        help="export a trained model to ONNX or TorchScript, verified against PyTorch",
        description="Export a run's model (or its encoder or decoder) with a dynamic batch axis, then "
        "reload the file, run it on the run's own images and print the largest absolute difference "
        "from PyTorch (the file is kept only when it is below 1e-4). ONNX needs "
        "pip install 'aekit[export]'.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            """
            aekit export runs/ref --out ref.onnx                              # images -> reconstructions
            aekit export runs/ref --part encoder --out encoder.onnx           # images -> codes
            aekit export runs/ref --part decoder --format torchscript --out decoder.pt
            """
        ),
    )
    e.add_argument("run", metavar="RUN", help="run folder (or a folder saved by aekit.save)")
    e.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="file format (default: onnx)")
    e.add_argument("--part", choices=["all", "encoder", "decoder"], default="all",
                   help="whole autoencoder (default), encoder (images -> codes) or decoder (codes -> images)")
    e.add_argument("--out", metavar="FILE", help="file to write (default: RUN/model[-PART].onnx or .pt)")
    e.set_defaults(func=cmd_export)

    r = sub.add_parser(
        "report",
        help="rebuild a run's report.html",
        description="Rebuild RUN/report.html: one self-contained page with the configuration, metrics "
        "(and evaluation.json when present), loss curves, pictures and code statistics.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("aekit report runs/ref\nxdg-open runs/ref/report.html"),
    )
    r.add_argument("run", metavar="RUN", help="run folder")
    r.set_defaults(func=cmd_report)

    d = sub.add_parser(
        "denoise",
        help="denoise image files with a trained run",
        description="Denoise image files (PNG, JPEG, PGM/PPM, BMP, TIFF, GIF, WebP) or folders of them with a "
        "run's model. Every output keeps its input's file name, size, format, mode and bit depth. Fixed-size "
        "models (conv) work at their training size (each image is resized in and out); fully convolutional "
        "models (fcn) run at the image's own size, in overlapping tiles when it is large.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            """
            aekit denoise runs/fcn photos/ --out denoised/
            aekit denoise runs/fcn scan.png --out out/ --add-noise gaussian:0.1     # demo: noise first, grid.png
            aekit denoise runs/reference-denoising faces/*.png --out clean/ --overwrite
            """
        ),
    )
    d.add_argument("run", metavar="RUN", help="run folder (or a model folder saved by aekit.save)")
    d.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    d.add_argument("--out", required=True, metavar="DIR", help="output folder (subfolders of input folders are kept)")
    d.add_argument("--add-noise", metavar="SPEC", help="corrupt the inputs first (for demonstrations) and write "
                   "DIR/grid.png: clean | noisy | denoised; see `aekit train --help` for SPEC")
    d.add_argument("--seed", type=int, default=0, metavar="N", help="seed of --add-noise (default 0)")
    d.add_argument("--tile", type=int, default=256, metavar="N", help="tile size for fully convolutional models (default 256)")
    d.add_argument("--overlap", type=int, default=32, metavar="N", help="tile overlap in pixels (default 32)")
    d.add_argument("--overwrite", action="store_true", help="replace existing output files")
    d.add_argument("--skip-bad", action="store_true", help="skip unreadable files (listed) instead of stopping")
    d.add_argument("--flip-ensemble", action="store_true", help="average the model's passes on each image and on "
                   "its mirror image, mirrored back (two passes; a little more accurate for models trained with flips)")
    d.add_argument("--device", default="cpu", metavar="DEV", help="device for the model (default cpu)")
    d.set_defaults(func=cmd_denoise)

    m = sub.add_parser(
        "models",
        help="list the registered architectures",
        description="List the registered architectures and their default settings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("aekit models\naekit train --model conv --code-length 512"),
    )
    m.set_defaults(func=cmd_models)
    add_latent_commands(sub)
    return parser


def add_latent_commands(sub) -> None:
    """encode, decode, sample, interpolate, map, score: using a trained model's codes (aekit.latent)."""

    def command(name: str, help: str, examples: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_examples(examples))
        p.add_argument("run", metavar="RUN", help="run folder (or a folder saved by aekit.save)")
        p.set_defaults(func=func)
        return p

    p = command("encode", "encode images into codes: a .npy (N, code length) and the list of files in a .txt beside it",
                "aekit encode runs/ref faces/ --out codes.npy           # codes.npy + codes.txt\n"
                "aekit encode runs/ref a.png b.png --out ab.npy", cmd_encode)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, metavar="FILE.npy", help="codes file to write")
    p = command("decode", "decode codes (a .npy from aekit encode) into one PNG per code",
                "aekit decode runs/ref codes.npy --out decoded/", cmd_decode)
    p.add_argument("codes", metavar="CODES.npy", help="(N, code length) array")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs")
    p = command("sample", "draw new images from a VAE's prior N(0, I): a PNG grid and a .npy of the images",
                "aekit sample runs/vae -n 64 --out faces.png           # faces.png + faces.npy", cmd_sample)
    p.add_argument("-n", type=int, default=64, metavar="N", help="images to draw (default 64)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the drawn codes (default 0)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="grid to write")
    p = command("interpolate", "decode the straight line between the codes of two images: a strip "
                "A | STEPS decodings | B (and a .npy)",
                "aekit interpolate runs/vae a.png b.png --steps 10 --out strip.png", cmd_interpolate)
    p.add_argument("a", metavar="A", help="first image")
    p.add_argument("b", metavar="B", help="second image")
    p.add_argument("--steps", type=int, default=10, metavar="N", help="decoded points from A to B (default 10)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="strip to write")
    p = command("map", "a 2-D map of the codes (PCA or t-SNE), coloured by label where there are labels",
                "aekit map runs/ref --out map.png                       # the run's own data\n"
                "aekit map runs/ref --data photos/ --method tsne --out map.png", cmd_map)
    p.add_argument("--data", metavar="SOURCE", help="images to map (default: the run's data source)")
    p.add_argument("--method", choices=["pca", "tsne"], default="pca", help="projection (default pca)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="picture to write")
    p = command("score", "per-image reconstruction error for anomaly screening, flagged above a threshold "
                "taken from the run's held-out images",
                "aekit score runs/ref new/ --out scores.csv             # threshold: held-out 99% quantile\n"
                "aekit score runs/ref new/ --quantile 0.95 --out scores.csv\n"
                "aekit score runs/ref new/ --threshold 0.002 --out scores.csv", cmd_score)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--quantile", type=float, default=0.99, metavar="Q",
                   help="threshold = this quantile of the held-out errors (default 0.99)")
    p.add_argument("--threshold", type=float, metavar="MSE", help="a fixed threshold instead")
    p.add_argument("--out", required=True, metavar="FILE.csv", help="file,mse,threshold,flag per image")
    for name in ("encode", "decode", "sample", "interpolate", "map", "score"):
        sub.choices[name].add_argument("--device", default="cpu", metavar="DEV", help="device (default cpu)")


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    try:
        return (int(h), int(w or h))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size HxW (e.g. 64x64, or 64)") from None


def _channels(text: str) -> str | int:
    if text not in ("auto", "1", "3"):
        raise argparse.ArgumentTypeError(f"{text!r} is not one of auto, 1, 3")
    return text if text == "auto" else int(text)


def add_image_options(p: argparse.ArgumentParser) -> None:
    """How images are read (every command that reads images): see image_overrides."""
    p.add_argument("--size", type=_size, metavar="HxW",
                   help="working size, e.g. 64x64 (also the model's input size; default: the model's, 32x32)")
    p.add_argument("--channels", type=_channels, metavar="auto|1|3",
                   help="auto: 1 when every image is grayscale, else 3 (the model follows)")
    p.add_argument("--fit", choices=["resize", "crop", "pad"],
                   help="to the working size: resize (stretch), crop (fill, cut the centre), pad (fit, black borders)")
    p.add_argument("--layout", choices=["auto", "nhwc", "nchw"], help="axis order of a 4-d array whose shape is ambiguous")
    p.add_argument("--rescale", action="store_true", default=None,
                   help="arrays: map min..max to 0..1 instead of refusing floats outside [0, 1]")
    p.add_argument("--skip-bad", action="store_true", default=None,
                   help="skip unreadable image files (counted, and listed in the run folder's skipped.txt)")
    p.add_argument("--stream", choices=["auto", "on", "off"],
                   help="folders: decode from disk every epoch (auto: when the decoded images exceed 1 GiB)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes decoding a folder (default: one per CPU core, at most 4)")


def image_overrides(args: argparse.Namespace) -> dict:
    """The config overrides of add_image_options (--size sets the model's input size too)."""
    return {
        "data.size": args.size,
        "model.input_size": args.size,
        "data.channels": args.channels,
        "data.fit": args.fit,
        "data.layout": args.layout,
        "data.rescale": args.rescale,
        "data.skip_bad": args.skip_bad,
        "data.stream": args.stream,
        "data.workers": args.workers,
    }


def config_from_args(args: argparse.Namespace):
    """The run's configuration: the config file (or the defaults), then the options on top."""
    import dataclasses

    from .config import Config, load_config, replace

    cfg = load_config(args.config) if args.config else Config()
    cfg = replace(cfg, **{"model.name": args.model})
    if args.noise is not None:
        from .noise import parse_noise

        raw = cfg.to_dict()
        raw["noise"] = dataclasses.asdict(parse_noise(args.noise))
        cfg = Config.from_dict(raw, where="--noise")
    return replace(
        cfg,
        **{
            "name": args.name,
            "seed": args.seed,
            "model.code_length": args.code_length,
            "train.epochs": args.epochs,
            "train.batch_size": args.batch_size,
            "train.lr": args.lr,
            "train.device": args.device,
            "train.eval_every": args.eval_every,
            "train.threads": args.threads,
            "train.checkpoint_every": args.checkpoint_every,
            "train.early_stop": args.early_stop,
            "train.max_minutes": args.max_time,
            "train.tensorboard": args.tensorboard or None,
            "train.amp": args.amp,
            "train.compile": args.compile,
            "train.data_init": args.data_init,
            "model.loss": args.loss,
            "model.sparsity": args.sparsity,
            "model.beta": args.beta,
            "data.source": args.data,
            "data.data_home": args.data_home,
            "data.test_fraction": args.test_fraction,
            "data.split": args.split,
            **image_overrides(args),
        },
    )


@distributed_command
def cmd_train(args: argparse.Namespace) -> int:
    from .run import train

    if args.resume:
        fixed = [f for f in ("config", "model", "batch_size", "lr", "code_length", "seed", "data", "data_home",
                             "test_fraction", "split", "noise", "out", "name", "loss", "sparsity", "beta", "amp")
                 if getattr(args, f, None) is not None]
        if fixed:
            raise AekitError(f"--resume continues a run with its own config.toml; --{fixed[0].replace('_', '-')} "
                             "cannot change it (only --epochs, --max-time, --device, --threads and --compile can)")
        from .config import load_config, replace

        run_cfg = Path(args.resume) / "config.toml"
        if not run_cfg.is_file():
            raise AekitError(f"--resume {args.resume}: no config.toml (not an aekit run folder)")
        cfg = replace(load_config(run_cfg), **{"train.epochs": args.epochs, "train.max_minutes": args.max_time,
                                               "train.device": args.device, "train.threads": args.threads,
                                               "train.compile": args.compile})
        result = train(cfg, out=args.resume, resume=True, progress=not args.no_progress)
    else:
        cfg = config_from_args(args)
        result = train(cfg, out=args.out, overwrite=args.overwrite, progress=not args.no_progress)
    m = result.metrics
    if not m:  # not rank 0 of several processes: rank 0 reports
        return 0
    print(f"Run folder: {result.out}")
    tr = m["train"]
    print(
        f"Training ({tr['images']} images): loss per sample {tr['loss_per_sample']:.4f}, "
        f"PSNR {tr['psnr']:.2f} dB, SSIM {tr['ssim']:.4f}, code mean {tr['code_mean']:.4f}"
    )
    if m["heldout"]:
        h = m["heldout"]
        print(
            f"Held-out ({h['images']} images): loss per sample {h['loss_per_sample']:.4f}, "
            f"PSNR {h['psnr']:.2f} dB, SSIM {h['ssim']:.4f}, code mean {h['code_mean']:.4f}"
        )
    else:
        print("Held-out: none (test_fraction = 0: every image was used for training, as in the reference)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .baselines import ALL
    from .evaluation import evaluate_run, format_table
    from .noise import parse_noise
    from .train import resolve_device

    if args.limit is not None and args.limit < 1:
        raise AekitError(f"--limit must be at least 1, got {args.limit}")
    names: tuple[str, ...] = ()
    if args.baselines:
        names = ALL if args.baselines == "all" else tuple(n.strip() for n in args.baselines.split(",") if n.strip())
    report = evaluate_run(
        args.run,
        noise=parse_noise(args.noise) if args.noise is not None else None,
        split=args.split,
        baselines=names,
        limit=args.limit,
        seed=args.seed,
        device=str(resolve_device(args.device)),
        flip_ensemble=args.flip_ensemble,
    )
    print(format_table(report))
    print(f"Wrote {args.run}/evaluation.json and evaluation.png")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .export import SUFFIX, export

    suffix = ("" if args.part == "all" else f"-{args.part}") + SUFFIX[args.format]
    out = args.out or Path(args.run) / f"model{suffix}"
    result = export(args.run, out, format=args.format, part=args.part)
    print(f"Wrote {result.path} ({result.format}, {result.part})")
    print(f"Largest absolute difference from PyTorch: {result.max_abs_diff:.3g} (on {result.checked_on})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report_html import write_report

    print(f"Wrote {write_report(args.run)}")
    return 0


def cmd_denoise(args: argparse.Namespace) -> int:
    from .inference import denoise_files
    from .noise import parse_noise
    from .train import resolve_device

    report = denoise_files(
        args.run,
        args.inputs,
        args.out,
        add_noise=parse_noise(args.add_noise) if args.add_noise else None,
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
    print(f"Wrote {len(report['written'])} denoised images to {args.out}"
          + (f" and {report['grid']}" if report["grid"] else "")
          + (f"; skipped {len(report['skipped'])} unreadable files" if report["skipped"] else ""))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import dataclasses

    from .models import config_class, list_models, model_class

    for name in list_models():
        doc = (model_class(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:12s} {doc}")
        defaults = dataclasses.asdict(config_class(name)())
        shown = ", ".join(f"{k}={v}" for k, v in defaults.items() if k != "name")
        print(textwrap.indent(textwrap.fill(shown, 88), " " * 13))
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from .latent import encode_files

    codes, names = encode_files(args.run, args.inputs, args.out, device=args.device)
    print(f"Wrote {codes} and {names}")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from .latent import decode_files

    paths = decode_files(args.run, args.codes, args.out, device=args.device)
    print(f"Wrote {len(paths)} images to {args.out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from .latent import sample, write_grid

    out = write_grid(sample(args.run, args.n, seed=args.seed, device=args.device), args.out)
    print(f"Wrote {out} and {out.with_suffix('.npy')}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from .latent import interpolate, write_grid

    images = interpolate(args.run, args.a, args.b, args.steps, device=args.device)
    out = write_grid(images, args.out, per_row=len(images))
    print(f"Wrote {out} and {out.with_suffix('.npy')}")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from .latent import write_map

    drawn = write_map(args.run, args.out, source=args.data, method=args.method, device=args.device)
    print(f"Wrote {drawn['out']} ({drawn['images']} images" + (", coloured by label)" if drawn["labelled"] else ")"))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .latent import score, write_scores

    s = score(args.run, args.inputs, quantile=args.quantile, threshold=args.threshold, device=args.device)
    write_scores(s, args.out)
    where = f"the {s.quantile:g} quantile of {s.heldout_images} held-out images" if s.quantile else "given"
    print(f"Threshold {s.threshold:.6g} (MSE, {where}); {int(s.flags.sum())} of {len(s.errors)} images flagged")
    print(f"Wrote {args.out}")
    return 0


def _stderr_line(text: str) -> None:
    """One write for the whole line, so lines of several processes sharing stderr never interleave."""
    sys.stderr.write(" ".join(text.split("\n")) + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for --nproc, which runs the command again
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return args.func(args)
    except AekitError as e:
        if args.debug:
            raise
        _stderr_line(f"aekit: error: {e}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        _stderr_line("aekit: interrupted")
        return 130
    except Exception as e:  # an unexpected failure: one line, the traceback with --debug
        if args.debug:
            raise
        _stderr_line(f"aekit: error: {type(e).__name__}: {e} (run with --debug for the traceback)")
        return EXIT_INTERNAL_ERROR
