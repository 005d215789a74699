"""``aekit train``: its options are the configuration's fields (:mod:`aekit.cli.options`)."""

from __future__ import annotations

import argparse
import functools
import math
import os
from typing import Callable

from .. import configs
from ..config import replace, resumable_keys
from ..errors import AekitError, ConfigError
from ..files import user_path
from ..fine_tune import architecture, check_given
from ..report.notes import comparison_line
from ..run import train
from ..run_folder import RunFolder
from ..training.distributed import DEFAULT_TIMEOUT, launch, launched, process_group
from .options import add_command, add_config_options, add_no_progress, config_from_args, flagged, given_options

EXAMPLES = """
aekit train --config reference                                    # experiment A, exactly
aekit train --config reference --epochs 20 --out runs/ref20
aekit train --epochs 100 --code-length 128 --seed 3               # 80/20 split, held-out metrics
aekit train --config reference --device cuda --overwrite --out runs/ref
aekit train --config reference --device cuda --amp bf16 --compile # mixed precision
aekit train --config reference-denoising --epochs 50              # experiment B
aekit train --model fcn --noise gaussian:0.05-0.4 --epochs 100    # a denoiser for any size
aekit train --config reference-sparse --epochs 50                 # sparse code (L1, alpha 0.01)
aekit train --config reference-vae --epochs 50                    # the book's VAE; then aekit sample
aekit train --model vae --loss bce --beta 4 --code-length 256     # a beta-VAE
aekit train --config reference --max-time 10 --out runs/ref       # stops with a checkpoint
aekit train --resume runs/ref                                     # ... and continues exactly
aekit train --epochs 50 --tensorboard --out runs/tb               # then: tensorboard --logdir runs/tb/tensorboard
aekit train --data photos/ --size 64x64 --code-length 1024        # your folder (RGB works)
aekit train --data faces.npz --fit pad --epochs 50                # arrays; --split subject needs labels
aekit train --init-from runs/faces --noise gaussian:0.2 --data photos/ # fine-tune a trained model on your images
aekit train --nproc 2 --epochs 50                                 # 2 processes, each half of every batch
torchrun --nproc-per-node 4 -m aekit train --device cuda --epochs 50 # 4 GPUs (see docs/training.md)
"""


def add_commands(sub) -> None:
    t = add_command(
        sub, "train", "train an autoencoder and write a run folder", EXAMPLES, cmd_train,
        description="Train an autoencoder and write a run folder (config.toml, model.json, model.safetensors, "
        "history.csv, metrics.json, reconstructions.png, loss.png, report.html). Options override the config file.",
    )
    t.add_argument("--config", type=user_path, metavar="FILE", help="TOML config file, or the name of one aekit ships: "
                   f"{', '.join(configs.names())} (default: built-in defaults)")
    add_config_options(t)
    t.add_argument("--out", type=user_path, metavar="DIR",
                   help="run folder to write (default: runs/<name>-<timestamp>)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder at --out")
    may = ", ".join(o.flag for o in flagged() if o.resume)
    t.add_argument("--resume", type=user_path, metavar="RUN",
                   help=f"continue RUN from its last checkpoint (may change {may})")
    add_no_progress(t, "; epoch lines still print")
    t.add_argument("--nproc", type=int, metavar="N", help="data-parallel training on N processes of this machine "
                   "(torchrun --standalone; one CPU thread each unless --threads); see also torchrun")
    t.add_argument("--dist-timeout", type=float, metavar="SECONDS", help="several processes: longest wait to join "
                   f"the group or for another process (default {DEFAULT_TIMEOUT:g})")


def dist_timeout(args: argparse.Namespace) -> float:
    """--dist-timeout in seconds (the default where not given); not a positive number: a one-line error."""
    if args.dist_timeout is not None and not 0 < args.dist_timeout < math.inf:
        raise ConfigError(f"dist_timeout must be a positive number of seconds, got {args.dist_timeout}",
                          keys="dist_timeout")
    return args.dist_timeout or DEFAULT_TIMEOUT


