"""The ``aekit`` command: a thin typed layer over the library.

One place (:func:`main`) turns known errors into a one-line message and a non-zero exit status;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from . import __version__
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
        "model.safetensors, history.csv, metrics.json, reconstructions.png, loss.png). "
        "Options override the config file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            """
            aekit train --config configs/reference.toml                       # experiment A, exactly
            aekit train --config configs/reference.toml --epochs 20 --out runs/ref20
            aekit train --epochs 100 --code-length 128 --seed 3               # 80/20 split, held-out metrics
            aekit train --config configs/reference.toml --device cuda --overwrite --out runs/ref
            aekit train --data photos/ --size 64x64 --code-length 1024      # your folder (RGB works)
            aekit train --data faces.npz --fit pad --skip-bad --epochs 50     # arrays; --split subject needs labels
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
    t.add_argument("--eval-every", type=int, metavar="K", help="held-out metrics every K epochs (0: at the end)")
    t.add_argument("--device", metavar="DEV", help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    t.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (0: torch's default)")
    t.add_argument("--name", metavar="NAME", help="run name (default folder: runs/NAME-TIMESTAMP)")
    t.add_argument("--out", metavar="DIR", help="run folder to write (default: runs/<name>-<timestamp>)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder at --out")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (epoch lines still print)")
    t.set_defaults(func=cmd_train)

    m = sub.add_parser(
        "models",
        help="list the registered architectures",
        description="List the registered architectures and their default settings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("aekit models\naekit train --model conv --code-length 512"),
    )
    m.set_defaults(func=cmd_models)
    return parser


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

    from .config import Config, ModelConfig, load_config, replace

    cfg = load_config(args.config) if args.config else Config()
    if args.model and cfg.model.name != args.model:
        # another architecture starts from its own defaults, keeping the fields every model has
        shared = {f.name for f in dataclasses.fields(ModelConfig)} - {"name"}
        raw = cfg.to_dict()
        raw["model"] = {"name": args.model, **{k: v for k, v in raw["model"].items() if k in shared}}
        cfg = Config.from_dict(raw, where="--model")
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
            "data.source": args.data,
            "data.data_home": args.data_home,
            "data.test_fraction": args.test_fraction,
            "data.split": args.split,
            **image_overrides(args),
        },
    )


def cmd_train(args: argparse.Namespace) -> int:
    from .run import train

    cfg = config_from_args(args)
    result = train(cfg, out=args.out, overwrite=args.overwrite, progress=not args.no_progress)
    m = result.metrics
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return args.func(args)
    except AekitError as e:
        if args.debug:
            raise
        print(f"aekit: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("aekit: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected failure: one line, the traceback with --debug
        if args.debug:
            raise
        print(f"aekit: error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