def distributed(command: Callable) -> Callable:
    """Run a command: with ``--nproc N`` on N local processes; in a process that torchrun started,
    inside the process group; otherwise as it is."""

    @functools.wraps(command)
    def wrapper(args: argparse.Namespace) -> int:
        nproc = args.nproc
        if launched():
            if nproc is not None:
                raise ConfigError(
                    f"nproc {nproc}: this process is already one of {os.environ['WORLD_SIZE']} started by a "
                    "launcher (torchrun); drop the option", keys="nproc",
                )
            with process_group(timeout=dist_timeout(args)):
                return command(args)
        if nproc is not None and nproc != 1:
            dist_timeout(args)  # checked before the processes start
            return launch(nproc, args.argv)
        if args.dist_timeout is not None:
            raise ConfigError("dist_timeout bounds the waits of several processes (nproc, torchrun), and this is one "
                              "process: drop it", keys=("dist_timeout", "nproc"))
        return command(args)

    return wrapper


@distributed
def cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        may = resumable_keys()
        fixed = [k for k in given_options(args) if k not in may] + [k for k in ("config", "out") if getattr(args, k)]
        if fixed:
            flags = [o.flag for o in flagged() if o.resume]
            raise AekitError(f"resume continues a run with its own config.toml; {fixed[0]} cannot change it "
                             f"(only {', '.join(flags[:-1])} and {flags[-1]} can)", keys=("resume", fixed[0]))
        folder = RunFolder(args.resume)
        cfg = replace(folder.config(), **{k: v for k, v in given_options(args).items() if k in may})
        result = train(cfg, out=folder.path, resume=True, progress=False if args.no_progress else None)
    else:
        if getattr(args, "train.init_from", None) and getattr(args, "model.name", None) is None:
            setattr(args, "model.name", architecture(getattr(args, "train.init_from")))  # its options (--crop) apply
        cfg = config_from_args(args)
        if cfg.train.init_from:  # a [model] option given as a flag is a choice, even at its default
            check_given(cfg.train.init_from, given_options(args))
        result = train(cfg, out=args.out, overwrite=args.overwrite,
                       progress=False if args.no_progress else None)
    m = result.metrics
    if not m:  # not rank 0 of several processes: rank 0 reports
        return 0
    print(f"Run folder: {result.out}")
    compared = m.get("comparison")
    if compared:
        print(comparison_line(compared))
    tr = m["train"]
    print(f"Training ({tr['images']} images): loss per sample {tr['loss_per_sample']:.4f}, "
          f"PSNR {tr['psnr']:.2f} dB, SSIM {tr['ssim']:.4f}, code mean {tr['code_mean']:.4f}")
    if m["heldout"]:
        h = m["heldout"]
        alone = ", the model's one pass" if compared and compared["aekit"]["flip_ensemble"] else ""
        print(f"Held-out ({h['images']} images{alone}): loss per sample {h['loss_per_sample']:.4f}, "
              f"PSNR {h['psnr']:.2f} dB, SSIM {h['ssim']:.4f}, code mean {h['code_mean']:.4f}")
        if "nelbo" in h:  # a generative model
            print(f"Held-out as a generative model: -ELBO {h['nelbo']:.1f} nats per image ({h['bits_per_dim']:.4f} "
                  f"bits/dim; reconstruction {h['reconstruction']:.1f} + KL {h['kl']:.1f}), "
                  f"{h['active_units']} active latent units; samples.png, interpolation.png")
    elif (m.get("selection") or {}).get("validation_images"):
        s = m["selection"]
        chosen = f"epoch {s['chosen_epoch']}" if s["chosen_epoch"] else "the start"
        print(f"Held-out: none (test_fraction = 0: no test split); {chosen} was chosen on {s['validation_images']} "
              f"validation images carved from the training images ({s['how']}), not trained on")
    else:
        print("Held-out: none (test_fraction = 0: every image was used for training, as in the reference)")
    return 0
